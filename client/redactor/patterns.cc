#include "client/redactor/patterns.h"

#include <cstdint>
#include <string>
#include <utility>

#include <openssl/crypto.h>

namespace secret_resolver::client {
namespace {

constexpr char kBase64Standard[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// A std::string that is wiped (to its full capacity) before it is freed. Every encoding is
// built in one of these with its final size reserved up front, so no reallocation leaves an
// unwiped copy behind.
class WipedString {
 public:
  explicit WipedString(size_t reserve) { text_.reserve(reserve); }
  ~WipedString() {
    text_.resize(text_.capacity());
    OPENSSL_cleanse(text_.data(), text_.size());
  }
  WipedString(const WipedString&) = delete;
  WipedString& operator=(const WipedString&) = delete;

  std::string& text() { return text_; }

 private:
  std::string text_;
};

// Collects distinct patterns in order of first appearance.
class PatternSet {
 public:
  // Adds `pattern` unless it is shorter than `min_length` or already present.
  void Add(absl::string_view pattern, size_t min_length) {
    if (pattern.empty() || pattern.size() < min_length) return;
    for (const SecretBytes& existing : patterns_) {
      if (existing.size() == pattern.size() && existing.reveal() == pattern) return;
    }
    patterns_.emplace_back(pattern);
  }
  std::vector<SecretBytes> Take() && { return std::move(patterns_); }

 private:
  std::vector<SecretBytes> patterns_;
};

// Base64 of `offset` zero bytes followed by `value`, padded, in `alphabet`.
void Base64Encode(absl::string_view value, size_t offset, const char* alphabet, std::string* out) {
  const size_t total = value.size() + offset;
  auto byte_at = [&](size_t i) -> uint32_t {
    return i < offset ? 0 : static_cast<unsigned char>(value[i - offset]);
  };
  size_t i = 0;
  for (; i + 3 <= total; i += 3) {
    const uint32_t group = byte_at(i) << 16 | byte_at(i + 1) << 8 | byte_at(i + 2);
    out->push_back(alphabet[group >> 18 & 63]);
    out->push_back(alphabet[group >> 12 & 63]);
    out->push_back(alphabet[group >> 6 & 63]);
    out->push_back(alphabet[group & 63]);
  }
  if (total - i == 1) {
    const uint32_t group = byte_at(i) << 16;
    out->push_back(alphabet[group >> 18 & 63]);
    out->push_back(alphabet[group >> 12 & 63]);
    out->append("==");
  } else if (total - i == 2) {
    const uint32_t group = byte_at(i) << 16 | byte_at(i + 1) << 8;
    out->push_back(alphabet[group >> 18 & 63]);
    out->push_back(alphabet[group >> 12 & 63]);
    out->push_back(alphabet[group >> 6 & 63]);
    out->push_back('=');
  }
}

void AddBase64(absl::string_view value, PatternSet* set) {
  for (const char* alphabet : {kBase64Standard, kBase64Url}) {
    for (size_t offset = 0; offset < 3; ++offset) {
      WipedString encoded(4 * ((value.size() + offset + 2) / 3));
      Base64Encode(value, offset, alphabet, &encoded.text());
      const absl::string_view all = encoded.text();
      const size_t bits = 8 * (value.size() + offset);
      // Characters before `first` also encode bits of the bytes preceding the value.
      const size_t first = (8 * offset + 5) / 6;
      const size_t determined = bits / 6;  // characters made of the value's bits only
      const size_t unpadded = (bits + 5) / 6;
      if (determined > first) {
        set->Add(all.substr(first, determined - first), kMinEncodedPatternBytes);
      }
      set->Add(all.substr(first, unpadded - first), kMinEncodedPatternBytes);
      set->Add(all.substr(first), kMinEncodedPatternBytes);
    }
  }
}

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

void AddPercent(absl::string_view value, PatternSet* set) {
  struct Variant {
    const char* hex;
    bool space_as_plus;
  };
  for (const Variant& variant :
       {Variant{"0123456789ABCDEF", false}, Variant{"0123456789abcdef", false},
        Variant{"0123456789ABCDEF", true}}) {
    WipedString encoded(3 * value.size());
    for (char ch : value) {
      const unsigned char c = static_cast<unsigned char>(ch);
      if (IsUnreserved(c)) {
        encoded.text().push_back(ch);
      } else if (c == ' ' && variant.space_as_plus) {
        encoded.text().push_back('+');
      } else {
        encoded.text().push_back('%');
        encoded.text().push_back(variant.hex[c >> 4]);
        encoded.text().push_back(variant.hex[c & 15]);
      }
    }
    set->Add(encoded.text(), kMinEncodedPatternBytes);
  }
}

struct JsonVariant {
  bool escape_slash = false;
  bool html_safe = false;  // Go's encoding/json default
  bool upper_hex = false;
};

void JsonEscape(absl::string_view value, const JsonVariant& variant, std::string* out) {
  const char* hex = variant.upper_hex ? "0123456789ABCDEF" : "0123456789abcdef";
  auto unicode = [&](unsigned char c) {
    out->append("\\u00");
    out->push_back(hex[c >> 4]);
    out->push_back(hex[c & 15]);
  };
  for (char ch : value) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '/':
        if (variant.escape_slash) {
          out->append("\\/");
        } else {
          out->push_back(ch);
        }
        break;
      case '<':
      case '>':
      case '&':
        if (variant.html_safe) {
          unicode(c);
        } else {
          out->push_back(ch);
        }
        break;
      default:
        if (c < 0x20) {
          unicode(c);
        } else {
          out->push_back(ch);
        }
    }
  }
}

void AddJson(absl::string_view value, PatternSet* set, size_t min_length) {
  for (const JsonVariant& variant :
       {JsonVariant{}, JsonVariant{true, false, false}, JsonVariant{false, true, false},
        JsonVariant{false, false, true}}) {
    WipedString escaped(6 * value.size());
    JsonEscape(value, variant, &escaped.text());
    set->Add(escaped.text(), min_length);
  }
}

// The value (or the value without trailing line breaks) and all its encodings.
void AddValueForms(absl::string_view value, PatternSet* set) {
  set->Add(value, 1);
  AddBase64(value, set);
  AddPercent(value, set);
  AddJson(value, set, kMinEncodedPatternBytes);
}

}  // namespace

std::vector<SecretBytes> DeriveRedactionPatterns(absl::string_view value) {
  PatternSet set;
  if (value.empty()) return std::move(set).Take();
  AddValueForms(value, &set);

  absl::string_view trimmed = value;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == '\r')) {
    trimmed.remove_suffix(1);
  }
  if (!trimmed.empty() && trimmed.size() != value.size()) AddValueForms(trimmed, &set);

  if (trimmed.find('\n') != absl::string_view::npos) {
    absl::string_view rest = trimmed;
    while (!rest.empty()) {
      const size_t end = rest.find('\n');
      absl::string_view line = rest.substr(0, end);
      rest = end == absl::string_view::npos ? absl::string_view() : rest.substr(end + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.size() < kMinLinePatternBytes) continue;
      set.Add(line, kMinLinePatternBytes);
      WipedString escaped(6 * line.size());
      JsonEscape(line, JsonVariant{}, &escaped.text());
      set.Add(escaped.text(), kMinLinePatternBytes);
    }
  }
  return std::move(set).Take();
}

}  // namespace secret_resolver::client
