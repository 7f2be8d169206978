// Property tests: random log-like text with planted fake secrets in random encodings, streamed
// through random chunk sizes. The output must equal a brute-force reference redactor run on the
// whole text (so everything outside matches is unchanged), and no planted form may survive.
// Seeds are fixed, so a failure is reproducible; messages name the seed and the planted form's
// index, never the text.
#include <cctype>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "client/redactor/redactor.h"
#include "tests/client/redactor/redactor_testing.h"

namespace secret_resolver::client {
namespace {

using testing::Contains;
using testing::FakeSecret;
using testing::MakeRedactor;
using testing::ReferenceRedactor;
using testing::SameText;
using testing::StreamRandomChunks;

size_t Uniform(std::mt19937_64& rng, size_t lo, size_t hi) {
  return std::uniform_int_distribution<size_t>(lo, hi)(rng);
}

// Fake values: a recognisable test prefix, then random characters from `alphabet`.
std::vector<FakeSecret> FakeSecrets(std::mt19937_64& rng, size_t count, size_t min_length,
                                    size_t max_length, absl::string_view alphabet) {
  std::vector<FakeSecret> fakes;
  for (size_t i = 0; i < count; ++i) {
    std::string value = absl::StrCat("FAKE", i, "-");
    const size_t length = Uniform(rng, min_length, max_length);
    while (value.size() < length) value.push_back(alphabet[Uniform(rng, 0, alphabet.size() - 1)]);
    fakes.push_back({value, absl::StrCat("***SECRET_REDACTED:fake-", i, "***")});
  }
  return fakes;
}

std::string PercentEncode(absl::string_view value) {
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%",
                      absl::AsciiStrToUpper(absl::BytesToHexString(
                          absl::string_view(reinterpret_cast<char*>(&c), 1))));
    }
  }
  return out;
}

// One form of `value` as a logger might write it, and the part of it that must not survive.
struct Planted {
  std::string text;       // what goes into the log
  std::string sensitive;  // the substring that must be gone afterwards
};

Planted Plant(std::mt19937_64& rng, absl::string_view value) {
  switch (Uniform(rng, 0, 6)) {
    case 0:
      return {std::string(value), std::string(value)};
    case 1: {
      std::string encoded = absl::Base64Escape(value);
      return {encoded, encoded};
    }
    case 2: {
      std::string encoded = absl::WebSafeBase64Escape(value);
      return {encoded, encoded};
    }
    case 3: {
      // Inside a larger base64 blob, at offset 0, 1 or 2; only the characters determined by the
      // value alone are sensitive.
      const size_t offset = Uniform(rng, 0, 2);
      const std::string stream =
          absl::StrCat(std::string(offset + 3, '\x11'), value, std::string(4, '\xEE'));
      const std::string encoded = absl::Base64Escape(stream);
      const size_t first = (8 * (offset + 3) + 5) / 6;
      const size_t last = 8 * (offset + 3 + value.size()) / 6;
      return {encoded, encoded.substr(first, last - first)};
    }
    case 4: {
      std::string encoded = PercentEncode(value);
      return {encoded, encoded};
    }
    case 5: {
      std::string escaped = absl::StrReplaceAll(value, {{"\\", "\\\\"}, {"\"", "\\\""}});
      return {absl::StrCat("{\"token\":\"", escaped, "\"}"), escaped};
    }
    default:
      return {absl::StrCat("Bearer ", value), std::string(value)};
  }
}

const char* const kWords[] = {"INFO",
                              "WARN",
                              "request",
                              "completed",
                              "user=alice",
                              "status=200",
                              "latency_ms=12",
                              "{\"level\":\"info\"",
                              "\"msg\":\"ok\"}",
                              "step",
                              "GET",
                              "/api/v1/items?page=2",
                              "retry",
                              "=",
                              "%",
                              "\\"};

// A log of `lines` lines; each line carries a planted form with probability 1/4.
std::string RandomLog(std::mt19937_64& rng, const std::vector<FakeSecret>& fakes, size_t lines,
                      std::vector<Planted>* planted) {
  std::string text;
  for (size_t line = 0; line < lines; ++line) {
    const size_t words = Uniform(rng, 0, 12);
    for (size_t w = 0; w < words; ++w) {
      absl::StrAppend(&text, kWords[Uniform(rng, 0, std::size(kWords) - 1)], " ");
      if (Uniform(rng, 0, 3) == 0 && !fakes.empty()) {
        Planted p = Plant(rng, fakes[Uniform(rng, 0, fakes.size() - 1)].value);
        absl::StrAppend(&text, p.text, " ");
        planted->push_back(std::move(p));
      }
    }
    text.push_back('\n');
  }
  return text;
}

TEST(RedactorPropertyTest, PlantedSecretsInRandomChunks) {
  constexpr absl::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_.~!@#$ &\"\\";
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    std::mt19937_64 rng(seed);
    const std::vector<FakeSecret> fakes = FakeSecrets(rng, Uniform(rng, 1, 12), 12, 64, kAlphabet);
    auto redactor = MakeRedactor(fakes);
    const ReferenceRedactor reference(fakes);
    std::vector<Planted> planted;
    const std::string text = RandomLog(rng, fakes, 60, &planted);
    const std::string expected = reference.RedactAll(text);

    EXPECT_TRUE(SameText(redactor->RedactAll(text), expected)) << "seed " << seed;
    for (size_t max_piece : {1, 7, 64, 1000}) {
      const std::string streamed = StreamRandomChunks(redactor, text, &rng, max_piece);
      EXPECT_TRUE(SameText(streamed, expected)) << "seed " << seed << " max piece " << max_piece;
    }
    for (size_t i = 0; i < planted.size(); ++i) {
      EXPECT_FALSE(Contains(expected, planted[i].sensitive))
          << "seed " << seed << ": planted form " << i << " survived";
    }
  }
}

// A tiny alphabet and short values make overlapping and nested matches common, which tests
// leftmost-longest resolution and the prefilter's sampling at every stride against the reference.
TEST(RedactorPropertyTest, DenseOverlapsOnSmallAlphabet) {
  for (uint64_t seed = 100; seed < 400; ++seed) {
    std::mt19937_64 rng(seed);
    std::vector<FakeSecret> fakes;
    const size_t count = Uniform(rng, 1, 6);
    for (size_t i = 0; i < count; ++i) {
      std::string value;
      const size_t length = Uniform(rng, 1, 14);
      for (size_t j = 0; j < length; ++j) value.push_back("ab\nc"[Uniform(rng, 0, 3)]);
      fakes.push_back({value, absl::StrCat("<", i, ">")});
    }
    auto redactor = MakeRedactor(fakes);
    const ReferenceRedactor reference(fakes);
    std::string text;
    const size_t size = Uniform(rng, 0, 600);
    for (size_t i = 0; i < size; ++i) text.push_back("ab\nc"[Uniform(rng, 0, 3)]);
    const std::string expected = reference.RedactAll(text);
    EXPECT_TRUE(SameText(redactor->RedactAll(text), expected)) << "seed " << seed;
    EXPECT_TRUE(SameText(StreamRandomChunks(redactor, text, &rng, 1 + seed % 40), expected))
        << "seed " << seed;
  }
}

// Arbitrary bytes, including NUL and bytes >= 0x80, pass through unchanged around matches.
TEST(RedactorPropertyTest, BinaryTextAroundMatches) {
  for (uint64_t seed = 1000; seed < 1040; ++seed) {
    std::mt19937_64 rng(seed);
    std::string value = "FAKE-BINARY-";
    for (int i = 0; i < 20; ++i) value.push_back(static_cast<char>(Uniform(rng, 0, 255)));
    const std::vector<FakeSecret> fakes = {{value, "[bin]"}};
    auto redactor = MakeRedactor(fakes);
    const ReferenceRedactor reference(fakes);
    std::string text;
    for (int i = 0; i < 30; ++i) {
      for (size_t j = Uniform(rng, 0, 100); j > 0; --j) {
        text.push_back(static_cast<char>(Uniform(rng, 0, 255)));
      }
      if (Uniform(rng, 0, 1) == 0) text += value;
    }
    const std::string expected = reference.RedactAll(text);
    EXPECT_FALSE(Contains(expected, value)) << "seed " << seed;
    EXPECT_TRUE(SameText(StreamRandomChunks(redactor, text, &rng, 50), expected))
        << "seed " << seed;
  }
}

}  // namespace
}  // namespace secret_resolver::client
