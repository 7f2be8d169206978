#include "tests/bench/ratio_reporter.h"

#include <cstdio>

namespace secret_resolver {

RatioReporter::RatioReporter(std::vector<std::pair<std::string, std::string>> pairs)
    : pairs_(std::move(pairs)) {}

void RatioReporter::ReportRuns(const std::vector<Run>& runs) {
  ConsoleReporter::ReportRuns(runs);
  for (const Run& run : runs) {
    if (run.run_type != Run::RT_Iteration || run.iterations == 0) continue;
    // Real time per iteration in nanoseconds, whatever the benchmark's display unit.
    nanoseconds_[run.benchmark_name()] =
        run.real_accumulated_time * 1e9 / static_cast<double>(run.iterations);
  }
}

void RatioReporter::Finalize() {
  ConsoleReporter::Finalize();
  std::printf("\n%-44s %-36s %10s %10s %7s\n", "benchmark", "baseline", "ns", "base ns", "ratio");
  for (const auto& [name, baseline] : pairs_) {
    auto it = nanoseconds_.find(name);
    auto base = nanoseconds_.find(baseline);
    if (it == nanoseconds_.end() || base == nanoseconds_.end()) {
      std::printf("%-44s %-36s (not run)\n", name.c_str(), baseline.c_str());
      continue;
    }
    std::printf("%-44s %-36s %10.1f %10.1f %6.2fx\n", name.c_str(), baseline.c_str(), it->second,
                base->second, it->second / base->second);
  }
}

}  // namespace secret_resolver
