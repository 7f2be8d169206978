// Unit tests of Redactor and RedactionStream: matches, encodings, overlaps, leftmost-longest,
// empty values, multi-line values, matches straddling every split point, and Flush semantics.
// Values are fixed fake test strings; text comparisons go through SameText/Contains, which never
// print the texts.
#include "client/redactor/redactor.h"

#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "tests/client/redactor/redactor_testing.h"

namespace secret_resolver::client {
namespace {

using testing::Contains;
using testing::Count;
using testing::FakeSecret;
using testing::MakeRedactor;
using testing::ReferenceRedactor;
using testing::SameText;
using testing::StreamPieces;

constexpr absl::string_view kToken = "TEST-FAKE-TOKEN-0123456789";
constexpr absl::string_view kTokenPlaceholder = "***SECRET_REDACTED:token***";

std::shared_ptr<const Redactor> TokenRedactor() {
  return MakeRedactor({{std::string(kToken), std::string(kTokenPlaceholder)}});
}

TEST(RedactorTest, ReplacesValue) {
  const std::string text = absl::StrCat("auth ok token=", kToken, " user=alice\n");
  EXPECT_TRUE(SameText(TokenRedactor()->RedactAll(text),
                       absl::StrCat("auth ok token=", kTokenPlaceholder, " user=alice\n")));
}

TEST(RedactorTest, ReplacesEveryOccurrence) {
  const std::string text = absl::StrCat(kToken, kToken, " and ", kToken);
  const std::string out = TokenRedactor()->RedactAll(text);
  EXPECT_EQ(Count(out, kTokenPlaceholder), 3u);
  EXPECT_FALSE(Contains(out, kToken));
}

TEST(RedactorTest, TextWithoutMatchesIsUnchanged) {
  std::string text;
  for (int i = 0; i < 256; ++i) text.push_back(static_cast<char>(i));  // NUL and high bytes
  text += "TEST-FAKE-TOKEN-012345678";  // one byte short of the value
  EXPECT_TRUE(SameText(TokenRedactor()->RedactAll(text), text));
  EXPECT_TRUE(SameText(TokenRedactor()->RedactAll(""), ""));
}

TEST(RedactorTest, EmptyValuesAreNeverPatterns) {
  auto redactor = MakeRedactor({{"", "[empty]"}});
  EXPECT_EQ(redactor->pattern_count(), 0u);
  EXPECT_EQ(redactor->max_pattern_length(), 0u);
  EXPECT_TRUE(SameText(redactor->RedactAll("any text at all"), "any text at all"));
  EXPECT_TRUE(SameText(StreamPieces(redactor, {"any ", "text"}), "any text"));

  auto mixed = MakeRedactor({{"", "[empty]"}, {std::string(kToken), "[token]"}});
  EXPECT_TRUE(SameText(mixed->RedactAll(absl::StrCat("a", kToken, "b")), "a[token]b"));
}

TEST(RedactorTest, NoSecrets) {
  auto redactor = Redactor::Create({});
  EXPECT_TRUE(SameText(redactor->RedactAll("plain"), "plain"));
}

TEST(RedactorTest, ShortValuesAreMatchedEverywhere) {
  auto redactor = MakeRedactor({{"z", "[1]"}, {"xy", "[2]"}, {"TEST-FAKE-LONGER", "[3]"}});
  EXPECT_TRUE(SameText(redactor->RedactAll("azbxyxz TEST-FAKE-LONGER z"), "a[1]b[2]x[1] [3] [1]"));
}

TEST(RedactorTest, LongestMatchWinsAtTheSameStart) {
  auto redactor = MakeRedactor(
      {{"TEST-FAKE-TOKEN-0001", "[short]"}, {"TEST-FAKE-TOKEN-0001-EXTENDED", "[long]"}});
  EXPECT_TRUE(SameText(redactor->RedactAll("x TEST-FAKE-TOKEN-0001-EXTENDED y"), "x [long] y"));
  EXPECT_TRUE(
      SameText(redactor->RedactAll("x TEST-FAKE-TOKEN-0001-EXTENDE y"), "x [short]-EXTENDE y"));
}

TEST(RedactorTest, LeftmostMatchWinsWhenSecretsOverlap) {
  auto redactor =
      MakeRedactor({{"TEST-FAKE-AAAABBBB", "[first]"}, {"AABBBBCCCC-FAKE", "[second]"}});
  // The first secret starts earlier, so it wins; the rest of the second is left as text.
  EXPECT_TRUE(SameText(redactor->RedactAll("<TEST-FAKE-AAAABBBBCCCC-FAKE>"), "<[first]CCCC-FAKE>"));
  // A shorter match starting earlier still beats a longer one starting later.
  auto nested = MakeRedactor({{"FAKE-SHORT-1", "[s]"}, {"SHORT-1-AND-MUCH-LONGER-FAKE", "[l]"}});
  EXPECT_TRUE(
      SameText(nested->RedactAll("FAKE-SHORT-1-AND-MUCH-LONGER-FAKE"), "[s]-AND-MUCH-LONGER-FAKE"));
}

TEST(RedactorTest, SecretContainedInAnotherSecret) {
  auto redactor = MakeRedactor(
      {{"FAKE-INNER-VALUE", "[inner]"}, {"TEST-OUTER-FAKE-INNER-VALUE-END", "[outer]"}});
  EXPECT_TRUE(SameText(redactor->RedactAll("a TEST-OUTER-FAKE-INNER-VALUE-END b FAKE-INNER-VALUE"),
                       "a [outer] b [inner]"));
}

TEST(RedactorTest, DuplicateValuesUseTheFirstPlaceholder) {
  auto redactor =
      MakeRedactor({{std::string(kToken), "[first]"}, {std::string(kToken), "[second]"}});
  EXPECT_TRUE(SameText(redactor->RedactAll(kToken), "[first]"));
}

TEST(RedactorTest, EachEncodingIsReplaced) {
  const std::string value = "TEST fake/secret+0001?";
  auto redactor = MakeRedactor({{value, "[P]"}});
  const std::vector<std::string> forms = {
      absl::Base64Escape(value),        absl::WebSafeBase64Escape(value),
      "TEST%20fake%2Fsecret%2B0001%3F", "TEST%20fake%2fsecret%2b0001%3f",
      "TEST+fake%2Fsecret%2B0001%3F",   "TEST fake\\/secret+0001?",
  };
  for (size_t i = 0; i < forms.size(); ++i) {
    EXPECT_TRUE(SameText(redactor->RedactAll(absl::StrCat("[", forms[i], "]")), "[[P]]"))
        << "form " << i;
  }
  const std::string json_value = "TEST\"fake<secret>\n";
  auto json = MakeRedactor({{json_value, "[J]"}});
  EXPECT_TRUE(SameText(json->RedactAll("{\"k\":\"TEST\\\"fake<secret>\\n\"}"), "{\"k\":\"[J]\"}"));
  EXPECT_TRUE(SameText(json->RedactAll("{\"k\":\"TEST\\\"fake\\u003csecret\\u003e\\n\"}"),
                       "{\"k\":\"[J]\"}"));
}

TEST(RedactorTest, Base64EmbeddedInALargerStreamAtEachOffset) {
  const std::string value = "TEST-FAKE-SECRET-0001";
  auto redactor = MakeRedactor({{value, "[B]"}});
  for (size_t offset = 0; offset < 3; ++offset) {
    for (size_t suffix = 0; suffix < 3; ++suffix) {
      const std::string stream =
          absl::StrCat(std::string(offset, '\x7E'), value, std::string(suffix + 1, '\x81'));
      for (const std::string& encoded :
           {absl::Base64Escape(stream), absl::WebSafeBase64Escape(stream)}) {
        const std::string out = redactor->RedactAll(encoded);
        EXPECT_EQ(Count(out, "[B]"), 1u) << "offset " << offset << " suffix " << suffix;
        // What survives are the characters that also encode the neighbouring bytes.
        const size_t core = 8 * (offset + value.size()) / 6 - (8 * offset + 5) / 6;
        EXPECT_EQ(out.size(), encoded.size() - core + 3) << "offset " << offset;
      }
    }
  }
}

TEST(RedactorTest, MultiLineValue) {
  const std::string value = "TEST-FAKE-KEY-LINE-ONE\nab\nTEST-FAKE-KEY-LINE-THREE\n";
  auto redactor = MakeRedactor({{value, "[K]"}});
  // The whole value, and the value without its final line break.
  EXPECT_TRUE(SameText(redactor->RedactAll("<" + value + ">"), "<[K]>"));
  EXPECT_TRUE(
      SameText(redactor->RedactAll("<" + value.substr(0, value.size() - 1) + ">"), "<[K]>"));
  // Each line long enough on its own, e.g. when a logger splits the value into lines.
  EXPECT_TRUE(
      SameText(redactor->RedactAll("x TEST-FAKE-KEY-LINE-THREE y\nz ab w\n"), "x [K] y\nz ab w\n"));
  // JSON-escaped whole value.
  EXPECT_TRUE(
      SameText(redactor->RedactAll("\"TEST-FAKE-KEY-LINE-ONE\\nab\\nTEST-FAKE-KEY-LINE-THREE\\n\""),
               "\"[K]\""));
}

TEST(RedactionStreamTest, MatchStraddlingEverySplitPoint) {
  auto redactor = TokenRedactor();
  const std::string text = absl::StrCat("prefix ", kToken, " middle ", kToken, " suffix");
  const std::string expected = redactor->RedactAll(text);
  ASSERT_EQ(Count(expected, kTokenPlaceholder), 2u);
  for (size_t i = 0; i <= text.size(); ++i) {
    const absl::string_view all = text;
    EXPECT_TRUE(SameText(StreamPieces(redactor, {all.substr(0, i), all.substr(i)}), expected))
        << "split at " << i;
  }
}

TEST(RedactionStreamTest, EveryPairOfSplitPoints) {
  auto redactor = MakeRedactor({{std::string(kToken), "[T]"}, {"TEST-FAKE-X", "[X]"}});
  const std::string text = absl::StrCat("a", kToken, "TEST-FAKE-X", kToken, "b");
  const std::string expected = redactor->RedactAll(text);
  const absl::string_view all = text;
  for (size_t i = 0; i <= text.size(); ++i) {
    for (size_t j = i; j <= text.size(); ++j) {
      EXPECT_TRUE(
          SameText(StreamPieces(redactor, {all.substr(0, i), all.substr(i, j - i), all.substr(j)}),
                   expected))
          << "splits at " << i << ", " << j;
    }
  }
}

TEST(RedactionStreamTest, OneByteAtATime) {
  auto redactor = MakeRedactor({{std::string(kToken), "[T]"}, {"q", "[q]"}});
  std::string text;
  for (int i = 0; i < 50; ++i) absl::StrAppend(&text, "line ", i, " q ", kToken, "\n");
  std::vector<absl::string_view> pieces;
  for (size_t i = 0; i < text.size(); ++i) pieces.push_back(absl::string_view(text).substr(i, 1));
  EXPECT_TRUE(SameText(StreamPieces(redactor, pieces), redactor->RedactAll(text)));
}

TEST(RedactionStreamTest, LongestMatchIsAwaitedAcrossChunks) {
  auto redactor = MakeRedactor(
      {{"TEST-FAKE-TOKEN-0001", "[short]"}, {"TEST-FAKE-TOKEN-0001-EXTENDED-WITH-MORE", "[long]"}});
  EXPECT_TRUE(SameText(
      StreamPieces(redactor, {"x TEST-FAKE-TOKEN-0001", "-EXTENDED-", "WITH-MORE"}), "x [long]"));
  EXPECT_TRUE(
      SameText(StreamPieces(redactor, {"x TEST-FAKE-TOKEN-0001", "-EXTENDED-", "WITH-LESS"}),
               "x [short]-EXTENDED-WITH-LESS"));
}

TEST(RedactionStreamTest, HoldsBackOnlyWhatCouldStillMatch) {
  auto redactor = TokenRedactor();
  std::string out;
  RedactionStream stream(redactor, [&out](absl::string_view redacted) {
    out.append(redacted.data(), redacted.size());
  });
  const std::string big(10 * redactor->max_pattern_length(), '.');
  stream.Write(big);
  EXPECT_LE(stream.pending_size(), 2 * redactor->max_pattern_length());
  EXPECT_EQ(out.size() + stream.pending_size(), big.size());
  stream.Flush();
  EXPECT_EQ(stream.pending_size(), 0u);
  EXPECT_TRUE(SameText(out, big));
}

TEST(RedactionStreamTest, EmitDecidedHoldsBackLessThanTheLongestPattern) {
  auto redactor = TokenRedactor();
  const size_t longest = redactor->max_pattern_length();
  std::string out;
  RedactionStream stream(redactor, [&out](absl::string_view redacted) {
    out.append(redacted.data(), redacted.size());
  });
  // Small writes: Write alone keeps them all until 2 * longest bytes are held.
  std::string text;
  for (int i = 0; i < 10; ++i) {
    const std::string chunk = (i == 6 ? std::string(kToken) : std::string(longest / 2 + 1, '.'));
    text += chunk;
    stream.Write(chunk);
    stream.EmitDecided();
    EXPECT_LT(stream.pending_size(), longest) << "after write " << i;
  }
  stream.Flush();
  EXPECT_TRUE(SameText(out, redactor->RedactAll(text)));
}

TEST(RedactionStreamTest, FlushEmitsEverythingAndEndsARecord) {
  auto redactor = TokenRedactor();
  std::string out;
  RedactionStream stream(redactor, [&out](absl::string_view redacted) {
    out.append(redacted.data(), redacted.size());
  });
  stream.Write("short line ");
  stream.Write(kToken.substr(0, 5));
  stream.Flush();
  // Everything written so far is out after Flush, even a possible start of a value...
  EXPECT_TRUE(SameText(out, absl::StrCat("short line ", kToken.substr(0, 5))));
  // ...and a value split by Flush is not matched across it (documented).
  stream.Write(kToken.substr(5));
  stream.Flush();
  EXPECT_FALSE(Contains(out, kTokenPlaceholder));
  // Flush with nothing pending writes nothing.
  const size_t before = out.size();
  stream.Flush();
  EXPECT_EQ(out.size(), before);
  // After Flush, a new record is redacted normally.
  stream.Write(absl::StrCat(" ", kToken));
  stream.Flush();
  EXPECT_EQ(Count(out, kTokenPlaceholder), 1u);
}

TEST(RedactionStreamTest, DestructorFlushes) {
  std::string out;
  {
    RedactionStream stream(TokenRedactor(), [&out](absl::string_view redacted) {
      out.append(redacted.data(), redacted.size());
    });
    stream.Write(absl::StrCat("tail ", kToken));
  }
  EXPECT_TRUE(SameText(out, absl::StrCat("tail ", kTokenPlaceholder)));
}

TEST(RedactionStreamTest, SinkNeverReceivesEmptyChunks) {
  int empty_calls = 0;
  {
    RedactionStream stream(TokenRedactor(), [&empty_calls](absl::string_view redacted) {
      if (redacted.empty()) ++empty_calls;
    });
    stream.Write("");
    stream.Write("a");
    stream.Flush();
    stream.Flush();
  }
  EXPECT_EQ(empty_calls, 0);
}

TEST(RedactionStreamTest, ManyStreamsShareOneRedactor) {
  auto redactor = TokenRedactor();
  const std::string text = absl::StrCat("one ", kToken, " two");
  std::vector<std::string> outs(4);
  {
    std::vector<std::unique_ptr<RedactionStream>> streams;
    for (std::string& out : outs) {
      streams.push_back(std::make_unique<RedactionStream>(
          redactor,
          [&out](absl::string_view redacted) { out.append(redacted.data(), redacted.size()); }));
    }
    for (size_t i = 0; i < text.size(); ++i) {
      for (auto& stream : streams) stream->Write(absl::string_view(text).substr(i, 1));
    }
  }
  for (const std::string& out : outs) {
    EXPECT_TRUE(SameText(out, absl::StrCat("one ", kTokenPlaceholder, " two")));
  }
}

// Long texts are scanned in blocks of 128 KiB; matches straddling block edges still count.
TEST(RedactorTest, MatchesAcrossInternalBlockEdges) {
  const std::vector<FakeSecret> fakes = {{std::string(kToken), "[T]"}};
  auto redactor = MakeRedactor(fakes);
  const ReferenceRedactor reference(fakes);
  // One token across each of the first edges, starting 0, 1, 2, ... bytes before it.
  std::string text((kToken.size() + 2) * 131072, '.');
  size_t planted = 0;
  for (size_t back = 0; back < kToken.size(); ++back) {
    text.replace((back + 1) * 131072 - back, kToken.size(), std::string(kToken));
    ++planted;
  }
  const std::string expected = reference.RedactAll(text);
  EXPECT_EQ(Count(expected, "[T]"), planted);
  EXPECT_TRUE(SameText(redactor->RedactAll(text), expected));
  std::mt19937_64 rng(7);
  EXPECT_TRUE(SameText(testing::StreamRandomChunks(redactor, text, &rng, 200000), expected));
}

TEST(RedactorTest, ConcurrentUseOfOneRedactor) {
  auto redactor = TokenRedactor();
  std::string text;
  for (int i = 0; i < 200; ++i) absl::StrAppend(&text, "line ", i, " ", kToken, "\n");
  const std::string expected = redactor->RedactAll(text);
  std::vector<int> agreed(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        agreed[t] += redactor->RedactAll(text) == expected ? 1 : 0;
        agreed[t] += StreamPieces(redactor, {absl::string_view(text).substr(0, 100 + t),
                                             absl::string_view(text).substr(100 + t)}) == expected
                         ? 1
                         : 0;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(agreed[t], 40) << "thread " << t;
}

// Patterns of every length from 1 to 12 bytes exercise every prefilter stride.
TEST(RedactorTest, AgreesWithReferenceForEveryStride) {
  for (size_t length = 1; length <= 12; ++length) {
    std::vector<FakeSecret> fakes = {{std::string(length, 'k'), "[k]"},
                                     {"TEST-FAKE-" + std::string(length, 'm'), "[m]"}};
    auto redactor = MakeRedactor(fakes);
    ReferenceRedactor reference(fakes);
    std::string text;
    for (size_t i = 0; i < 40; ++i) {
      absl::StrAppend(&text, std::string(i % (length + 3), 'k'), "TEST-FAKE-",
                      std::string(i % (length + 2), 'm'), ".");
    }
    EXPECT_TRUE(SameText(redactor->RedactAll(text), reference.RedactAll(text)))
        << "length " << length;
  }
}

}  // namespace
}  // namespace secret_resolver::client
