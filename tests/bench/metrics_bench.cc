// The metrics work of one warm ResolveSecrets call with 3 references, through the sidecar's own
// SidecarMetrics on a MetricsRegistry (prometheus-cpp underneath): three reference counters and
// one call counter, on series looked up once, and one latency observation. Printed beside five
// relaxed atomic increments, the least any lock-free counting of the same call could cost.
//
// BM_WarmCallMetricsCount runs exactly 1,000,000 calls, for counting instructions with callgrind
// (docs/BENCHMARKS.md, "Metrics"): run `metrics_bench --benchmark_filter=Count` under
// `valgrind --tool=callgrind --toggle-collect='*BM_WarmCallMetricsCount*'`; instructions per
// call = the "Collected" total / 1,000,000.
#include <atomic>
#include <cstdint>

#include <benchmark/benchmark.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "resolver/secret_cache.h"
#include "server/metrics.h"
#include "server/sidecar_metrics.h"
#include "tests/bench/ratio_reporter.h"

namespace secret_resolver {
namespace {

// Shared by the threads of a multi-threaded run, as the sidecar's queue threads share theirs.
MetricsRegistry* const registry = new MetricsRegistry();
SidecarMetrics* const metrics = new SidecarMetrics(registry);

void RecordWarmCall(int64_t i) {
  for (int k = 0; k < 3; ++k) metrics->RecordReference(absl::StatusCode::kOk, CacheOutcome::kHit);
  // 0.4-1.1 ms, the latencies a warm call sees under load: the second to fourth bucket.
  metrics->RecordCall("ResolveSecrets", absl::StatusCode::kOk,
                      absl::Microseconds(400 + 100 * (i & 7)));
}

void BM_WarmCallMetrics(benchmark::State& state) {
  int64_t i = 0;
  for (auto _ : state) RecordWarmCall(i++);
}
BENCHMARK(BM_WarmCallMetrics)->Threads(1)->Threads(2);

void BM_WarmCallMetricsCount(benchmark::State& state) {
  int64_t i = 0;
  for (auto _ : state) RecordWarmCall(i++);
}
BENCHMARK(BM_WarmCallMetricsCount)->Iterations(1000000);

std::atomic<uint64_t> counts[5];

void BM_FiveAtomicAddsBaseline(benchmark::State& state) {
  for (auto _ : state) {
    for (std::atomic<uint64_t>& count : counts) count.fetch_add(1, std::memory_order_relaxed);
  }
}
BENCHMARK(BM_FiveAtomicAddsBaseline)->Threads(1)->Threads(2);

}  // namespace
}  // namespace secret_resolver

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  secret_resolver::RatioReporter reporter({
      {"BM_WarmCallMetrics/threads:1", "BM_FiveAtomicAddsBaseline/threads:1"},
      {"BM_WarmCallMetrics/threads:2", "BM_FiveAtomicAddsBaseline/threads:2"},
  });
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
