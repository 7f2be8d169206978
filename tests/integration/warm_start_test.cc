// Warm start (cache.prefetch, issue 18 item 5) through the real binary on a real PostgreSQL
// store: while the prefetch cannot finish (a transaction of the test holds an exclusive lock on
// the secrets table), the gRPC health status is NOT_SERVING and /readyz answers 503; once the
// lock goes, both turn ready (/readyz within its 2 s check interval), a prefetched secret is answered from the cache (a hit, and no
// miss, in the cache metrics and the audit line), and a prefetched name that does not exist was
// logged without holding readiness back.
#include <postgresql/libpq-fe.h>

#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"
#include "tests/testing/postgres_server.h"
#include "tests/tools/secretctl/secretctl_runner.h"

namespace secret_resolver {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

constexpr char kStack[] = "stacks-42";
constexpr char kService[] = "grafana-workflows";
constexpr char kValue[] = "planted-prefetched-value-41d2";

HealthCheckResponse::ServingStatus Health(grpc::health::v1::Health::Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  HealthCheckResponse reply;
  if (!stub.Check(&context, grpc::health::v1::HealthCheckRequest(), &reply).ok()) {
    return HealthCheckResponse::UNKNOWN;
  }
  return reply.status();
}

// A metric's value as /metrics prints it ("name value"), or -1 when absent.
double Metric(const std::string& body, const std::string& name) {
  const std::string prefix = name + " ";
  for (size_t at = body.find(prefix); at != std::string::npos; at = body.find(prefix, at + 1)) {
    if (at == 0 || body[at - 1] == '\n') return std::stod(body.substr(at + prefix.size()));
  }
  return -1;
}

TEST(WarmStartTest, ReadyOnlyOncePrefetchedAndThenServedFromTheCache) {
  absl::StatusOr<std::unique_ptr<PostgresServer>> postgres = PostgresServer::Start();
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create(
      absl::StrCat("admin:\n  enabled: true\n  address: 127.0.0.1:0\n",
                   "cache:\n  prefetch:\n    - stack: ", kStack, "\n",
                   "      names: [workflows/http/auth-token, workflows/not-there]\n"),
      (*postgres)->dsn());
  ASSERT_TRUE(state.ok()) << state.status();
  {
    testing::SecretctlRun run;
    run.args = {"create", absl::StrCat("--store=postgres:", (*postgres)->dsn()),
                "--kek-file", state->kek_file, "--stack", kStack,
                "--name", "workflows/http/auth-token", "--decrypter", kService};
    run.stdin_data = kValue;
    const testing::SecretctlResult created = testing::RunSecretctl(run);
    ASSERT_EQ(created.exit_code, 0) << created.Describe({kValue});
  }
  // Hold every read of the secrets table until the test lets go.
  PGconn* lock = PQconnectdb((*postgres)->dsn().c_str());
  ASSERT_EQ(PQstatus(lock), CONNECTION_OK);
  PGresult* locked =
      PQexec(lock, "BEGIN; LOCK TABLE secure_values IN ACCESS EXCLUSIVE MODE;");
  ASSERT_EQ(PQresultStatus(locked), PGRES_COMMAND_OK) << PQerrorMessage(lock);
  PQclear(locked);

  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
      testing::SidecarProcess::Start(*state);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto channel = grpc::CreateChannel((*sidecar)->target(), grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  const std::string admin = (*sidecar)->ServingAddress("admin");
  ASSERT_FALSE(admin.empty()) << (*sidecar)->Log();
  const size_t colon = admin.rfind(':');
  httplib::Client http(admin.substr(0, colon), std::stoi(admin.substr(colon + 1)));

  // The prefetch is stuck behind the lock: not ready, on both probes.
  EXPECT_EQ(Health(*health), HealthCheckResponse::NOT_SERVING);
  auto not_ready = http.Get("/readyz");
  ASSERT_TRUE(not_ready);
  EXPECT_EQ(not_ready->status, 503);
  EXPECT_THAT(not_ready->body, HasSubstr("cache.prefetch"));
  EXPECT_FALSE(absl::StrContains((*sidecar)->Log(), "cache.prefetch: done"));

  PQclear(PQexec(lock, "COMMIT"));
  PQfinish(lock);
  const absl::Time give_up = absl::Now() + absl::Seconds(15);
  while (Health(*health) != HealthCheckResponse::SERVING && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(Health(*health), HealthCheckResponse::SERVING);
  // /readyz reports the admin server's last readiness check, which runs every 2 s.
  int ready_status = 0;
  while (absl::Now() < give_up) {
    auto ready = http.Get("/readyz");
    ASSERT_TRUE(ready);
    ready_status = ready->status;
    if (ready_status == 200) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(ready_status, 200);
  // Log lines reach stderr in groups: wait for the prefetch's last one.
  std::string log = (*sidecar)->Log();
  while (!absl::StrContains(log, "cache.prefetch: done") && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
    log = (*sidecar)->Log();
  }
  EXPECT_THAT(log, HasSubstr("cache.prefetch: a secret did not load"));
  EXPECT_THAT(log, HasSubstr("workflows/not-there"));
  EXPECT_THAT(log, HasSubstr("\"loaded\":1"));
  EXPECT_THAT(log, HasSubstr("\"failed\":1"));

  // The first call for the prefetched secret is a cache hit; the prefetch itself counted neither
  // a hit nor a miss.
  auto stub = secretresolver::v1::SecretResolver::NewStub(channel);
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + state->Token(kStack, kService));
  secretresolver::v1::ResolveSecretsRequest request;
  request.set_stack(kStack);
  (*request.mutable_refs())["api"] = "secret://workflows/http/auth-token";
  secretresolver::v1::ResolveSecretsResponse response;
  ASSERT_TRUE(stub->ResolveSecrets(&context, request, &response).ok());
  ASSERT_TRUE(response.results().at("api").has_secret());
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(Metric(metrics->body, "secret_resolver_cache_hits"), 1);
  EXPECT_EQ(Metric(metrics->body, "secret_resolver_cache_misses"), 0);
  (*sidecar)->Terminate();  // flushes the audit line
  EXPECT_THAT((*sidecar)->Log(), HasSubstr("\"cache\":\"hit\""));
  EXPECT_FALSE(absl::StrContains((*sidecar)->Log(), kValue));
}

// A prefetch entry may spell the stack `stack-N`, as tokens and calls may: it warms the
// `stacks-N` key under which the secret is stored and calls look it up (SQLite store).
TEST(WarmStartTest, PrefetchStackSpelledStackNWarmsTheCanonicalKey) {
  absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create(absl::StrCat(
      "admin:\n  enabled: true\n  address: 127.0.0.1:0\n",
      "cache:\n  prefetch:\n    - stack: stack-42\n      names: [workflows/http/auth-token]\n"));
  ASSERT_TRUE(state.ok()) << state.status();
  {
    testing::SecretctlRun run;
    run.args = {"create", absl::StrCat("--store=sqlite:", state->store_path),
                "--kek-file", state->kek_file, "--stack", kStack,
                "--name", "workflows/http/auth-token", "--decrypter", kService};
    run.stdin_data = kValue;
    const testing::SecretctlResult created = testing::RunSecretctl(run);
    ASSERT_EQ(created.exit_code, 0) << created.Describe({kValue});
  }
  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
      testing::SidecarProcess::Start(*state);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  const absl::Time give_up = absl::Now() + absl::Seconds(15);
  std::string log = (*sidecar)->Log();
  while (!absl::StrContains(log, "cache.prefetch: done") && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
    log = (*sidecar)->Log();
  }
  EXPECT_THAT(log, HasSubstr("\"loaded\":1"));
  EXPECT_THAT(log, HasSubstr("\"failed\":0"));

  auto channel = grpc::CreateChannel((*sidecar)->target(), grpc::InsecureChannelCredentials());
  auto stub = secretresolver::v1::SecretResolver::NewStub(channel);
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + state->Token(kStack, kService));
  secretresolver::v1::ResolveSecretsRequest request;
  request.set_stack("stack-42");
  (*request.mutable_refs())["api"] = "secret://workflows/http/auth-token";
  secretresolver::v1::ResolveSecretsResponse response;
  ASSERT_TRUE(stub->ResolveSecrets(&context, request, &response).ok());
  ASSERT_TRUE(response.results().at("api").has_secret());
  const std::string admin = (*sidecar)->ServingAddress("admin");
  const size_t colon = admin.rfind(':');
  httplib::Client http(admin.substr(0, colon), std::stoi(admin.substr(colon + 1)));
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(Metric(metrics->body, "secret_resolver_cache_hits"), 1);
  EXPECT_EQ(Metric(metrics->body, "secret_resolver_cache_misses"), 0);
  (*sidecar)->Terminate();
  EXPECT_FALSE(absl::StrContains((*sidecar)->Log(), kValue));
}

}  // namespace
}  // namespace secret_resolver
