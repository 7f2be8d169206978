// RatioReporter: Google Benchmark's console output, followed by a table that divides each
// benchmark's time by its baseline's, measured in the same run.
//
// Thread safety: used by the benchmark runner's reporting thread only.
#ifndef SECRET_RESOLVER_TESTS_BENCH_RATIO_REPORTER_H_
#define SECRET_RESOLVER_TESTS_BENCH_RATIO_REPORTER_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

namespace secret_resolver {

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  // `pairs`: (benchmark run name, baseline run name), e.g. ("BM_CacheHit3/threads:1",
  // "BM_MapLookup3/threads:1"); names as Google Benchmark prints them.
  explicit RatioReporter(std::vector<std::pair<std::string, std::string>> pairs);

  void ReportRuns(const std::vector<Run>& runs) override;
  void Finalize() override;

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
  std::map<std::string, double> nanoseconds_;  // run name -> real time per iteration
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_BENCH_RATIO_REPORTER_H_
