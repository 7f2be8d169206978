#include "resolver/redaction.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "resolver/secret_bytes.h"

namespace secret_resolver {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// Test keys and values, built the same way as in the Python command below.
//   key_a = bytes(range(32))
//   key_b = bytes((i * 37 + 11) % 256 for i in range(100))   (longer than SHA-256's block)
//   key_c = b"k" * 32
//   big   = bytes((i * 7 + 3) % 256 for i in range(24576))   (the largest allowed value)
SecretBytes KeyA() {
  std::string key;
  for (int i = 0; i < 32; ++i) key.push_back(static_cast<char>(i));
  return SecretBytes(key);
}

SecretBytes KeyB() {
  std::string key;
  for (int i = 0; i < 100; ++i) key.push_back(static_cast<char>((i * 37 + 11) % 256));
  return SecretBytes(key);
}

SecretBytes KeyC() { return SecretBytes(std::string(32, 'k')); }

SecretBytes BigValue() {
  std::string value;
  for (int i = 0; i < 24576; ++i) value.push_back(static_cast<char>((i * 7 + 3) % 256));
  return SecretBytes(value);
}

// Expected fingerprints, computed independently of this code with:
//
// /usr/bin/python3 -c '
// import hmac, hashlib
// def fp(key, stack, value):
//     return "hmac-sha256:" + hmac.new(key, stack + b"\x00" + value,
//                                      hashlib.sha256).digest()[:16].hex()
// k1 = bytes(range(32))
// k2 = bytes((i * 37 + 11) % 256 for i in range(100))
// big = bytes((i * 7 + 3) % 256 for i in range(24576))
// print("1", fp(k1, b"stacks-123", b"example-value"))
// print("2", fp(k1, b"stacks-456", b"example-value"))
// print("3", fp(k1, b"stack-123", b"example-value"))
// print("4", fp(k2, b"default", b"\x00\x01\xfe\xff\n\r\x00"))
// print("5", fp(k2, b"org-2", big))
// print("6", fp(b"k" * 32, b"", b"x"))'
//
// Vector 1 was cross-checked with OpenSSL's command line (the first 32 hex digits match):
//   printf 'stacks-123\0example-value' | openssl dgst -sha256 -mac HMAC -macopt
//     hexkey:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
constexpr char kVector1[] = "hmac-sha256:16f6f56b349c803f040afb3188e2f0e1";
constexpr char kVector2[] = "hmac-sha256:f5088a4467934c3fb3b327c25985ee0e";
constexpr char kVector3[] = "hmac-sha256:30987727ea71d91f825b5e4e12ccee0a";
constexpr char kVector4[] = "hmac-sha256:111ec253763cac4a017cf8bccf20a292";
constexpr char kVector5[] = "hmac-sha256:14f6de478e921a920ba6f79bcbcc8edc";
constexpr char kVector6[] = "hmac-sha256:df5d03bef615f5d6711479e8d49bb10e";

std::unique_ptr<RedactionTokens> MakeTokens(absl::string_view format, SecretBytes key) {
  absl::StatusOr<std::unique_ptr<RedactionTokens>> tokens =
      RedactionTokens::Create(format, std::move(key));
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kOk) << tokens.status().message();
  return tokens.ok() ? std::move(*tokens) : nullptr;
}

// --- Create ---

TEST(RedactionCreateTest, FingerprintKeyLengthBoundaries) {
  EXPECT_EQ(RedactionTokens::Create(kDefaultPlaceholderFormat, SecretBytes()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RedactionTokens::Create(kDefaultPlaceholderFormat, SecretBytes(std::string(31, 'k')))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RedactionTokens::Create(kDefaultPlaceholderFormat, SecretBytes(std::string(32, 'k')))
                .status()
                .code(),
            absl::StatusCode::kOk);
  EXPECT_EQ(RedactionTokens::Create(kDefaultPlaceholderFormat, KeyB()).status().code(),
            absl::StatusCode::kOk);
}

TEST(RedactionCreateTest, ShortKeyMessageGivesSizesNotTheKey) {
  const absl::Status status =
      RedactionTokens::Create(kDefaultPlaceholderFormat, SecretBytes("KEYMARKER")).status();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("fingerprint key"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("32"));
  EXPECT_EQ(status.message().find("KEYMARKER"), absl::string_view::npos);
}

struct BadFormatCase {
  std::string label;
  std::string format;
  std::string message_part;
};

class RedactionBadFormatTest : public testing::TestWithParam<BadFormatCase> {};

TEST_P(RedactionBadFormatTest, IsInvalidArgumentWithPosition) {
  const BadFormatCase& c = GetParam();
  const absl::Status status = RedactionTokens::Create(c.format, KeyA()).status();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("placeholder format"));
  EXPECT_THAT(std::string(status.message()), HasSubstr(c.message_part));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RedactionBadFormatTest,
    testing::Values(
        BadFormatCase{"Empty", "", "must not be empty"},
        BadFormatCase{"UnknownField", "***{value}***", "byte 3: unknown field \"value\""},
        BadFormatCase{"EmptyField", "{}", "byte 0: unknown field \"\""},
        BadFormatCase{"UpperCaseField", "{KEY}", "unknown field \"KEY\""},
        BadFormatCase{"SpaceInField", "{ key}", "unknown field \" key\""},
        BadFormatCase{"UnclosedBrace", "***{key", "byte 3: unbalanced '{'"},
        BadFormatCase{"LoneOpenBrace", "{", "byte 0: unbalanced '{'"},
        BadFormatCase{"LoneCloseBrace", "}", "byte 0: unbalanced '}'"},
        BadFormatCase{"CloseBeforeOpen", "key}{", "byte 3: unbalanced '}'"},
        BadFormatCase{"EscapedOpenThenClose", "{{key}", "byte 5: unbalanced '}'"},
        BadFormatCase{"OddClosingBraces", "{key}}}}", "byte 7: unbalanced '}'"},
        BadFormatCase{"Newline", "***\n{key}***", "byte 3: line breaks"},
        BadFormatCase{"CarriageReturn", "{key}\r", "byte 5: line breaks"},
        BadFormatCase{"Tab", "\t{key}", "byte 0: line breaks and control characters"},
        BadFormatCase{"LineSeparator", "a\xe2\x80\xa8{key}", "byte 1: line breaks"},
        BadFormatCase{"NextLine", "a\xc2\x85{key}", "byte 1: line breaks"}),
    [](const testing::TestParamInfo<BadFormatCase>& info) { return info.param.label; });

// --- Placeholder ---

struct PlaceholderCase {
  std::string label;
  std::string format;
  std::string key;
  std::string name;
  std::string expected;
};

class RedactionPlaceholderTest : public testing::TestWithParam<PlaceholderCase> {};

TEST_P(RedactionPlaceholderTest, Expands) {
  const PlaceholderCase& c = GetParam();
  const std::unique_ptr<RedactionTokens> tokens = MakeTokens(c.format, KeyA());
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->Placeholder(c.key, c.name), c.expected);
  // Written in place: exactly PlaceholderSize bytes, and nothing past them.
  ASSERT_EQ(tokens->PlaceholderSize(c.key, c.name), c.expected.size());
  std::string buffer(c.expected.size() + 4, '#');
  EXPECT_EQ(tokens->WritePlaceholder(c.key, c.name, buffer.data()),
            buffer.data() + c.expected.size());
  EXPECT_EQ(buffer, c.expected + "####");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RedactionPlaceholderTest,
    testing::Values(
        PlaceholderCase{"Default", std::string(kDefaultPlaceholderFormat), "api-token",
                        "workflows/http/auth-token", "***SECRET_REDACTED:api-token***"},
        PlaceholderCase{"Name", "[{name}]", "api-token", "workflows/http/auth-token",
                        "[workflows/http/auth-token]"},
        PlaceholderCase{"BothFieldsRepeated", "{key}/{name}/{key}", "k", "n", "k/n/k"},
        PlaceholderCase{"NoFields", "[REDACTED]", "k", "n", "[REDACTED]"},
        PlaceholderCase{"EscapedBraces", "{{{key}}}", "k", "n", "{k}"},
        PlaceholderCase{"EscapedBracesOnly", "{{}}", "k", "n", "{}"},
        PlaceholderCase{"EscapedFieldIsLiteral", "{{key}}", "k", "n", "{key}"},
        PlaceholderCase{"NonAsciiFormat", "\xe2\x96\x88{key}", "k", "n", "\xe2\x96\x88k"},
        PlaceholderCase{"EmptyKeyAndName", "<{key}|{name}>", "", "", "<|>"},
        // Braces in a field value are text, never expanded again.
        PlaceholderCase{"KeyHoldingAField", "<{key}>", "{name}", "n", "<{name}>"},
        PlaceholderCase{"NewlineInKey", "<{key}>", "a\nb", "n", "<a?b>"},
        PlaceholderCase{"CrLfInName", "<{name}>", "k", "a\r\nb", "<a??b>"},
        PlaceholderCase{"KeyTwiceWithLineSeparator", "{key}|{key}", "a\xe2\x80\xa8" "b", "n",
                        "a?b|a?b"},
        PlaceholderCase{"EscapeSequenceInKey", "<{key}>", "\x1b[31m", "n", "<?[31m>"},
        PlaceholderCase{"NulAndDelInKey", "<{key}>", std::string("a\0b\x7f", 4), "n",
                        "<a?b?>"},
        PlaceholderCase{"LineSeparatorInKey", "<{key}>", "a\xe2\x80\xa8" "b", "n", "<a?b>"},
        PlaceholderCase{"ParagraphSeparatorInName", "<{name}>", "k", "\xe2\x80\xa9", "<?>"},
        PlaceholderCase{"NextLineInKey", "<{key}>", "a\xc2\x85", "n", "<a?>"},
        PlaceholderCase{"TruncatedUtf8IsKept", "<{key}>", "a\xe2\x80", "n", "<a\xe2\x80>"},
        PlaceholderCase{"OrdinaryUtf8IsKept", "<{key}>", "caf\xc3\xa9", "n",
                        "<caf\xc3\xa9>"}),
    [](const testing::TestParamInfo<PlaceholderCase>& info) { return info.param.label; });

// --- Fingerprint ---

TEST(RedactionFingerprintTest, MatchesIndependentlyComputedVectors) {
  const std::unique_ptr<RedactionTokens> a = MakeTokens(kDefaultPlaceholderFormat, KeyA());
  const std::unique_ptr<RedactionTokens> b = MakeTokens(kDefaultPlaceholderFormat, KeyB());
  const std::unique_ptr<RedactionTokens> c = MakeTokens(kDefaultPlaceholderFormat, KeyC());
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  const SecretBytes value("example-value");
  EXPECT_EQ(a->Fingerprint("stacks-123", value), kVector1);
  EXPECT_EQ(a->Fingerprint("stacks-456", value), kVector2);
  EXPECT_EQ(a->Fingerprint("stack-123", value), kVector3);
  EXPECT_EQ(b->Fingerprint("default", SecretBytes(std::string("\x00\x01\xfe\xff\n\r\x00", 7))),
            kVector4);
  EXPECT_EQ(b->Fingerprint("org-2", BigValue()), kVector5);
  EXPECT_EQ(c->Fingerprint("", SecretBytes("x")), kVector6);
}

TEST(RedactionFingerprintTest, WrittenInPlaceAsFormatted) {
  const std::string digest("\x00\x7f\x80\xff", 4);
  EXPECT_EQ(RedactionTokens::FormatFingerprint(digest), "hmac-sha256:007f80ff");
  ASSERT_EQ(RedactionTokens::FingerprintSize(digest), 20u);
  std::string buffer(24, '#');
  EXPECT_EQ(RedactionTokens::WriteFingerprint(digest, buffer.data()), buffer.data() + 20);
  EXPECT_EQ(buffer, "hmac-sha256:007f80ff####");
  // No digest (OpenSSL failed): no text.
  EXPECT_EQ(RedactionTokens::FingerprintSize(""), 0u);
  EXPECT_EQ(RedactionTokens::FormatFingerprint(""), "");
}

TEST(RedactionFingerprintTest, HasPrefixAnd32LowercaseHexDigits) {
  const std::unique_ptr<RedactionTokens> tokens = MakeTokens(kDefaultPlaceholderFormat, KeyA());
  ASSERT_NE(tokens, nullptr);
  EXPECT_THAT(tokens->Fingerprint("stacks-1", SecretBytes("example-value")),
              MatchesRegex("hmac-sha256:[0-9a-f]{32}"));
}

TEST(RedactionFingerprintTest, DifferentStacksGiveDifferentFingerprints) {
  const std::unique_ptr<RedactionTokens> tokens = MakeTokens(kDefaultPlaceholderFormat, KeyA());
  ASSERT_NE(tokens, nullptr);
  const SecretBytes value("example-value");
  EXPECT_NE(tokens->Fingerprint("stacks-1", value), tokens->Fingerprint("stacks-2", value));
  EXPECT_NE(tokens->Fingerprint("default", value), tokens->Fingerprint("org-2", value));
}

TEST(RedactionFingerprintTest, StackValueBoundaryIsPartOfTheInput) {
  // Without the NUL separator ("ab", "c") and ("a", "bc") would hash the same bytes.
  const std::unique_ptr<RedactionTokens> tokens = MakeTokens(kDefaultPlaceholderFormat, KeyA());
  ASSERT_NE(tokens, nullptr);
  EXPECT_NE(tokens->Fingerprint("ab", SecretBytes("c")),
            tokens->Fingerprint("a", SecretBytes("bc")));
}

TEST(RedactionFingerprintTest, SameKeyGivesSameFingerprintAcrossInstances) {
  // Replicas sharing the fingerprint key must agree, whatever their placeholder format.
  const std::unique_ptr<RedactionTokens> first = MakeTokens(kDefaultPlaceholderFormat, KeyA());
  const std::unique_ptr<RedactionTokens> second = MakeTokens("[REDACTED]", KeyA());
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const SecretBytes value("example-value");
  EXPECT_EQ(first->Fingerprint("stacks-1", value), second->Fingerprint("stacks-1", value));
  EXPECT_EQ(first->Fingerprint("stacks-1", value), first->Fingerprint("stacks-1", value));
}

TEST(RedactionFingerprintTest, DifferentKeysGiveDifferentFingerprints) {
  const std::unique_ptr<RedactionTokens> a = MakeTokens(kDefaultPlaceholderFormat, KeyA());
  const std::unique_ptr<RedactionTokens> c = MakeTokens(kDefaultPlaceholderFormat, KeyC());
  ASSERT_NE(a, nullptr);
  ASSERT_NE(c, nullptr);
  const SecretBytes value("example-value");
  EXPECT_NE(a->Fingerprint("stacks-1", value), c->Fingerprint("stacks-1", value));
}

}  // namespace
}  // namespace secret_resolver
