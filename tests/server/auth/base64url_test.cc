// Tests of strict base64url and strict JSON, the two parsers every token byte goes through.
#include "server/auth/base64url.h"

#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "server/auth/strict_json.h"

namespace secret_resolver {
namespace auth {
namespace {

TEST(Base64UrlTest, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 70; ++i) {
    const std::string encoded = Base64UrlEncode(bytes);
    EXPECT_EQ(encoded.find('='), std::string::npos);
    std::optional<std::string> decoded = Base64UrlDecode(encoded);
    ASSERT_TRUE(decoded.has_value()) << i;
    EXPECT_EQ(*decoded, bytes);
    bytes.push_back(static_cast<char>(i * 37 + 250));
  }
}

TEST(Base64UrlTest, KnownVectors) {
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_EQ(*Base64UrlDecode("-_8"), "\xfb\xff");
  EXPECT_EQ(*Base64UrlDecode("eyJhIjoxfQ"), "{\"a\":1}");
  EXPECT_EQ(*Base64UrlDecode(""), "");
}

TEST(Base64UrlTest, RejectsEverythingButTheCanonicalForm) {
  for (const char* bad : {"eyJhIjoxfQ==", "eyJhIjoxfQ=", "+/8", "ab cd", "abcde", "a",
                          "-_9",  // unused low bits set: a second spelling of "\xfb\xff"
                          "eyJhIjoxfR"}) {
    EXPECT_FALSE(Base64UrlDecode(bad).has_value()) << bad;
  }
}

TEST(StrictJsonTest, ParsesOrdinaryJson) {
  auto v = ParseStrictJson(R"({"a": [1, {"b": null}], "c": "d"})");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ((*v)["c"], "d");
}

TEST(StrictJsonTest, RejectsDuplicateMembersAtAnyDepth) {
  EXPECT_FALSE(ParseStrictJson(R"({"a": 1, "a": 2})").has_value());
  EXPECT_FALSE(ParseStrictJson(R"({"x": [{"a": 1, "a": 1}]})").has_value());
  EXPECT_TRUE(ParseStrictJson(R"({"a": {"a": 1}, "b": {"a": 2}})").has_value());
}

TEST(StrictJsonTest, RejectsBadInput) {
  for (const char* bad : {"", "{", "{} {}", "{\"a\": 1,}", "// c\n{}", "{\"a\": \"\xff\"}"}) {
    EXPECT_FALSE(ParseStrictJson(bad).has_value()) << bad;
  }
}

TEST(StrictJsonTest, RejectsDeepNesting) {
  std::string deep(40, '[');
  deep += std::string(40, ']');
  EXPECT_FALSE(ParseStrictJson(deep).has_value());
  EXPECT_TRUE(ParseStrictJson(deep, 64).has_value());
}

}  // namespace
}  // namespace auth
}  // namespace secret_resolver
