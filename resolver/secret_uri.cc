#include "resolver/secret_uri.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/base/attributes.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace secret_resolver {
namespace {

// Every byte falls in one class, used to validate ref keys and to describe forbidden bytes.
enum ByteClass : uint8_t {
  kAlnum,      // a-z, 0-9
  kUpper,      // A-Z
  kHyphen,     // -
  kDot,        // .
  kSlash,      // /
  kUnderscore, // _
  kPercent,    // %
  kQuery,      // ?
  kFragment,   // #
  kWhitespace, // space, \t, \n, \v, \f, \r
  kNul,        // 0x00
  kControl,    // other bytes below 0x20, and 0x7f
  kNonAscii,   // 0x80-0xff
  kOther,      // any other printable ASCII character
};

constexpr std::array<ByteClass, 256> MakeByteClasses() {
  std::array<ByteClass, 256> classes{};
  for (int c = 0; c < 256; ++c) {
    ByteClass cls = kOther;
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      cls = kAlnum;
    } else if (c >= 'A' && c <= 'Z') {
      cls = kUpper;
    } else if (c == '-') {
      cls = kHyphen;
    } else if (c == '.') {
      cls = kDot;
    } else if (c == '/') {
      cls = kSlash;
    } else if (c == '_') {
      cls = kUnderscore;
    } else if (c == '%') {
      cls = kPercent;
    } else if (c == '?') {
      cls = kQuery;
    } else if (c == '#') {
      cls = kFragment;
    } else if (c == ' ' || (c >= '\t' && c <= '\r')) {
      cls = kWhitespace;
    } else if (c == 0) {
      cls = kNul;
    } else if (c < 0x20 || c == 0x7f) {
      cls = kControl;
    } else if (c >= 0x80) {
      cls = kNonAscii;
    }
    classes[c] = cls;
  }
  return classes;
}

constexpr std::array<ByteClass, 256> kByteClasses = MakeByteClasses();

ByteClass ClassOf(char c) { return kByteClasses[static_cast<unsigned char>(c)]; }

constexpr std::array<bool, 256> MakeLabelBytes() {
  std::array<bool, 256> label_bytes{};
  for (int c = 0; c < 256; ++c) label_bytes[c] = kByteClasses[c] == kAlnum || c == '-';
  return label_bytes;
}

constexpr std::array<bool, 256> kLabelBytes = MakeLabelBytes();

// Whether the 8 bytes at `p` are all a-z, 0-9 or '-', tested together (SWAR): each test below
// leaves a byte's high bit set when that byte passes, and no addition carries into the next
// byte because every byte is below 0x80 by then.
bool AllLabelBytes(const char* p) {
  uint64_t x;
  std::memcpy(&x, p, sizeof(x));
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  if (x & kHigh) return false;
  // At least k: b + (0x80 - k) reaches 0x80.
  auto at_least = [x](uint64_t k) { return x + kOnes * (0x80 - k); };
  const uint64_t lower = at_least('a') & ~at_least('z' + 1);
  const uint64_t digit = at_least('0') & ~at_least('9' + 1);
  const uint64_t hyphen = ~((x ^ (kOnes * '-')) + kOnes * 0x7f);
  return ((lower | digit | hyphen) & kHigh) == kHigh;
}

// a-z, 0-9 and '-': what a label is made of.
bool IsLabelByte(char c) { return kLabelBytes[static_cast<unsigned char>(c)]; }

// How a byte appears in a message: printable ASCII quoted ('A'), anything else in hex (0x00),
// so a message never carries control characters or fragments of a multi-byte character.
std::string ByteName(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  if (u > 0x20 && u < 0x7f) return absl::StrFormat("'%c'", c);
  return absl::StrFormat("0x%02x", u);
}

// `what` is the message prefix ("secret URI", "secret name", "ref key"); `position` counts bytes
// in the caller's input. Kept out of line: errors are the cold path.
ABSL_ATTRIBUTE_NOINLINE absl::Status PositionError(absl::string_view what, size_t position,
                                                   absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": byte ", position, ": ", rule));
}

// A byte that may never appear, described by its class. `where` is "a name" or "a ref key".
ABSL_ATTRIBUTE_NOINLINE absl::Status ForbiddenByteError(absl::string_view what, size_t position,
                                                        char c, absl::string_view where,
                                                        absl::string_view allowed) {
  std::string rule;
  switch (ClassOf(c)) {
    case kUpper:
      rule = absl::StrCat("upper-case letter ", ByteName(c), " is not allowed in ", where,
                          " (names are lowercase)");
      break;
    case kPercent:
      rule = absl::StrCat("'%' is not allowed in ", where, " (no percent-escapes)");
      break;
    case kQuery:
      rule = absl::StrCat("'?' is not allowed in ", where, " (no query)");
      break;
    case kFragment:
      rule = absl::StrCat("'#' is not allowed in ", where, " (no fragment)");
      break;
    case kWhitespace:
      rule = absl::StrCat("whitespace ", ByteName(c), " is not allowed in ", where);
      break;
    case kNul:
      rule = absl::StrCat("NUL byte ", ByteName(c), " is not allowed in ", where);
      break;
    case kControl:
      rule = absl::StrCat("control byte ", ByteName(c), " is not allowed in ", where);
      break;
    case kNonAscii:
      rule = absl::StrCat("non-ASCII byte ", ByteName(c), " is not allowed in ", where,
                          " (ASCII only)");
      break;
    default:
      rule = absl::StrCat("character ", ByteName(c), " is not allowed in ", where, " (allowed: ",
                          allowed, ")");
      break;
  }
  return PositionError(what, position, rule);
}

constexpr absl::string_view kNameChars = "a-z, 0-9, '-', '.', '/'";

// Validates input[offset..] as a secret name; positions in messages count from the start of
// `input`, so a URI's errors point into the URI.
absl::Status CheckName(absl::string_view input, size_t offset, absl::string_view what) {
  const size_t length = input.size() - offset;
  if (length == 0) {
    return PositionError(what, offset, "empty name (a name is 1-253 characters)");
  }
  if (length > kMaxNameLength) {
    return PositionError(what, offset + kMaxNameLength,
                         absl::StrCat("name is ", length, " bytes long, more than the limit of ",
                                      kMaxNameLength));
  }
  const char* const data = input.data();
  const size_t end = input.size();
  size_t i = offset;
  // One label per iteration: a run of label bytes, then a separator, a forbidden byte or the
  // end. Checking the label's edges once per run, not per byte, keeps the hot loop to a table
  // load and a branch.
  while (true) {
    const size_t start = i;
    while (i + 8 <= end && AllLabelBytes(data + i)) i += 8;
    while (i < end && IsLabelByte(data[i])) ++i;
    if (i == start) {
      // Nothing since the last separator (or the start): say which rule that breaks.
      if (i == end) {  // the name ends with a separator
        if (data[i - 1] == '/') return PositionError(what, i - 1, "trailing '/' (no empty segment)");
        return PositionError(what, i - 1,
                             "'.' cannot end a name (labels end with a letter or digit)");
      }
      const char c = data[i];
      if (c == '/') {
        if (i == offset) return PositionError(what, i, "leading '/' (no empty segment)");
        if (data[i - 1] == '/') return PositionError(what, i, "empty segment ('//')");
        return PositionError(what, i - 1,
                             "'.' cannot end a segment (labels end with a letter or digit)");
      }
      if (c == '.') {
        if (i == offset || data[i - 1] == '/') {
          return PositionError(what, i,
                               "'.' cannot start a segment (labels start with a letter or digit)");
        }
        return PositionError(what, i, "empty label ('..')");
      }
      return ForbiddenByteError(what, i, c, "a name", kNameChars);
    }
    if (data[start] == '-') {
      return PositionError(what, start,
                           "'-' cannot start a label (labels start with a letter or digit)");
    }
    if (i - start > kMaxLabelLength) {
      return PositionError(what, start + kMaxLabelLength, "label is longer than 63 characters");
    }
    if (i < end && data[i] != '.' && data[i] != '/') {
      return ForbiddenByteError(what, i, data[i], "a name", kNameChars);
    }
    if (data[i - 1] == '-') {
      return PositionError(what, i - 1,
                           "'-' cannot end a label (labels end with a letter or digit)");
    }
    if (i == end) return absl::OkStatus();
    ++i;  // past the separator
  }
}

bool IsRefKeyByte(char c) {
  switch (ClassOf(c)) {
    case kAlnum:
    case kUpper:
    case kHyphen:
    case kDot:
    case kUnderscore:
      return true;
    default:
      return false;
  }
}

}  // namespace

absl::StatusOr<absl::string_view> ParseSecretUri(absl::string_view uri) {
  // Compared whole rather than byte by byte: "byte 0" is the clearest position for a wrong
  // scheme, and the input is not echoed.
  if (uri.substr(0, kSecretScheme.size()) != kSecretScheme) {
    return PositionError("secret URI", 0, "the URI must start with \"secret://\"");
  }
  if (absl::Status status = CheckName(uri, kSecretScheme.size(), "secret URI"); !status.ok()) {
    return status;
  }
  return uri.substr(kSecretScheme.size());
}

absl::Status ValidateSecretName(absl::string_view name) {
  return CheckName(name, 0, "secret name");
}

absl::Status ValidateRefKey(absl::string_view key) {
  constexpr absl::string_view kWhat = "ref key";
  if (key.empty()) {
    return PositionError(kWhat, 0, "empty ref key (keys are 1-253 characters of A-Za-z0-9_.-)");
  }
  if (key.size() > kMaxRefKeyLength) {
    return PositionError(kWhat, kMaxRefKeyLength,
                         absl::StrCat("ref key is ", key.size(),
                                      " bytes long, more than the limit of ", kMaxRefKeyLength));
  }
  for (size_t i = 0; i < key.size(); ++i) {
    if (!IsRefKeyByte(key[i])) {
      return ForbiddenByteError(kWhat, i, key[i], "a ref key", "A-Za-z0-9_.-");
    }
  }
  return absl::OkStatus();
}

}  // namespace secret_resolver
