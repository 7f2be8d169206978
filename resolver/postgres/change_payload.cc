#include "resolver/postgres/change_payload.h"

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace secret_resolver {
namespace {

void AppendJsonString(absl::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (const char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out.append("\\u00");
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void AppendUtf8(uint32_t code_point, std::string& out) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3f)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3f)));
  }
}

// A cursor over the payload that reports errors with the byte position.
class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::Status Error(absl::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat("change notification payload: byte ", pos_, ": ", problem));
  }

  void SkipWhitespace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool AtEnd() const { return pos_ >= text_.size(); }

  // The next byte, or NUL at the end.
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }

  // Consumes `c` after optional whitespace.
  bool Consume(char c) {
    SkipWhitespace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  absl::StatusOr<std::string> String() {
    SkipWhitespace();
    if (AtEnd() || text_[pos_] != '"') return Error("expected a string");
    ++pos_;
    std::string out;
    while (true) {
      if (AtEnd()) return Error("unterminated string");
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in a string");
      if (c != '\\') {
        out.push_back(c);
        ++pos_;
        continue;
      }
      ++pos_;
      if (AtEnd()) return Error("unterminated escape");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out.push_back(e);
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          absl::StatusOr<uint32_t> unit = HexUnit();
          if (!unit.ok()) return unit.status();
          uint32_t code_point = *unit;
          if (code_point >= 0xd800 && code_point < 0xdc00) {
            if (text_.substr(pos_, 2) != "\\u") return Error("unpaired surrogate");
            pos_ += 2;
            absl::StatusOr<uint32_t> low = HexUnit();
            if (!low.ok()) return low.status();
            if (*low < 0xdc00 || *low >= 0xe000) return Error("unpaired surrogate");
            code_point = 0x10000 + ((code_point - 0xd800) << 10) + (*low - 0xdc00);
          } else if (code_point >= 0xdc00 && code_point < 0xe000) {
            return Error("unpaired surrogate");
          }
          AppendUtf8(code_point, out);
          break;
        }
        default:
          --pos_;
          return Error("unknown escape");
      }
    }
  }

  // Skips a scalar value that is not a string: a number, true, false or null.
  absl::Status SkipScalar() {
    SkipWhitespace();
    const size_t start = pos_;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '+' &&
          c != '.') {
        break;
      }
      ++pos_;
    }
    const absl::string_view token = text_.substr(start, pos_ - start);
    if (token.empty()) {
      pos_ = start;
      return Error("expected a string, number, true, false or null");
    }
    if (token == "true" || token == "false" || token == "null") return absl::OkStatus();
    for (const char c : token) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '-' && c != '+' &&
          c != '.' && c != 'e' && c != 'E') {
        pos_ = start;
        return Error("expected a string, number, true, false or null");
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<uint32_t> HexUnit() {
    if (pos_ + 4 > text_.size()) return Error("truncated \\u escape");
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_];
      uint32_t digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return Error("bad hex digit in a \\u escape");
      }
      value = value * 16 + digit;
      ++pos_;
    }
    return value;
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

std::string EncodeChangePayload(absl::string_view stack, absl::string_view name) {
  std::string out = "{\"stack\":";
  AppendJsonString(stack, out);
  out.append(",\"name\":");
  AppendJsonString(name, out);
  out.push_back('}');
  return out;
}

absl::StatusOr<SecretChange> DecodeChangePayload(absl::string_view payload) {
  Parser parser(payload);
  if (!parser.Consume('{')) return parser.Error("expected '{'");
  std::optional<std::string> stack;
  std::optional<std::string> name;
  if (!parser.Consume('}')) {
    while (true) {
      absl::StatusOr<std::string> key = parser.String();
      if (!key.ok()) return key.status();
      if (!parser.Consume(':')) return parser.Error("expected ':'");
      parser.SkipWhitespace();
      if (*key == "stack" || *key == "name") {
        std::optional<std::string>& field = *key == "stack" ? stack : name;
        if (field.has_value()) return parser.Error(absl::StrCat("duplicate \"", *key, "\""));
        absl::StatusOr<std::string> value = parser.String();
        if (!value.ok()) return value.status();
        field = *std::move(value);
      } else if (parser.Peek() == '"') {
        absl::StatusOr<std::string> ignored = parser.String();
        if (!ignored.ok()) return ignored.status();
      } else if (absl::Status s = parser.SkipScalar(); !s.ok()) {
        return s;
      }
      if (parser.Consume(',')) continue;
      if (parser.Consume('}')) break;
      return parser.Error("expected ',' or '}'");
    }
  }
  parser.SkipWhitespace();
  if (!parser.AtEnd()) return parser.Error("unexpected text after the object");
  if (!stack.has_value() || stack->empty()) return parser.Error("\"stack\" missing or empty");
  if (!name.has_value() || name->empty()) return parser.Error("\"name\" missing or empty");
  return SecretChange::Of(*std::move(stack), *std::move(name));
}

}  // namespace secret_resolver
