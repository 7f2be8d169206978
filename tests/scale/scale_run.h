// RunScale: one scale run (issue 19 item 3) end to end, for `tools/dev scale` (tests/scale/
// scale.cc) and its small version in the test run (tests/scale/scale_test.cc).
//
// 1. Writes the run's secrets into a fresh PostgreSQL database through the harness's own store
//    (application_name "scale-harness"): `hot` names every call may ask for, `secrets` names
//    cycled through so that each comes back to a sidecar after its TTL (misses), and a probe.
// 2. Starts the cluster (tests/scale/scale_cluster.h) and a WatchSecrets stream on every sidecar
//    for the probe, or a poller of ResolveSecrets (tests/scale/invalidation_probe.h).
// 3. Runs the load (tests/faults/load_driver.h): `callers` callers, caller i on sidecar
//    i % sidecars; of every 20 calls 14 ask for a hot name, 5 for a cycled name, 1 for a name
//    that does not exist (NOT_FOUND, cached negatively). After `warmup`, for `load`: samples
//    pg_stat_activity every second, makes `writes` writes to the probe `write_gap` apart and
//    times each until every sidecar's stream carried it, and reads every process's /metrics at
//    the start and the end of the window.
//
// Thread safety: call from the main thread (PostgreSQL and the sidecars are its children).
#ifndef SECRET_RESOLVER_TESTS_SCALE_SCALE_RUN_H_
#define SECRET_RESOLVER_TESTS_SCALE_SCALE_RUN_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/scale/invalidation_probe.h"
#include "tests/scale/scale_config.h"
#include "tests/testing/postgres_server.h"

namespace secret_resolver {
namespace testing {

struct ScaleRunOptions {
  ScaleOptions cluster;
  absl::Duration warmup = absl::Seconds(10);  // load before the measured window
  absl::Duration load = absl::Seconds(60);    // the measured window
  int callers = 0;                            // 0: one per sidecar
  absl::Duration pause = absl::ZeroDuration();  // between one caller's calls
  int hot = 20;
  int secrets = 1000;
  int writes = 20;
  absl::Duration write_gap = absl::Milliseconds(250);
  // How "seen" is measured (tests/scale/invalidation_probe.h): WatchSecrets events need a store
  // that answers metadata reads, so tiered runs poll.
  ProbeMethod probe = ProbeMethod::kWatch;
  absl::Duration poll_interval = absl::Milliseconds(25);
  // How long one write may take to reach every sidecar before the harness moves on (a bound on
  // waiting; a write that some sidecar did not carry by then counts as unseen there).
  absl::Duration see_within = absl::Seconds(10);
};

// Sums over a group of processes' /metrics, per second of the measured window.
struct MetricRates {
  double calls = 0;          // secret_resolver_calls_total{method="ResolveSecrets"}
  double hits = 0;           // secret_resolver_cache_hits
  double misses = 0;         // secret_resolver_cache_misses
  double store_fetches = 0;  // secret_resolver_cache_store_fetches: calls on the process's store
};

struct ScaleReport {
  ScaleOptions cluster;
  ProbeMethod probe = ProbeMethod::kWatch;
  absl::Duration poll_interval;
  int callers = 0;
  double seconds = 0;  // the measured window

  // PostgreSQL client connections to the run's database (pg_stat_activity), the harness's own
  // left out: at the last sample, the most at any sample, and by application_name at the last.
  int pg_connections = 0;
  int pg_connections_max = 0;
  std::map<std::string, int> pg_connections_by_app;
  double pg_transactions_per_s = 0;  // pg_stat_database xact_commit + xact_rollback

  // Invalidation: per write, from just before the store's Put until the last sidecar's stream
  // carried the new version (writes some sidecar never carried are left out and counted in
  // `unseen`); and per (write, sidecar).
  std::vector<absl::Duration> write_to_all;
  std::vector<absl::Duration> write_to_each;
  int unseen = 0;
  int streams_ended = 0;

  // The load in the window.
  int64_t calls = 0;
  absl::Duration p50, p99, max_latency;
  std::map<grpc::StatusCode, int64_t> call_codes;
  std::map<int, int64_t> ref_codes;  // 0 = resolved
  int64_t overruns = 0;
  int64_t fewest_calls_on_a_sidecar = 0;  // from the sidecars' own counters

  MetricRates sidecars;  // the sidecars the load calls
  MetricRates tiers;     // the central sidecars (tiered mode)

  int exits_not_zero = 0;  // processes that did not exit 0 on SIGTERM
};

// Runs a scale run on a fresh database of `server` (created by the run; `server` needs
// max_connections for every process's pool and listener, PostgresServerOptions). Errors:
// INVALID_ARGUMENT (options), FAILED_PRECONDITION (the binary refuses a generated config, e.g. tiered mode before
// store.upstream exists; a file or process could not be made), DEADLINE_EXCEEDED (a sidecar
// did not start or a stream sent nothing), UNAVAILABLE (PostgreSQL).
absl::StatusOr<ScaleReport> RunScale(const ScaleRunOptions& options, PostgresServer& server);

// The report as the lines `tools/dev scale` prints.
std::string FormatReport(const ScaleReport& report);

// The q-quantile (0..1) of `values` (nearest rank); zero when empty.
absl::Duration Quantile(std::vector<absl::Duration> values, double q);

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_SCALE_SCALE_RUN_H_
