#include "server/metrics.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace secret_resolver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Lines(const std::string& text) {
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n') << "the exposition must end with a newline";
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  lines.pop_back();  // after the final newline
  return lines;
}

bool IsNameChar(char c, bool first, bool allow_colon) {
  return absl::ascii_isalpha(c) || c == '_' || (allow_colon && c == ':') ||
         (!first && absl::ascii_isdigit(c));
}

// Consumes a metric (allow_colon) or label name at `pos`.
bool ConsumeName(const std::string& line, size_t* pos, bool allow_colon) {
  const size_t start = *pos;
  while (*pos < line.size() && IsNameChar(line[*pos], *pos == start, allow_colon)) ++*pos;
  return *pos > start;
}

// A sample line: name{label="value",...} value, where values escape only \, " and \n.
bool IsSampleLine(const std::string& line) {
  size_t pos = 0;
  if (!ConsumeName(line, &pos, true)) return false;
  if (pos < line.size() && line[pos] == '{') {
    ++pos;
    for (bool first = true;; first = false) {
      if (!first) {
        if (pos >= line.size() || line[pos] != ',') break;
        ++pos;
      }
      if (!ConsumeName(line, &pos, false)) return false;
      if (line.compare(pos, 2, "=\"") != 0) return false;
      pos += 2;
      for (;; ++pos) {
        if (pos >= line.size() || line[pos] == '\n') return false;
        if (line[pos] == '"') break;
        if (line[pos] == '\\') {
          ++pos;
          if (pos >= line.size() || (line[pos] != '\\' && line[pos] != '"' && line[pos] != 'n')) {
            return false;
          }
        }
      }
      ++pos;  // the closing quote
    }
    if (pos >= line.size() || line[pos] != '}') return false;
    ++pos;
  }
  if (pos >= line.size() || line[pos] != ' ') return false;
  const std::string value = line.substr(pos + 1);
  if (value == "+Inf" || value == "-Inf" || value == "NaN") return true;
  double parsed;
  return !value.empty() && absl::SimpleAtod(value, &parsed) && value.find(' ') == std::string::npos;
}

// Every line of text format 0.0.4 is a HELP or TYPE comment or a sample. An empty text (no
// family has a series yet) is valid too.
void ExpectValidExposition(const std::string& text) {
  if (text.empty()) return;
  for (const std::string& line : Lines(text)) {
    bool valid = false;
    if (absl::StartsWith(line, "# HELP ")) {
      size_t pos = 7;
      valid = ConsumeName(line, &pos, true) && pos < line.size() && line[pos] == ' ';
    } else if (absl::StartsWith(line, "# TYPE ")) {
      size_t pos = 7;
      valid = ConsumeName(line, &pos, true) &&
              (line.substr(pos) == " counter" || line.substr(pos) == " gauge" ||
               line.substr(pos) == " histogram");
    } else {
      valid = IsSampleLine(line);
    }
    EXPECT_TRUE(valid) << "not a valid exposition line: " << line;
  }
}

TEST(MetricsTest, TheLineCheckerRejectsBadLines) {
  EXPECT_TRUE(IsSampleLine(R"(a_b:c{x="1",y="a\"b\\c\nd"} 1.5)"));
  EXPECT_FALSE(IsSampleLine(R"(a{x="unterminated} 1)"));
  EXPECT_FALSE(IsSampleLine(R"(a{x="bad \t escape"} 1)"));
  EXPECT_FALSE(IsSampleLine("a 1 2"));
  EXPECT_FALSE(IsSampleLine("1a 1"));
  EXPECT_FALSE(IsSampleLine("a{} x"));
}

TEST(MetricsTest, CounterRendersLineByLine) {
  MetricsRegistry registry;
  Counter* calls = registry.AddCounter("secret_resolver_grpc_calls_total",
                                       "gRPC calls by method and code.", {"method", "code"});
  calls->Increment({"ResolveSecrets", "OK"});
  calls->Increment({"ResolveSecrets", "OK"}, 2);
  calls->Increment({"ResolveSecrets", "UNAUTHENTICATED"});
  calls->Increment({"DecryptSecureValues", "OK"});

  const std::string text = registry.Render();
  EXPECT_THAT(
      Lines(text),
      ElementsAre(
          "# HELP secret_resolver_grpc_calls_total gRPC calls by method and code.",
          "# TYPE secret_resolver_grpc_calls_total counter",
          R"(secret_resolver_grpc_calls_total{method="DecryptSecureValues",code="OK"} 1)",
          R"(secret_resolver_grpc_calls_total{method="ResolveSecrets",code="OK"} 3)",
          R"(secret_resolver_grpc_calls_total{method="ResolveSecrets",code="UNAUTHENTICATED"} 1)"));
  ExpectValidExposition(text);
  EXPECT_EQ(calls->Value({"ResolveSecrets", "OK"}), 3u);
  EXPECT_EQ(calls->Value({"ResolveSecrets", "NOT_FOUND"}), 0u);
}

TEST(MetricsTest, UnlabeledCounterShowsZeroFromTheStart) {
  MetricsRegistry registry;
  Counter* evictions = registry.AddCounter("evictions_total", "Evicted entries.");
  EXPECT_THAT(Lines(registry.Render()),
              ElementsAre("# HELP evictions_total Evicted entries.",
                          "# TYPE evictions_total counter", "evictions_total 0"));
  evictions->Increment();
  Counter::Series* series = evictions->WithLabels({});
  series->Increment(41);
  EXPECT_THAT(Lines(registry.Render()), testing::Contains("evictions_total 42"));
}

TEST(MetricsTest, LabeledFamilyWithoutSeriesIsLeftOut) {
  MetricsRegistry registry;
  Counter* failures =
      registry.AddCounter("auth_failures_total", "Authentication failures by reason.", {"reason"});
  registry.AddCounter("calls_total", "Calls.");
  EXPECT_THAT(Lines(registry.Render()),
              ElementsAre("# HELP calls_total Calls.", "# TYPE calls_total counter",
                          "calls_total 0"));
  failures->Increment({"expired"});
  EXPECT_THAT(Lines(registry.Render()),
              ElementsAre("# HELP auth_failures_total Authentication failures by reason.",
                          "# TYPE auth_failures_total counter",
                          R"(auth_failures_total{reason="expired"} 1)",
                          "# HELP calls_total Calls.", "# TYPE calls_total counter",
                          "calls_total 0"));
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  MetricsRegistry registry;
  Counter* c = registry.AddCounter("escapes_total", "Help with \\ and\nnewline.", {"reason"});
  c->Increment({"a\"b\\c\nd"});
  const std::string text = registry.Render();
  EXPECT_THAT(Lines(text), ElementsAre(R"(# HELP escapes_total Help with \\ and\nnewline.)",
                                       "# TYPE escapes_total counter",
                                       R"(escapes_total{reason="a\"b\\c\nd"} 1)"));
  ExpectValidExposition(text);
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  MetricsRegistry registry;
  Histogram* latency =
      registry.AddHistogram("store_latency_seconds", "Store fetch latency.", {"op"}, {1, 2, 5});
  for (double v : {0.5, 1.0, 1.5, 3.0, 10.0}) latency->Observe({"get"}, v);
  const std::string text = registry.Render();
  EXPECT_THAT(Lines(text),
              ElementsAre("# HELP store_latency_seconds Store fetch latency.",
                          "# TYPE store_latency_seconds histogram",
                          R"(store_latency_seconds_count{op="get"} 5)",
                          R"(store_latency_seconds_sum{op="get"} 16)",
                          R"(store_latency_seconds_bucket{op="get",le="1"} 2)",  // le is inclusive
                          R"(store_latency_seconds_bucket{op="get",le="2"} 3)",
                          R"(store_latency_seconds_bucket{op="get",le="5"} 4)",
                          R"(store_latency_seconds_bucket{op="get",le="+Inf"} 5)"));
  ExpectValidExposition(text);
}

TEST(MetricsTest, UnlabeledHistogramWithFractionalBounds) {
  MetricsRegistry registry;
  Histogram* h = registry.AddHistogram("latency_seconds", "Latency.", {}, {0.005, 0.25});
  h->Observe(0.001);
  h->Observe(0.1);
  h->Observe(std::nan(""));  // ignored
  EXPECT_THAT(Lines(registry.Render()),
              ElementsAre("# HELP latency_seconds Latency.", "# TYPE latency_seconds histogram",
                          "latency_seconds_count 2", "latency_seconds_sum 0.101",
                          R"(latency_seconds_bucket{le="0.005"} 1)",
                          R"(latency_seconds_bucket{le="0.25"} 2)",
                          R"(latency_seconds_bucket{le="+Inf"} 2)"));
}

TEST(MetricsTest, GaugesReadTheirCallbackAtEveryRender) {
  MetricsRegistry registry;
  std::atomic<int> size{3};
  registry.AddGauge("cache_entries", "Entries in the cache.", [&size] { return size.load(); });
  registry.AddGauge("build_info", "Build information.", [] { return 1.0; },
                    {{"version", "1.2.0"}, {"commit", "abc123"}});
  EXPECT_THAT(
      Lines(registry.Render()),
      ElementsAre("# HELP cache_entries Entries in the cache.", "# TYPE cache_entries gauge",
                  "cache_entries 3", "# HELP build_info Build information.",
                  "# TYPE build_info gauge", R"(build_info{version="1.2.0",commit="abc123"} 1)"));
  size = 7;
  EXPECT_THAT(Lines(registry.Render()), testing::Contains("cache_entries 7"));
}

TEST(MetricsTest, FamiliesRenderInRegistrationOrderWhateverTheirType) {
  // The library collects counters, then gauges, then histograms; the registry keeps its order.
  MetricsRegistry registry;
  registry.AddGauge("a_size", "A.", [] { return 2.0; });
  registry.AddHistogram("b_seconds", "B.", {}, {1});
  registry.AddCounter("c_total", "C.");
  std::vector<std::string> types;
  for (const std::string& line : Lines(registry.Render())) {
    if (absl::StartsWith(line, "# TYPE ")) types.push_back(line);
  }
  EXPECT_THAT(types, ElementsAre("# TYPE a_size gauge", "# TYPE b_seconds histogram",
                                 "# TYPE c_total counter"));
}

TEST(MetricsTest, GaugeCallbackMayUseTheRegistry) {
  // The registry's lock is not held while callbacks run.
  MetricsRegistry registry;
  Counter* counter = registry.AddCounter("c_total", "C.");
  registry.AddGauge("g", "G.", [counter] {
    counter->Increment();
    return 1.0;
  });
  registry.Render();
  EXPECT_EQ(counter->Value(), 1u);
}

TEST(MetricsTest, DoublesUseShortestRoundTripForm) {
  MetricsRegistry registry;
  registry.AddGauge("a", "A.", [] { return 0.1; });
  registry.AddGauge("b", "B.", [] { return 1e-9; });
  registry.AddGauge("c", "C.", [] { return std::numeric_limits<double>::infinity(); });
  registry.AddGauge("d", "D.", [] { return 67108864.0; });
  const std::string text = registry.Render();
  EXPECT_THAT(Lines(text), testing::IsSupersetOf({"a 0.1", "b 1e-09", "c +Inf", "d 67108864"}));
  ExpectValidExposition(text);
}

TEST(MetricsTest, ConcurrentUpdatesAndRendersLoseNothing) {
  MetricsRegistry registry;
  Counter* counter = registry.AddCounter("ops_total", "Ops.", {"code"});
  Histogram* histogram =
      registry.AddHistogram("op_seconds", "Op latency.", {"code"}, LatencyBucketsSeconds());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::atomic<bool> done{false};
  std::thread renderer([&] {
    while (!done.load()) ExpectValidExposition(registry.Render());
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      const std::string code = t % 2 == 0 ? "OK" : "NOT_FOUND";
      for (int i = 0; i < kPerThread; ++i) {
        counter->Increment({code});
        histogram->Observe({code}, 0.001 * (i % 10));
        histogram->Observe({"ALL"}, 0.5);  // exact in binary: the sum must be exact too
      }
    });
  }
  for (std::thread& w : workers) w.join();
  done = true;
  renderer.join();
  EXPECT_EQ(counter->Value({"OK"}), 2u * kPerThread);
  EXPECT_EQ(counter->Value({"NOT_FOUND"}), 2u * kPerThread);
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("op_seconds_count{code=\"OK\"} 10000\n"));
  EXPECT_THAT(text, HasSubstr("op_seconds_bucket{code=\"NOT_FOUND\",le=\"+Inf\"} 10000\n"));
  EXPECT_THAT(text, HasSubstr("op_seconds_count{code=\"ALL\"} 20000\n"));
  EXPECT_THAT(text, HasSubstr("op_seconds_sum{code=\"ALL\"} 10000\n"));
}

TEST(MetricsDeathTest, ProgrammingErrorsAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        MetricsRegistry registry;
        registry.AddCounter("bad-name", "x");
      },
      "invalid metric name");
  EXPECT_DEATH(
      {
        MetricsRegistry registry;
        registry.AddCounter("dup_total", "x");
        registry.AddCounter("dup_total", "x");
      },
      "registered twice");
  EXPECT_DEATH(
      {
        MetricsRegistry registry;
        registry.AddCounter("c_total", "x", {"a", "b"})->Increment({"only_one"});
      },
      "1 label values for 2 label names");
  EXPECT_DEATH(
      {
        MetricsRegistry registry;
        registry.AddHistogram("h", "x", {"le"}, {1});
      },
      "reserved");
  EXPECT_DEATH(
      {
        MetricsRegistry registry;
        registry.AddHistogram("h", "x", {}, {2, 1});
      },
      "strictly increasing");
  EXPECT_DEATH(
      {
        MetricsRegistry registry;
        registry.AddCounter("c_total", "x", {"__reserved"});
      },
      "invalid label name");
}

}  // namespace
}  // namespace secret_resolver
