// The scale run (`tools/dev scale`, not in CI; issue 19 item 3): PostgreSQL, N sidecar
// processes (directly on it, or on 1-2 central sidecars in tiered mode) and a load spread over
// them; prints PostgreSQL's connections and transactions, the invalidation latency from a write
// to every sidecar, the store calls against cache misses, and the load's calls per second and
// p99 (tests/scale/scale_run.h says how each is measured). docs/scaling.md holds the figures.
//
// Run from the runfiles root (tools/dev does), where server/secret-resolver is the binary built
// with this one:
//   scale --mode=direct --sidecars=50 --seconds=60
// Exit status: 0 when every sidecar carried every write and every call was answered OK, 1 when
// not, 2 on a set-up error (tiered mode with a binary that refuses store.upstream included).
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "tests/scale/scale_run.h"
#include "tests/testing/postgres_server.h"

ABSL_FLAG(std::string, mode, "direct", "direct (sidecars on PostgreSQL) or tiered");
ABSL_FLAG(int, sidecars, 50, "sidecar processes the load is spread over");
ABSL_FLAG(int, tiers, 2, "central sidecars in tiered mode (1 or 2)");
ABSL_FLAG(int, pool, 2, "store.postgres.max_connections of each process on PostgreSQL");
ABSL_FLAG(int, worker_threads, 2, "limits.worker_threads of each process");
ABSL_FLAG(int, fetch_threads, 2, "limits.max_concurrent_fetches of each process");
ABSL_FLAG(absl::Duration, ttl, absl::Seconds(30), "cache.ttl of each process");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(10), "load before the measured window");
ABSL_FLAG(absl::Duration, seconds, absl::Seconds(60), "the measured window");
ABSL_FLAG(int, callers, 0, "concurrent callers (0: one per sidecar)");
ABSL_FLAG(absl::Duration, pause, absl::ZeroDuration(), "pause between one caller's calls");
ABSL_FLAG(int, secrets, 1000, "secrets cycled through (misses once each expired)");
ABSL_FLAG(int, writes, 20, "writes timed until every sidecar carried them");
ABSL_FLAG(std::string, probe, "",
          "how a sidecar's seeing a write is timed: watch (WatchSecrets events) or poll "
          "(ResolveSecrets every --poll_interval); default watch in direct mode, poll in tiered");
ABSL_FLAG(absl::Duration, poll_interval, absl::Milliseconds(25), "see --probe");

namespace secret_resolver {
namespace testing {
namespace {

int Main() {
  absl::StatusOr<ScaleMode> mode = ParseScaleMode(absl::GetFlag(FLAGS_mode));
  if (!mode.ok()) {
    std::cerr << "scale: " << mode.status().message() << "\n";
    return 2;
  }
  ScaleRunOptions options;
  options.cluster.mode = *mode;
  options.cluster.sidecars = absl::GetFlag(FLAGS_sidecars);
  options.cluster.tiers = absl::GetFlag(FLAGS_tiers);
  options.cluster.pool = absl::GetFlag(FLAGS_pool);
  options.cluster.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  options.cluster.fetch_threads = absl::GetFlag(FLAGS_fetch_threads);
  options.cluster.ttl = absl::GetFlag(FLAGS_ttl);
  options.warmup = absl::GetFlag(FLAGS_warmup);
  options.load = absl::GetFlag(FLAGS_seconds);
  options.callers = absl::GetFlag(FLAGS_callers);
  options.pause = absl::GetFlag(FLAGS_pause);
  options.secrets = absl::GetFlag(FLAGS_secrets);
  options.writes = absl::GetFlag(FLAGS_writes);
  const std::string probe = absl::GetFlag(FLAGS_probe);
  if (probe == "poll" || (probe.empty() && *mode == ScaleMode::kTiered)) {
    options.probe = ProbeMethod::kPoll;
  } else if (!probe.empty() && probe != "watch") {
    std::cerr << "scale: --probe: \"" << probe << "\" is neither \"watch\" nor \"poll\"\n";
    return 2;
  }
  options.poll_interval = absl::GetFlag(FLAGS_poll_interval);

  PostgresServerOptions postgres_options;
  const int on_postgres =
      *mode == ScaleMode::kDirect ? options.cluster.sidecars : options.cluster.tiers;
  // Room for every pool and listener, and the harness's own connections.
  postgres_options.max_connections = on_postgres * (options.cluster.pool + 1) + 20;
  absl::StatusOr<std::unique_ptr<PostgresServer>> postgres =
      PostgresServer::Start(postgres_options);
  if (!postgres.ok()) {
    std::cerr << "scale: " << postgres.status() << "\n";
    return 2;
  }
  std::cout << "scale: starting " << options.cluster.sidecars << " sidecars ("
            << ScaleModeName(*mode) << ")\n" << std::flush;
  absl::StatusOr<ScaleReport> report = RunScale(options, **postgres);
  if (!report.ok()) {
    if (*mode == ScaleMode::kTiered && absl::StrContains(report.status().message(), "refuses")) {
      std::cerr << "scale: tiered mode needs a binary with store.upstream and change_stream "
                   "(issue 19 items 1 and 2); this one refuses the generated config:\n  "
                << report.status().message() << "\n";
    } else {
      std::cerr << "scale: " << report.status() << "\n";
    }
    return 2;
  }
  std::cout << FormatReport(*report) << std::flush;
  const bool all_ok =
      report->unseen == 0 && report->streams_ended == 0 && report->exits_not_zero == 0 &&
      report->call_codes.size() == 1 && report->call_codes.count(grpc::StatusCode::OK) == 1;
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace testing
}  // namespace secret_resolver

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return secret_resolver::testing::Main();
}
