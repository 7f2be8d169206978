#include "resolver/redaction.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace secret_resolver {
namespace {

constexpr absl::string_view kFingerprintPrefix = "hmac-sha256:";

// Length of the control character or line break that starts at s[i], or 0 if there is none.
// Beyond ASCII controls this covers the C1 controls (NEL, U+0085, among them) and U+2028/U+2029,
// which some log viewers also break lines on: a placeholder must stay on one line.
size_t ControlSequenceLength(absl::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x20 || c == 0x7f) return 1;
  if (c == 0xc2 && i + 1 < s.size()) {
    const unsigned char next = static_cast<unsigned char>(s[i + 1]);
    if (next >= 0x80 && next <= 0x9f) return 2;
  }
  if (c == 0xe2 && i + 2 < s.size() && s[i + 1] == '\x80' &&
      (s[i + 2] == '\xa8' || s[i + 2] == '\xa9')) {
    return 3;
  }
  return 0;
}

// Runs on every placeholder's key and name: a table finds the bytes that can start a control
// sequence (rare) before ControlSequenceLength looks closer.
bool IsOneLine(absl::string_view s) {
  static constexpr auto kMayStart = [] {
    std::array<bool, 256> may_start{};
    for (int c = 0; c < 0x20; ++c) may_start[c] = true;
    may_start[0x7f] = may_start[0xc2] = may_start[0xe2] = true;
    return may_start;
  }();
  for (size_t i = 0; i < s.size(); ++i) {
    if (kMayStart[static_cast<unsigned char>(s[i])] && ControlSequenceLength(s, i) > 0) {
      return false;
    }
  }
  return true;
}

// The length of `s` with every control character and line break replaced by '?'.
size_t OneLineSize(absl::string_view s) {
  if (IsOneLine(s)) return s.size();
  size_t size = 0;
  for (size_t i = 0; i < s.size(); ++size) i += std::max<size_t>(1, ControlSequenceLength(s, i));
  return size;
}

// `s` with every control character and line break replaced by '?', written at `out`; returns
// the end.
char* PutOneLine(absl::string_view s, char* out) {
  if (IsOneLine(s)) return std::copy(s.begin(), s.end(), out);
  for (size_t i = 0; i < s.size();) {
    if (const size_t n = ControlSequenceLength(s, i); n > 0) {
      *out++ = '?';
      i += n;
    } else {
      *out++ = s[i++];
    }
  }
  return out;
}

absl::Status FormatError(size_t position, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("placeholder format: byte ", position, ": ", problem));
}

}  // namespace

// Parses `format` into segments, or says what is wrong with it.
absl::Status RedactionTokens::ParseFormat(absl::string_view format,
                                          std::vector<Segment>* segments) {
  auto literal = [segments]() -> std::string& {
    if (segments->empty() || segments->back().field != Field::kLiteral) {
      segments->push_back({Field::kLiteral, ""});
    }
    return segments->back().literal;
  };
  for (size_t i = 0; i < format.size();) {
    if (ControlSequenceLength(format, i) > 0) {
      return FormatError(i, "line breaks and control characters are not allowed");
    }
    const char c = format[i];
    if (c == '{' || c == '}') {
      if (i + 1 < format.size() && format[i + 1] == c) {  // `{{` or `}}`: a literal brace
        literal().push_back(c);
        i += 2;
        continue;
      }
      if (c == '}') return FormatError(i, "unbalanced '}' (write '}}' for a literal brace)");
      const size_t close = format.find('}', i + 1);
      if (close == absl::string_view::npos) {
        return FormatError(i, "unbalanced '{' (write '{{' for a literal brace)");
      }
      const absl::string_view field = format.substr(i + 1, close - i - 1);
      if (field == "key") {
        segments->push_back({Field::kKey, ""});
      } else if (field == "name") {
        segments->push_back({Field::kName, ""});
      } else {
        return FormatError(i, absl::StrCat("unknown field \"", absl::CHexEscape(field),
                                           "\" (known: {key}, {name})"));
      }
      i = close + 1;
      continue;
    }
    literal().push_back(c);
    ++i;
  }
  return absl::OkStatus();
}

namespace {

struct MacCtxDeleter {
  void operator()(EVP_MAC_CTX* ctx) const { EVP_MAC_CTX_free(ctx); }
};

// HMAC-SHA256(key, stack || 0x00 || value) truncated to kFingerprintDigestBytes (raw bytes), or
// "" if OpenSSL fails. Streamed through EVP_MAC so the value is never copied into an unwiped
// buffer.
std::string TruncatedHmac(absl::string_view key, absl::string_view stack,
                          absl::string_view value) {
  // Fetched once: the fetch searches the provider tables, the costly step. EVP_MAC is
  // reference-counted and safe to share between threads.
  static EVP_MAC* const hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (hmac == nullptr) return "";
  std::unique_ptr<EVP_MAC_CTX, MacCtxDeleter> ctx(EVP_MAC_CTX_new(hmac));
  if (ctx == nullptr) return "";

  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  const auto update = [&ctx](absl::string_view data) {
    return data.empty() ||
           EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()),
                          data.size()) == 1;
  };
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mac_size = 0;
  // The NUL separates stack from value, so ("ab", "c") and ("a", "bc") never collide.
  const bool ok =
      EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                   params) == 1 &&
      update(stack) && update(absl::string_view("\0", 1)) && update(value) &&
      EVP_MAC_final(ctx.get(), mac, &mac_size, sizeof(mac)) == 1 &&
      mac_size >= kFingerprintDigestBytes;
  if (!ok) return "";
  return std::string(reinterpret_cast<const char*>(mac), kFingerprintDigestBytes);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedactionTokens>> RedactionTokens::Create(
    absl::string_view placeholder_format, SecretBytes fingerprint_key) {
  // An empty placeholder would make the caller's logger delete secrets without a trace.
  if (placeholder_format.empty()) {
    return absl::InvalidArgumentError("placeholder format: must not be empty");
  }
  std::vector<Segment> segments;
  if (absl::Status status = ParseFormat(placeholder_format, &segments); !status.ok()) {
    return status;
  }
  if (fingerprint_key.size() < kMinFingerprintKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("fingerprint key: ", fingerprint_key.size(),
                     " bytes, fewer than the minimum of ", kMinFingerprintKeyBytes));
  }
  // Fingerprint() cannot report errors, so find a missing HMAC (e.g. a restricted OpenSSL
  // provider configuration) once, at startup, rather than on every resolution.
  if (TruncatedHmac(fingerprint_key.reveal(), "", "").empty()) {
    return absl::FailedPreconditionError("OpenSSL cannot compute HMAC-SHA256");
  }
  return absl::WrapUnique(new RedactionTokens(std::move(segments), std::move(fingerprint_key)));
}

RedactionTokens::RedactionTokens(std::vector<Segment> placeholder, SecretBytes fingerprint_key)
    : placeholder_(std::move(placeholder)), fingerprint_key_(std::move(fingerprint_key)) {
  for (const Segment& segment : placeholder_) {
    literal_bytes_ += segment.literal.size();
    key_uses_ += segment.field == Field::kKey ? 1 : 0;
    name_uses_ += segment.field == Field::kName ? 1 : 0;
  }
}

std::string RedactionTokens::Placeholder(absl::string_view key, absl::string_view name) const {
  std::string out(PlaceholderSize(key, name), '\0');
  WritePlaceholder(key, name, out.data());
  return out;
}

size_t RedactionTokens::PlaceholderSize(absl::string_view key, absl::string_view name) const {
  return literal_bytes_ + (key_uses_ > 0 ? key_uses_ * OneLineSize(key) : 0) +
         (name_uses_ > 0 ? name_uses_ * OneLineSize(name) : 0);
}

char* RedactionTokens::WritePlaceholder(absl::string_view key, absl::string_view name,
                                        char* out) const {
  for (const Segment& segment : placeholder_) {
    switch (segment.field) {
      case Field::kLiteral:
        out = std::copy(segment.literal.begin(), segment.literal.end(), out);
        break;
      case Field::kKey:
        out = PutOneLine(key, out);
        break;
      case Field::kName:
        out = PutOneLine(name, out);
        break;
    }
  }
  return out;
}

std::string RedactionTokens::Fingerprint(absl::string_view stack,
                                         const SecretBytes& value) const {
  return FormatFingerprint(FingerprintDigest(stack, value));
}

std::string RedactionTokens::FingerprintDigest(absl::string_view stack,
                                               const SecretBytes& value) const {
  // Empty only if OpenSSL fails after Create() checked it (allocation failure): callers treat
  // an empty fingerprint as "none", which is safer than a wrong one.
  return TruncatedHmac(fingerprint_key_.reveal(), stack, value.reveal());
}

std::string RedactionTokens::FormatFingerprint(absl::string_view digest) {
  std::string out(FingerprintSize(digest), '\0');
  WriteFingerprint(digest, out.data());
  return out;
}

size_t RedactionTokens::FingerprintSize(absl::string_view digest) {
  return digest.empty() ? 0 : kFingerprintPrefix.size() + 2 * digest.size();
}

char* RedactionTokens::WriteFingerprint(absl::string_view digest, char* out) {
  if (digest.empty()) return out;
  // Written for every resolved reference, so two digits at a time.
  static constexpr auto kHexPairs = [] {
    constexpr char kHex[] = "0123456789abcdef";
    std::array<char, 512> pairs{};
    for (int byte = 0; byte < 256; ++byte) {
      pairs[2 * byte] = kHex[byte >> 4];
      pairs[2 * byte + 1] = kHex[byte & 0xf];
    }
    return pairs;
  }();
  out = std::copy(kFingerprintPrefix.begin(), kFingerprintPrefix.end(), out);
  for (char c : digest) {
    std::memcpy(out, &kHexPairs[2 * static_cast<unsigned char>(c)], 2);
    out += 2;
  }
  return out;
}

}  // namespace secret_resolver
