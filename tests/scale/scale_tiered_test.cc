// The scale run's small version through central sidecars (issue 19 items 2 and 3): one real
// central sidecar on a real PostgreSQL, serving TLS with client certificates and the change
// stream, and 2, then 8, real sidecars on it with store.upstream. Invariants, never durations:
// every sidecar answered every write's new version (polled with ResolveSecrets, waiting at most
// see_within; the change stream drops their cache entries), every call was answered,
// and PostgreSQL's connections stay within the central sidecar's pool + 1 however many
// sidecars there are: they did not grow with the sidecars.
#include <memory>

#include <gtest/gtest.h>

#include "tests/scale/scale_run.h"
#include "tests/testing/postgres_server.h"

namespace secret_resolver {
namespace testing {
namespace {

TEST(ScaleTieredTest, ConnectionsDoNotGrowWithSidecarsAndEverySidecarCarriesEveryWrite) {
  PostgresServerOptions postgres_options;
  postgres_options.max_connections = 40;
  absl::StatusOr<std::unique_ptr<PostgresServer>> postgres =
      PostgresServer::Start(postgres_options);
  ASSERT_TRUE(postgres.ok()) << postgres.status();

  for (int sidecars : {2, 8}) {
    SCOPED_TRACE(sidecars);
    ScaleRunOptions options;
    options.cluster.mode = ScaleMode::kTiered;
    options.cluster.tiers = 1;
    options.cluster.sidecars = sidecars;
    options.cluster.ttl = absl::Seconds(2);
    options.warmup = absl::Seconds(2);
    options.load = absl::Seconds(5);
    options.secrets = 200;
    options.writes = 5;
    // A sidecar on store.upstream cannot put a version on its WatchSecrets change events.
    options.probe = ProbeMethod::kPoll;
    absl::StatusOr<ScaleReport> report = RunScale(options, **postgres);
    ASSERT_TRUE(report.ok()) << report.status();
    const std::string printed = FormatReport(*report);
    std::cout << printed;

    EXPECT_EQ(report->unseen, 0) << printed;
    EXPECT_EQ(report->streams_ended, 0) << printed;
    EXPECT_EQ(report->write_to_all.size(), static_cast<size_t>(options.writes)) << printed;
    EXPECT_EQ(report->call_codes.size(), 1u) << printed;
    EXPECT_EQ(report->call_codes[grpc::StatusCode::OK], report->calls) << printed;
    EXPECT_GT(report->fewest_calls_on_a_sidecar, 0) << printed;
    // Only the central sidecar is on PostgreSQL, whatever the number of sidecars.
    EXPECT_LE(report->pg_connections_max, options.cluster.pool + 1) << printed;
    EXPECT_EQ(report->pg_connections_by_app["secret-resolver-listener"], 1) << printed;
    // The sidecars' misses go to the central sidecar, whose cache answers most of them.
    EXPECT_GT(report->sidecars.store_fetches, 0) << printed;
    EXPECT_GT(report->tiers.calls, 0) << printed;
    EXPECT_EQ(report->exits_not_zero, 0);
  }
}

}  // namespace
}  // namespace testing
}  // namespace secret_resolver
