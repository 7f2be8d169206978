// The scale run's small version (issue 19 item 3) in the normal test run: 8 real sidecar
// processes straight on a real PostgreSQL, a load spread over them through real Unix sockets,
// a few seconds. It checks invariants, never durations: every sidecar carried every write
// (waiting at most see_within for each), every call was answered, every sidecar took calls,
// each sidecar holds at most pool + 1 connections (its listener among them), the caches
// answered hits and sent misses to the store, and every process exited 0.
#include <memory>

#include <gtest/gtest.h>

#include "tests/scale/scale_run.h"
#include "tests/testing/postgres_server.h"

namespace secret_resolver {
namespace testing {
namespace {

constexpr int kSidecars = 8;

TEST(ScaleTest, DirectSidecarsCarryEveryWriteWithinTheirConnectionBound) {
  ScaleRunOptions options;
  options.cluster.mode = ScaleMode::kDirect;
  options.cluster.sidecars = kSidecars;
  options.cluster.ttl = absl::Seconds(2);  // cycled names expire within the run: misses recur
  options.warmup = absl::Seconds(2);
  options.load = absl::Seconds(6);
  options.secrets = 200;
  options.writes = 5;
  PostgresServerOptions postgres_options;
  postgres_options.max_connections = kSidecars * (options.cluster.pool + 1) + 20;
  absl::StatusOr<std::unique_ptr<PostgresServer>> postgres =
      PostgresServer::Start(postgres_options);
  ASSERT_TRUE(postgres.ok()) << postgres.status();

  absl::StatusOr<ScaleReport> report = RunScale(options, **postgres);
  ASSERT_TRUE(report.ok()) << report.status();
  const std::string printed = FormatReport(*report);
  std::cout << printed;

  // Every sidecar carried every write.
  EXPECT_EQ(report->unseen, 0) << printed;
  EXPECT_EQ(report->streams_ended, 0) << printed;
  EXPECT_EQ(report->write_to_all.size(), static_cast<size_t>(options.writes)) << printed;
  EXPECT_EQ(report->write_to_each.size(), static_cast<size_t>(options.writes * kSidecars));

  // Every call answered OK, each ref resolved or NOT_FOUND (the unknown names), on every sidecar.
  EXPECT_GT(report->calls, 0);
  EXPECT_EQ(report->call_codes.size(), 1u) << printed;
  EXPECT_EQ(report->call_codes[grpc::StatusCode::OK], report->calls) << printed;
  EXPECT_GT(report->ref_codes[0], 0) << printed;
  EXPECT_GT(report->ref_codes[static_cast<int>(absl::StatusCode::kNotFound)], 0) << printed;
  EXPECT_EQ(report->ref_codes.size(), 2u) << printed;
  EXPECT_GT(report->fewest_calls_on_a_sidecar, 0) << printed;

  // Connections: one listener per sidecar, at most pool + 1 each.
  EXPECT_EQ(report->pg_connections_by_app["secret-resolver-listener"], kSidecars) << printed;
  EXPECT_LE(report->pg_connections_max, kSidecars * (options.cluster.pool + 1)) << printed;
  EXPECT_GE(report->pg_connections_max, kSidecars) << printed;

  // The caches answered most calls and sent misses to the store.
  EXPECT_GT(report->sidecars.hits, report->sidecars.misses) << printed;
  EXPECT_GT(report->sidecars.misses, 0) << printed;
  EXPECT_GT(report->sidecars.store_fetches, 0) << printed;

  EXPECT_EQ(report->exits_not_zero, 0);
}

}  // namespace
}  // namespace testing
}  // namespace secret_resolver
