#include "resolver/secret_uri.h"

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace secret_resolver {
namespace {

using ::testing::HasSubstr;
using namespace std::string_literals;  // "...\0..."s keeps embedded NULs

// Which function a case exercises.
enum class Check { kUri, kName, kRefKey };

struct Case {
  std::string label;  // the test name suffix
  Check check;
  std::string input;
  // For a valid input, the expected name (kUri) or empty; for an invalid one, unused.
  bool ok;
  std::string name;
  // For an invalid input: the byte position the message must name, and a fragment of the rule.
  size_t position = 0;
  std::string rule;
};

// Keeps gtest from printing inputs byte by byte.
void PrintTo(const Case& c, std::ostream* os) { *os << c.label; }

Case Valid(std::string label, std::string uri, std::string name) {
  return Case{std::move(label), Check::kUri, std::move(uri), true, std::move(name), 0, ""};
}
Case Invalid(std::string label, Check check, std::string input, size_t position,
             std::string rule) {
  return Case{std::move(label), check, std::move(input), false, "", position, std::move(rule)};
}
Case InvalidUri(std::string label, std::string uri, size_t position, std::string rule) {
  return Invalid(std::move(label), Check::kUri, std::move(uri), position, std::move(rule));
}
Case ValidOther(std::string label, Check check, std::string input) {
  return Case{std::move(label), check, std::move(input), true, "", 0, ""};
}

// A label of `length` characters: lowercase letters and digits.
std::string Label(size_t length) {
  std::string label;
  for (size_t i = 0; i < length; ++i) label.push_back("abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]);
  return label;
}

// A valid name of exactly `length` (>= 4) characters: 63-character labels joined by '.' and '/'.
std::string NameOfLength(size_t length) {
  std::string name;
  int joins = 0;
  while (name.size() < length) {
    if (!name.empty()) name.push_back(joins++ % 2 == 0 ? '.' : '/');
    const size_t room = length - name.size();
    // Never leave a 1-character remainder that would need a join with no label after it.
    size_t take = room > 63 ? 63 : room;
    if (room > 63 && room - 63 < 2) take = 61;
    name += Label(take);
  }
  return name;
}

std::vector<Case> Cases() {
  const std::string s = "secret://";
  return {
      // --- valid URIs ---
      Valid("ContractExample", "secret://workflows/http/auth-token", "workflows/http/auth-token"),
      Valid("OneLetter", "secret://a", "a"),
      Valid("OneDigit", "secret://7", "7"),
      Valid("DottedSubdomain", "secret://my.secret.name", "my.secret.name"),
      Valid("HyphensInside", "secret://a-b/c-d.e--f", "a-b/c-d.e--f"),
      Valid("ManySegments", "secret://a/b/c/d/e/f", "a/b/c/d/e/f"),
      Valid("GrafanaOneSegment", "secret://my-api-key-1", "my-api-key-1"),
      Valid("Label63", s + Label(63), Label(63)),
      Valid("Label63InLastSegment", s + "x/y." + Label(63), "x/y." + Label(63)),
      Valid("Name253", s + NameOfLength(253), NameOfLength(253)),
      Valid("DigitsOnlyLabels", "secret://0.1/2", "0.1/2"),

      // --- length ---
      InvalidUri("Name254", s + NameOfLength(254), 9 + 253, "more than the limit of 253"),
      InvalidUri("Label64", s + Label(64), 9 + 63, "longer than 63"),
      InvalidUri("Label64InSecondSegment", s + "x/" + Label(64), 11 + 63, "longer than 63"),
      InvalidUri("Label64AfterDot", s + "x." + Label(63) + "-", 11 + 63, "longer than 63"),
      InvalidUri("EmptyName", "secret://", 9, "empty name"),

      // --- scheme ---
      InvalidUri("WrongScheme", "http://a", 0, "must start with \"secret://\""),
      InvalidUri("MissingScheme", "workflows/http/auth-token", 0, "must start with"),
      InvalidUri("UpperCaseScheme", "SECRET://a", 0, "must start with"),
      InvalidUri("OneSlashScheme", "secret:/a", 0, "must start with"),
      InvalidUri("EmptyInput", "", 0, "must start with"),

      // --- forbidden bytes ---
      InvalidUri("UpperCase", "secret://workflows/Http", 19,
                 "upper-case letter 'H' is not allowed in a name (names are lowercase)"),
      InvalidUri("PercentEscape", "secret://a%2Fb", 10, "'%' is not allowed"),
      InvalidUri("Query", "secret://a?version=2", 10, "'?' is not allowed"),
      InvalidUri("Fragment", "secret://a#frag", 10, "'#' is not allowed"),
      InvalidUri("Space", "secret://a b", 10, "whitespace 0x20"),
      InvalidUri("Tab", "secret://a\tb", 10, "whitespace 0x09"),
      InvalidUri("TrailingNewline", "secret://a\n", 10, "whitespace 0x0a"),
      InvalidUri("NonAsciiUtf8", "secret://caf\xc3\xa9", 12, "non-ASCII byte 0xc3"),
      InvalidUri("EmbeddedNul", "secret://a\0b"s, 10, "NUL byte 0x00"),
      InvalidUri("ControlByte", "secret://a\x7f"s, 10, "control byte 0x7f"),
      InvalidUri("Underscore", "secret://my_key", 11, "character '_' is not allowed"),
      InvalidUri("Colon", "secret://a:b", 10, "character ':' is not allowed"),

      // --- structure ---
      InvalidUri("DoubleDot", "secret://a..b", 11, "empty label ('..')"),
      InvalidUri("DoubleSlash", "secret://a//b", 11, "empty segment ('//')"),
      InvalidUri("TrailingSlash", "secret://a/", 10, "trailing '/'"),
      InvalidUri("LeadingSlash", "secret:///a", 9, "leading '/'"),
      InvalidUri("OnlySlash", "secret:///", 9, "leading '/'"),
      InvalidUri("LabelStartsWithHyphen", "secret://-a", 9, "'-' cannot start a label"),
      InvalidUri("LabelAfterDotStartsWithHyphen", "secret://a.-b", 11, "'-' cannot start"),
      InvalidUri("LabelEndsWithHyphenBeforeDot", "secret://a-.b", 10, "'-' cannot end a label"),
      InvalidUri("LabelEndsWithHyphenBeforeSlash", "secret://a-/b", 10, "'-' cannot end"),
      InvalidUri("NameEndsWithHyphen", "secret://a-", 10, "'-' cannot end"),
      InvalidUri("LabelStartsWithDot", "secret://.a", 9, "'.' cannot start a segment"),
      InvalidUri("SegmentStartsWithDot", "secret://a/.b", 11, "'.' cannot start a segment"),
      InvalidUri("SegmentEndsWithDot", "secret://a./b", 10, "'.' cannot end a segment"),
      InvalidUri("NameEndsWithDot", "secret://a.", 10, "'.' cannot end a name"),
      InvalidUri("DotDotSegment", "secret://a/../b", 11, "'.' cannot start a segment"),

      // --- ValidateSecretName: positions count from the start of the name ---
      ValidOther("NameContractExample", Check::kName, "workflows/http/auth-token"),
      ValidOther("Name253Bare", Check::kName, NameOfLength(253)),
      Invalid("NameEmpty", Check::kName, "", 0, "empty name"),
      Invalid("NameUpperCase", Check::kName, "Api", 0, "upper-case letter 'A'"),
      Invalid("Name254Bare", Check::kName, NameOfLength(254), 253, "more than the limit"),
      Invalid("NameWithScheme", Check::kName, "secret://a", 6, "character ':'"),

      // --- ValidateRefKey ---
      ValidOther("KeyHyphen", Check::kRefKey, "my-api-token"),
      ValidOther("KeyMixed", Check::kRefKey, "My_Key.v2-X"),
      ValidOther("KeyOneChar", Check::kRefKey, "_"),
      ValidOther("Key253", Check::kRefKey, std::string(253, 'K')),
      Invalid("Key254", Check::kRefKey, std::string(254, 'K'), 253, "more than the limit of 253"),
      Invalid("KeyEmpty", Check::kRefKey, "", 0, "empty ref key"),
      Invalid("KeySlash", Check::kRefKey, "a/b", 1, "character '/' is not allowed in a ref key"),
      Invalid("KeySpace", Check::kRefKey, "a b", 1, "whitespace 0x20"),
      Invalid("KeyNul", Check::kRefKey, "ab\0"s, 2, "NUL byte 0x00"),
      Invalid("KeyNonAscii", Check::kRefKey, "\xc3\xa9t\xc3\xa9", 0, "non-ASCII byte 0xc3"),
      Invalid("KeyDollar", Check::kRefKey, "a$", 1, "character '$'"),
      Invalid("KeyColon", Check::kRefKey, "stack:key", 5, "character ':'"),
  };
}

class SecretUriTest : public ::testing::TestWithParam<Case> {};

TEST_P(SecretUriTest, ParsesOrNamesThePosition) {
  const Case& c = GetParam();
  absl::Status status;
  switch (c.check) {
    case Check::kUri: {
      absl::StatusOr<absl::string_view> name = ParseSecretUri(c.input);
      status = name.status();
      if (c.ok && name.ok()) {
        EXPECT_EQ(*name, c.name);
      }
      break;
    }
    case Check::kName:
      status = ValidateSecretName(c.input);
      break;
    case Check::kRefKey:
      status = ValidateRefKey(c.input);
      break;
  }
  if (c.ok) {
    EXPECT_EQ(status.code(), absl::StatusCode::kOk) << status.message();
    return;
  }
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::string message(status.message());
  EXPECT_THAT(message, HasSubstr(absl::StrCat(": byte ", c.position, ": ")));
  EXPECT_THAT(message, HasSubstr(c.rule));
  const absl::string_view prefix = c.check == Check::kUri    ? "secret URI: "
                                   : c.check == Check::kName ? "secret name: "
                                                             : "ref key: ";
  EXPECT_TRUE(absl::StartsWith(message, prefix)) << message;
  // Messages are printable ASCII: offending bytes are shown in hex.
  for (char ch : message) {
    EXPECT_TRUE(ch >= 0x20 && ch < 0x7f) << "byte " << static_cast<int>(ch);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, SecretUriTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.label;
                         });

TEST(SecretUriTest, TableHasAtLeastFortyCases) { EXPECT_GE(Cases().size(), 40u); }

TEST(SecretUriTest, RoundTripsEveryValidName) {
  for (const Case& c : Cases()) {
    if (c.check != Check::kUri || !c.ok) continue;
    absl::StatusOr<absl::string_view> name = ParseSecretUri(c.input);
    ASSERT_TRUE(name.ok()) << c.label;
    EXPECT_EQ(absl::StrCat(kSecretScheme, *name), c.input) << c.label;
    EXPECT_TRUE(ValidateSecretName(*name).ok()) << c.label;
  }
}

// Every byte value at every offset of a 20-byte name, so each byte meets the scanner both in
// the middle of an 8-byte block and at its edges.
TEST(SecretUriTest, EveryByteAtEveryOffset) {
  for (int byte = 0; byte < 256; ++byte) {
    const char c = static_cast<char>(byte);
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    const bool inner = c == '-' || c == '.' || c == '/';
    for (size_t pos = 0; pos < 20; ++pos) {
      std::string name(20, 'a');
      name[pos] = c;
      const bool want_ok = alnum || (inner && pos != 0 && pos != 19);
      const absl::Status status = ValidateSecretName(name);
      ASSERT_EQ(status.ok(), want_ok) << "byte " << byte << " at " << pos;
      if (!want_ok) {
        ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
        EXPECT_THAT(std::string(status.message()), HasSubstr(absl::StrCat(": byte ", pos, ": ")))
            << "byte " << byte << " at " << pos;
      }
    }
  }
}

// Deterministic garbage: printable and non-printable bytes, upper case early so it fails fast.
std::string Garbage(size_t length) {
  std::string garbage;
  uint32_t state = 12345;
  for (size_t i = 0; i < length; ++i) {
    state = state * 1103515245u + 12345u;
    garbage.push_back(static_cast<char>(state >> 16));
  }
  return garbage;
}

bool ContainsAnyRunOf(absl::string_view message, absl::string_view input, size_t run) {
  for (size_t i = 0; i + run <= input.size(); ++i) {
    if (message.find(input.substr(i, run)) != absl::string_view::npos) return true;
  }
  return false;
}

TEST(SecretUriTest, MessagesNeverEchoLongInput) {
  const std::vector<std::string> inputs = {
      "secret://" + std::string(300, 'Z'),
      "secret://a" + std::string(2000, 'Q'),
      "secret://" + Garbage(4096),
      "Secret://" + std::string(500, 'p'),
      "secret://" + Label(40) + "?" + std::string(1000, 'x'),
  };
  for (const std::string& input : inputs) {
    const absl::Status uri_status = ParseSecretUri(input).status();
    const absl::Status name_status = ValidateSecretName(input.substr(9));
    const absl::Status key_status = ValidateRefKey(input);
    for (const absl::Status& status : {uri_status, name_status, key_status}) {
      ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_LT(status.message().size(), 160u);
      EXPECT_EQ(status.message().find(input), absl::string_view::npos);
      // No run of 8 input bytes appears; the scheme and name prefixes are excluded since the
      // rule text may legitimately quote "secret://".
      EXPECT_FALSE(ContainsAnyRunOf(status.message(), absl::string_view(input).substr(9), 8));
    }
  }
}

}  // namespace
}  // namespace secret_resolver
