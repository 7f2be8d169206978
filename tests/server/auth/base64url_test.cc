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

// Whole four-character groups and the two- or three-character tail are decoded apart: a byte
// outside the alphabet is refused at every position of either.
TEST(Base64UrlTest, RejectsANonAlphabetByteAtEveryPosition) {
  std::string bytes;
  for (int length = 0; length < 10; ++length) {
    const std::string encoded = Base64UrlEncode(bytes);
    for (size_t at = 0; at < encoded.size(); ++at) {
      for (char bad : {'=', '+', '/', '.', ' ', '\0', '\x7f', '\x80', '\xff'}) {
        std::string broken = encoded;
        broken[at] = bad;
        EXPECT_FALSE(Base64UrlDecode(broken).has_value()) << encoded << " at " << at;
      }
    }
    bytes.push_back(static_cast<char>(0xa5 + length));
  }
  // Spare low bits in a two-character tail (4 bits) and a three-character tail (2 bits).
  EXPECT_EQ(*Base64UrlDecode("AQ"), std::string("\x01"));
  EXPECT_FALSE(Base64UrlDecode("AB").has_value());
  EXPECT_FALSE(Base64UrlDecode("AAAAAB").has_value());
  EXPECT_EQ(*Base64UrlDecode("AAE"), std::string("\0\x01", 2));
  EXPECT_FALSE(Base64UrlDecode("AAF").has_value());
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
