// Tests of DeriveRedactionPatterns: each listed encoding is present, computed independently
// (absl's base64, hand-written expectations), and the length rules hold. Assertions check
// membership by boolean so that failures never print a pattern.
#include "client/redactor/patterns.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"

namespace secret_resolver::client {
namespace {

constexpr absl::string_view kFake = "TEST-FAKE-SECRET/0001+value?";

std::vector<std::string> Patterns(absl::string_view value) {
  std::vector<std::string> out;
  for (const SecretBytes& pattern : DeriveRedactionPatterns(value)) {
    out.emplace_back(pattern.reveal());
  }
  return out;
}

bool Has(const std::vector<std::string>& patterns, absl::string_view wanted) {
  for (const std::string& pattern : patterns) {
    if (pattern == wanted) return true;
  }
  return false;
}

TEST(DeriveRedactionPatternsTest, EmptyValueHasNoPatterns) {
  EXPECT_TRUE(DeriveRedactionPatterns("").empty());
}

TEST(DeriveRedactionPatternsTest, ValueComesFirst) {
  const std::vector<std::string> patterns = Patterns(kFake);
  ASSERT_FALSE(patterns.empty());
  EXPECT_TRUE(patterns[0] == kFake);
}

TEST(DeriveRedactionPatternsTest, NoDuplicates) {
  const std::vector<std::string> patterns = Patterns(kFake);
  for (size_t i = 0; i < patterns.size(); ++i) {
    for (size_t j = i + 1; j < patterns.size(); ++j) {
      EXPECT_FALSE(patterns[i] == patterns[j]) << "patterns " << i << " and " << j;
    }
  }
}

TEST(DeriveRedactionPatternsTest, ShortValueIsStillAPattern) {
  const std::vector<std::string> patterns = Patterns("q");
  EXPECT_TRUE(Has(patterns, "q"));
  // Base64 "cQ==" is 4 bytes: kept. Its 1-2 character fragments are not.
  EXPECT_TRUE(Has(patterns, "cQ=="));
  for (const std::string& pattern : patterns) {
    if (pattern != "q") {
      EXPECT_GE(pattern.size(), kMinEncodedPatternBytes);
    }
  }
}

TEST(DeriveRedactionPatternsTest, Base64AtOffsetZero) {
  const std::vector<std::string> patterns = Patterns(kFake);
  const std::string standard = absl::Base64Escape(kFake);
  const std::string url = absl::WebSafeBase64Escape(kFake);  // unpadded
  EXPECT_TRUE(Has(patterns, standard));
  EXPECT_TRUE(Has(patterns, absl::StrReplaceAll(standard, {{"=", ""}})));
  EXPECT_TRUE(Has(patterns, url));
  EXPECT_TRUE(Has(patterns, url + std::string(standard.size() - url.size(), '=')));
}

// The characters of base64(prefix + value + suffix) determined by the value alone appear as a
// pattern, for prefixes of 0, 1 and 2 bytes (offsets), in both alphabets.
TEST(DeriveRedactionPatternsTest, Base64EmbeddedAtEachOffset) {
  for (absl::string_view value :
       {absl::string_view("TEST-FAKE-SECRET-0001"), absl::string_view("TEST-FAKE-SECRET-00002"),
        absl::string_view("TEST-FAKE-SECRET-000003")}) {
    const std::vector<std::string> patterns = Patterns(value);
    for (size_t offset = 0; offset < 3; ++offset) {
      const std::string prefix(offset, '\xA5');
      const std::string stream = prefix + std::string(value) + "\x5A\xC3\x3C";
      const size_t first = (8 * offset + 5) / 6;
      const size_t last = 8 * (offset + value.size()) / 6;
      const std::string standard = absl::Base64Escape(stream).substr(first, last - first);
      const std::string url = absl::WebSafeBase64Escape(stream).substr(first, last - first);
      EXPECT_TRUE(Has(patterns, standard)) << "offset " << offset << " size " << value.size();
      EXPECT_TRUE(Has(patterns, url)) << "offset " << offset << " size " << value.size();
      // The same value ending the stream, with and without padding.
      const std::string ending = absl::Base64Escape(prefix + std::string(value)).substr(first);
      EXPECT_TRUE(Has(patterns, ending)) << "offset " << offset;
      EXPECT_TRUE(Has(patterns, absl::StrReplaceAll(ending, {{"=", ""}}))) << "offset " << offset;
    }
  }
}

TEST(DeriveRedactionPatternsTest, PercentEncoding) {
  const std::vector<std::string> patterns = Patterns("TEST fake/secret:1~");
  EXPECT_TRUE(Has(patterns, "TEST%20fake%2Fsecret%3A1~"));
  EXPECT_TRUE(Has(patterns, "TEST%20fake%2fsecret%3a1~"));
  EXPECT_TRUE(Has(patterns, "TEST+fake%2Fsecret%3A1~"));
}

TEST(DeriveRedactionPatternsTest, JsonEscaping) {
  const std::vector<std::string> patterns = Patterns("TEST\"fake\\secret/<1>&\t\x01");
  EXPECT_TRUE(Has(patterns, "TEST\\\"fake\\\\secret/<1>&\\t\\u0001"));
  EXPECT_TRUE(Has(patterns, "TEST\\\"fake\\\\secret\\/<1>&\\t\\u0001"));
  EXPECT_TRUE(Has(patterns, "TEST\\\"fake\\\\secret/\\u003c1\\u003e\\u0026\\t\\u0001"));
}

TEST(DeriveRedactionPatternsTest, LinesOfMultiLineValue) {
  const std::vector<std::string> patterns =
      Patterns("TEST-FAKE-LINE-ONE\r\nshort\n  TEST-FAKE-LINE-\"THREE\"\n");
  EXPECT_TRUE(Has(patterns, "TEST-FAKE-LINE-ONE"));
  EXPECT_TRUE(Has(patterns, "  TEST-FAKE-LINE-\"THREE\""));
  EXPECT_TRUE(Has(patterns, "  TEST-FAKE-LINE-\\\"THREE\\\""));  // JSON-escaped line
  EXPECT_FALSE(Has(patterns, "short"));                          // below kMinLinePatternBytes
  // The value without its trailing line break, and its JSON form with escaped line breaks.
  EXPECT_TRUE(Has(patterns, "TEST-FAKE-LINE-ONE\r\nshort\n  TEST-FAKE-LINE-\"THREE\""));
  EXPECT_TRUE(Has(patterns, "TEST-FAKE-LINE-ONE\\r\\nshort\\n  TEST-FAKE-LINE-\\\"THREE\\\"\\n"));
}

TEST(DeriveRedactionPatternsTest, LineOfExactlyMinimumLengthIsKept) {
  const std::string line(kMinLinePatternBytes, 'L');
  const std::vector<std::string> patterns = Patterns(line + "\n" + line.substr(1) + "\nend");
  EXPECT_TRUE(Has(patterns, line));
  EXPECT_FALSE(Has(patterns, line.substr(1)));
}

}  // namespace
}  // namespace secret_resolver::client
