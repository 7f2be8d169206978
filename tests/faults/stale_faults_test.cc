// Fault cases for a hung store (issue 15 item 2), on the real binary over its Unix socket with a
// real PostgreSQL: the server is frozen with SIGSTOP (connections stay open and nothing
// answers, unlike a killed server, whose connections fail at once) while cached entries are
// expired. Callers must get the stale values well within their deadline, and fresh ones once
// the server is thawed.
#include <sys/types.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/store/store_config.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/faults/fault_env.h"
#include "tests/integration/sidecar_process.h"
#include "tests/testing/postgres_environment.h"
#include "tests/testing/postgres_server.h"

namespace secret_resolver {
namespace {

using ::secret_resolver::testing::FrozenProcessTree;
using ::secret_resolver::testing::ProcessTree;
using ::secretresolver::v1::ResolveSecretsRequest;
using ::secretresolver::v1::ResolveSecretsResponse;
using ::secretresolver::v1::SecretResolver;

constexpr char kStack[] = "stacks-15";
constexpr char kService[] = "grafana-workflows";
constexpr int kNames = 12;
// Well within the 5 s default of Grafana's and our client libraries, and shorter than the
// store's own 2 s statement and connect timeouts, so only the cache's stale_after (250 ms by
// default) can answer these calls in time while the store hangs.
constexpr absl::Duration kCallDeadline = absl::Seconds(1);

std::string NameOf(int i) { return absl::StrCat("workflows/faults/token-", i); }
// Stand-ins for production credentials, one per version.
std::string ValueOf(int i, int version) {
  return absl::StrCat("planted-stale-token-", i, "-v", version);
}

// What one call got back.
struct Outcome {
  grpc::StatusCode code = grpc::StatusCode::OK;
  int stale = 0;   // results with a value flagged stale
  int fresh = 0;   // results with a value not flagged stale
  int errors = 0;  // per-reference errors
  int wrong = 0;   // values that are not the expected version's
  absl::Duration latency;
};

class StaleFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<PostgresServer*> server = SharedPostgresServer();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *server;
    absl::StatusOr<std::string> dsn = CreateTestDatabase("stale_faults");
    ASSERT_TRUE(dsn.ok()) << dsn.status();
    // A TTL short enough to expire during the test; no refresh-ahead, so entries are refetched
    // only once expired.
    absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create(
        "cache:\n  ttl: 1s\n  refresh_ahead: 0s\n  refresh_jitter: 0s\n  max_stale: 300s\n", *dsn);
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = std::make_unique<testing::SidecarState>(*std::move(state));
    PostgresStoreConfig postgres;
    postgres.dsn = *dsn;
    absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> store =
        OpenSecretStore(StoreConfig{postgres}, &state_->key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    for (int i = 0; i < kNames; ++i) ASSERT_NO_FATAL_FAILURE(Put(i, 1));
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
        testing::SidecarProcess::Start(*state_);
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = *std::move(sidecar);
    stub_ = SecretResolver::NewStub(
        grpc::CreateChannel(sidecar_->target(), grpc::InsecureChannelCredentials()));
    token_ = state_->Token(kStack, kService);
  }

  void Put(int i, int version) {
    SecretWrite write;
    write.stack = kStack;
    write.name = NameOf(i);
    write.decrypters = {kService};
    write.actor = "stale-faults-test";
    write.value = SecretBytes(ValueOf(i, version));
    absl::StatusOr<int64_t> written = store_->Put(write);
    ASSERT_TRUE(written.ok()) << written.status();
    ASSERT_EQ(*written, version);
  }

  // One ResolveSecrets call for every name, each expected at `version`.
  Outcome Call(int version) {
    ResolveSecretsRequest request;
    request.set_stack(kStack);
    for (int i = 0; i < kNames; ++i) {
      (*request.mutable_refs())[absl::StrCat("ref-", i)] = absl::StrCat("secret://", NameOf(i));
    }
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token_);
    context.set_deadline(absl::ToChronoTime(absl::Now() + kCallDeadline));
    ResolveSecretsResponse response;
    Outcome outcome;
    const absl::Time started = absl::Now();
    outcome.code = stub_->ResolveSecrets(&context, request, &response).error_code();
    outcome.latency = absl::Now() - started;
    for (int i = 0; i < kNames && outcome.code == grpc::StatusCode::OK; ++i) {
      const auto& result = response.results().at(absl::StrCat("ref-", i));
      if (!result.has_secret()) {
        ++outcome.errors;
        continue;
      }
      ++(result.secret().stale() ? outcome.stale : outcome.fresh);
      if (result.secret().version() != version || result.secret().value() != ValueOf(i, version)) {
        ++outcome.wrong;
      }
    }
    return outcome;
  }

  PostgresServer* server_ = nullptr;
  std::unique_ptr<testing::SidecarState> state_;
  std::unique_ptr<EncryptedSecretStore> store_;
  std::unique_ptr<testing::SidecarProcess> sidecar_;
  std::unique_ptr<SecretResolver::Stub> stub_;
  std::string token_;
};

TEST_F(StaleFaultsTest, HungPostgresServesExpiredEntriesStaleWithinTheDeadline) {
  const Outcome first = Call(1);
  ASSERT_EQ(first.code, grpc::StatusCode::OK);
  ASSERT_EQ(first.fresh, kNames);
  ASSERT_EQ(first.wrong, 0);

  // The server hangs; the sidecar's pooled connections stay open and get no answer.
  ASSERT_GT(ProcessTree(server_->pid()).size(), 1u) << "no PostgreSQL backend to freeze";
  FrozenProcessTree frozen(server_->pid());
  // Hits until the TTL passes; then every value is expired and its refetch hangs.
  const absl::Time expiry_bound = absl::Now() + absl::Seconds(10);
  Outcome outcome;
  do {
    outcome = Call(1);
    ASSERT_EQ(outcome.code, grpc::StatusCode::OK) << "gRPC code of a call while the store hangs";
    if (outcome.stale == kNames) break;
    absl::SleepFor(absl::Milliseconds(50));
  } while (absl::Now() < expiry_bound);
  ASSERT_EQ(outcome.stale, kNames) << "the entries did not expire within 10 s";

  // Concurrent callers, calling for longer than the store's own timeouts (2 s for a statement,
  // then 2 s for a new connection), so that refetches fail and new ones start meanwhile: every
  // call gets every old value, flagged stale, and none runs out of its deadline.
  constexpr int kCallers = 4;
  const absl::Time calls_end = absl::Now() + absl::Seconds(6);
  std::mutex mu;
  std::vector<Outcome> outcomes;
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&] {
      while (absl::Now() < calls_end) {
        Outcome got = Call(1);
        {
          std::lock_guard<std::mutex> lock(mu);
          outcomes.push_back(got);
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  int deadline_exceeded = 0;
  int not_ok = 0;
  int stale = 0;
  int wrong = 0;
  absl::Duration slowest;
  for (const Outcome& got : outcomes) {
    slowest = std::max(slowest, got.latency);
    if (got.code == grpc::StatusCode::DEADLINE_EXCEEDED) ++deadline_exceeded;
    if (got.code != grpc::StatusCode::OK) ++not_ok;
    stale += got.stale;
    wrong += got.wrong + got.errors;
  }
  EXPECT_EQ(deadline_exceeded, 0) << "of " << outcomes.size() << " calls";
  EXPECT_EQ(not_ok, 0) << "of " << outcomes.size() << " calls";
  EXPECT_EQ(stale, static_cast<int>(outcomes.size()) * kNames);
  EXPECT_EQ(wrong, 0);
  // A figure for the report, not a bound.
  std::printf("hung store: %zu calls, slowest %s (deadline %s)\n", outcomes.size(),
              absl::FormatDuration(slowest).c_str(), absl::FormatDuration(kCallDeadline).c_str());

  // Thawed, the store answers again: values come back fresh, and a write made afterwards is
  // seen.
  frozen.Thaw();
  const absl::Time thaw_bound = absl::Now() + absl::Seconds(15);
  do {
    outcome = Call(1);
    if (outcome.code == grpc::StatusCode::OK && outcome.fresh == kNames) break;
    absl::SleepFor(absl::Milliseconds(50));
  } while (absl::Now() < thaw_bound);
  EXPECT_EQ(outcome.fresh, kNames) << "values still stale 15 s after the store was thawed";
  EXPECT_EQ(outcome.wrong, 0);
  for (int i = 0; i < kNames; ++i) ASSERT_NO_FATAL_FAILURE(Put(i, 2));
  const absl::Time update_bound = absl::Now() + absl::Seconds(10);
  do {
    outcome = Call(2);
    if (outcome.code == grpc::StatusCode::OK && outcome.fresh == kNames && outcome.wrong == 0) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  } while (absl::Now() < update_bound);
  EXPECT_EQ(outcome.fresh, kNames);
  EXPECT_EQ(outcome.wrong, 0) << "the new versions were not served within 10 s";
}

}  // namespace
}  // namespace secret_resolver
