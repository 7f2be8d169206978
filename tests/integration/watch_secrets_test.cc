// WatchSecrets end to end (issue 18 item 2): the real sidecar binary over a real Unix socket, on
// a real SQLite file and on a real PostgreSQL server, written to by another process's store (the
// test's), through the generated stub. A write reaches the watcher within 1 s, a delete sends
// `deleted`, a denied ref refuses the stream, the token's expiry ends it UNAUTHENTICATED and
// the sidecar's shutdown UNAVAILABLE.
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/secret_resolver_client.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/store/store_config.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"
#include "tests/testing/postgres_server.h"

namespace secret_resolver {
namespace {

using ::secretresolver::v1::SecretResolver;
using ::secretresolver::v1::WatchSecretsEvent;
using ::secretresolver::v1::WatchSecretsRequest;
using ::testing::HasSubstr;

constexpr char kStack[] = "stacks-42";
constexpr char kService[] = "grafana-workflows";
constexpr char kOtherService[] = "grafana-alerting";
// Stand-ins for production credentials: they must never reach an event or the log.
constexpr char kValueOne[] = "planted-watch-value-1f7a";
constexpr char kValueTwo[] = "planted-watch-value-2c9e";
constexpr char kName[] = "workflows/http/auth-token";

// A stream read on a thread of its own, its events collected for the test to wait on.
class Watcher {
 public:
  Watcher(SecretResolver::Stub* stub, const std::string& token,
          const std::map<std::string, std::string>& refs) {
    context_.AddMetadata("authorization", "Bearer " + token);
    WatchSecretsRequest request;
    request.set_stack(kStack);
    request.mutable_refs()->insert(refs.begin(), refs.end());
    reader_ = stub->WatchSecrets(&context_, request);
    thread_ = std::thread([this] {
      WatchSecretsEvent event;
      while (reader_->Read(&event)) {
        std::lock_guard<std::mutex> lock(mu_);
        events_.push_back(event);
        changed_.notify_all();
      }
      const grpc::Status status = reader_->Finish();
      std::lock_guard<std::mutex> lock(mu_);
      status_ = status;
      ended_ = true;
      changed_.notify_all();
    });
  }
  ~Watcher() {
    context_.TryCancel();
    thread_.join();
  }

  // The next event, waiting at most `within`; nullopt if none came.
  std::optional<WatchSecretsEvent> Next(absl::Duration within) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, absl::ToChronoNanoseconds(within),
                      [this] { return !events_.empty() || ended_; });
    if (events_.empty()) return std::nullopt;
    WatchSecretsEvent event = events_.front();
    events_.pop_front();
    return event;
  }

  // The stream's status, waiting at most `within`; nullopt while it runs.
  std::optional<grpc::Status> Ended(absl::Duration within) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, absl::ToChronoNanoseconds(within), [this] { return ended_; });
    if (!ended_) return std::nullopt;
    return status_;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<WatchSecretsEvent>> reader_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<WatchSecretsEvent> events_;
  bool ended_ = false;
  grpc::Status status_;
  std::thread thread_;
};

// A sidecar on one backend, and the test's own store on the same data.
class WatchSecretsTest : public ::testing::TestWithParam<bool /*postgres*/> {
 protected:
  void SetUp() override {
    std::string dsn;
    if (GetParam()) {
      absl::StatusOr<std::unique_ptr<PostgresServer>> postgres = PostgresServer::Start();
      ASSERT_TRUE(postgres.ok()) << postgres.status();
      postgres_ = *std::move(postgres);
      dsn = postgres_->dsn();
    }
    absl::StatusOr<testing::SidecarState> state =
        testing::SidecarState::Create("limits:\n  max_watch_streams: 4\n", dsn);
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = std::make_unique<testing::SidecarState>(*std::move(state));
    StoreConfig config;
    if (GetParam()) {
      PostgresStoreConfig postgres;
      postgres.dsn = dsn;
      config.backend = postgres;
    } else {
      SqliteStoreConfig sqlite;
      sqlite.path = state_->store_path;
      config.backend = sqlite;
    }
    absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> store =
        OpenSecretStore(config, &state_->key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    Put(kName, kValueOne, {kService, kOtherService});
    Put("k6-only", "planted-k6-value-77", {"k6"});
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
        testing::SidecarProcess::Start(*state_);
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = *std::move(sidecar);
    stub_ = SecretResolver::NewStub(
        grpc::CreateChannel(sidecar_->target(), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (sidecar_ == nullptr) return;
    const std::string log = sidecar_->Log();
    for (const char* value : {kValueOne, kValueTwo}) {
      EXPECT_FALSE(absl::StrContains(log, value)) << "a value reached the sidecar's log";
    }
  }

  void Put(const std::string& name, const std::string& value,
           std::vector<std::string> decrypters) {
    SecretWrite write;
    write.stack = kStack;
    write.name = name;
    write.decrypters = std::move(decrypters);
    write.actor = "watch-secrets-test";
    write.value = SecretBytes(value);
    ASSERT_TRUE(store_->Put(write).ok());
  }

  std::unique_ptr<Watcher> Watch(const std::map<std::string, std::string>& refs,
                                 absl::Duration ttl = absl::Hours(1),
                                 const std::string& service = kService) {
    return std::make_unique<Watcher>(stub_.get(), state_->Token(kStack, service, ttl), refs);
  }

  std::unique_ptr<PostgresServer> postgres_;
  std::unique_ptr<testing::SidecarState> state_;
  std::unique_ptr<EncryptedSecretStore> store_;
  std::unique_ptr<testing::SidecarProcess> sidecar_;
  std::unique_ptr<SecretResolver::Stub> stub_;
};

TEST_P(WatchSecretsTest, AWriteAndADeleteReachTheWatcherWithinASecond) {
  std::unique_ptr<Watcher> watcher = Watch({{"API", absl::StrCat("secret://", kName)}});
  // First the current version: the stream is registered once it came.
  std::optional<WatchSecretsEvent> first = watcher->Next(absl::Seconds(10));
  ASSERT_TRUE(first.has_value()) << sidecar_->Log();
  EXPECT_EQ(first->ref_key(), "API");
  EXPECT_EQ(first->name(), kName);
  EXPECT_EQ(first->version(), 1);
  EXPECT_FALSE(first->deleted());
  // The stream's start is audited under its own method's name (the log is written in batches).
  const absl::Time audited_by = absl::Now() + absl::Seconds(5);
  while (!absl::StrContains(sidecar_->Log(), "\"method\":\"WatchSecrets\"") &&
         absl::Now() < audited_by) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(absl::StrContains(sidecar_->Log(), "\"method\":\"WatchSecrets\""));
  EXPECT_FALSE(absl::StrContains(sidecar_->Log(), "\"method\":\"CheckReferences\""));

  Put(kName, kValueTwo, {kService});
  std::optional<WatchSecretsEvent> rotated = watcher->Next(absl::Seconds(1));
  ASSERT_TRUE(rotated.has_value()) << "no event within 1 s of the write";
  EXPECT_EQ(rotated->ref_key(), "API");
  EXPECT_EQ(rotated->version(), 2);
  EXPECT_FALSE(rotated->deleted());
  EXPECT_FALSE(absl::StrContains(rotated->SerializeAsString(), kValueTwo));

  ASSERT_TRUE(store_->Delete(kStack, kName, "watch-secrets-test").ok());
  std::optional<WatchSecretsEvent> deleted = watcher->Next(absl::Seconds(1));
  ASSERT_TRUE(deleted.has_value()) << "no event within 1 s of the delete";
  EXPECT_EQ(deleted->ref_key(), "API");
  EXPECT_TRUE(deleted->deleted());
  EXPECT_EQ(deleted->version(), 0);

  // Shutdown ends the stream UNAVAILABLE, for the caller to reconnect elsewhere.
  sidecar_->Terminate();
  std::optional<grpc::Status> ended = watcher->Ended(absl::Seconds(5));
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::UNAVAILABLE) << ended->error_message();
  EXPECT_THAT(ended->error_message(), HasSubstr("shutting down"));
}

// limits.max_watch_streams is 4: a caller may hold one stream, another caller one more.
TEST_P(WatchSecretsTest, ACallerHoldsAQuarterOfTheStreams) {
  const std::map<std::string, std::string> refs = {{"API", absl::StrCat("secret://", kName)}};
  std::unique_ptr<Watcher> held = Watch(refs);
  ASSERT_TRUE(held->Next(absl::Seconds(10)).has_value()) << sidecar_->Log();
  std::unique_ptr<Watcher> refused = Watch(refs);
  std::optional<grpc::Status> ended = refused->Ended(absl::Seconds(10));
  ASSERT_TRUE(ended.has_value()) << "a second stream of the same caller was not refused";
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(ended->error_message(), HasSubstr("limits.max_watch_streams"));
  std::unique_ptr<Watcher> other = Watch(refs, absl::Hours(1), kOtherService);
  EXPECT_TRUE(other->Next(absl::Seconds(10)).has_value()) << "another caller was refused";
}

TEST_P(WatchSecretsTest, ADeniedRefRefusesTheStream) {
  std::unique_ptr<Watcher> watcher = Watch(
      {{"API", absl::StrCat("secret://", kName)}, {"K6", "secret://k6-only"}});
  std::optional<grpc::Status> ended = watcher->Ended(absl::Seconds(10));
  ASSERT_TRUE(ended.has_value()) << "the stream was not refused";
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(ended->error_message(), HasSubstr("refs[\"K6\"]"));
  EXPECT_FALSE(watcher->Next(absl::ZeroDuration()).has_value()) << "an event before refusal";
}

TEST_P(WatchSecretsTest, TheTokensExpiryEndsTheStreamUnauthenticated) {
  std::unique_ptr<Watcher> watcher =
      Watch({{"API", absl::StrCat("secret://", kName)}}, absl::Seconds(3));
  ASSERT_TRUE(watcher->Next(absl::Seconds(10)).has_value()) << sidecar_->Log();
  std::optional<grpc::Status> ended = watcher->Ended(absl::Seconds(10));
  ASSERT_TRUE(ended.has_value()) << "the stream outlived its token";
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::UNAUTHENTICATED) << ended->error_message();
  EXPECT_THAT(ended->error_message(), HasSubstr("expired"));
}

// A caller that stops reading is dropped, not buffered for: with a small receive window (no
// BDP probing) its window fills, 64 more events wait in the sidecar, and the next one ends the
// stream (cancelled: a status could not reach the full window anyway) instead of queueing.
TEST_P(WatchSecretsTest, ASlowReaderIsDropped) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  auto stub = SecretResolver::NewStub(grpc::CreateCustomChannel(
      sidecar_->target(), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + state_->Token(kStack, kService));
  // A stream that was not dropped ends here, DEADLINE_EXCEEDED, instead of blocking the test.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  WatchSecretsRequest request;
  request.set_stack(kStack);
  (*request.mutable_refs())["API"] = absl::StrCat("secret://", kName);
  std::unique_ptr<grpc::ClientReader<WatchSecretsEvent>> reader =
      stub->WatchSecrets(&context, request);
  WatchSecretsEvent event;
  ASSERT_TRUE(reader->Read(&event)) << sidecar_->Log();
  constexpr int kWrites = 400;
  for (int i = 0; i < kWrites; ++i) Put(kName, kValueTwo, {kService});
  absl::SleepFor(absl::Seconds(3));  // let the feed deliver what it will
  int read = 0;
  while (reader->Read(&event)) ++read;
  const grpc::Status status = reader->Finish();
  EXPECT_LT(read, kWrites) << "every event was buffered for a reader that did not read";
  EXPECT_TRUE(status.error_code() == grpc::StatusCode::CANCELLED ||
              status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_code() << " " << status.error_message();
}

// The client library's callback API: the current version, then a rotation; across a restart of
// the sidecar it reconnects with backoff and reports the version written while it was down.
TEST_P(WatchSecretsTest, TheClientLibraryReconnectsAndMissesNothing) {
  client::ClientOptions options;
  options.target = sidecar_->target();
  const testing::SidecarState* state = state_.get();
  options.token_provider = [state]() -> absl::StatusOr<std::string> {
    return state->Token(kStack, kService);
  };
  absl::StatusOr<std::unique_ptr<client::SecretResolverClient>> client =
      client::SecretResolverClient::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  std::mutex mu;
  std::condition_variable changed;
  std::vector<client::WatchEvent> events;
  auto wait_for_version = [&](int64_t version, absl::Duration within) {
    std::unique_lock<std::mutex> lock(mu);
    return changed.wait_for(lock, absl::ToChronoNanoseconds(within), [&] {
      return !events.empty() && events.back().version == version;
    });
  };
  std::unique_ptr<client::SecretWatch> watch = (*client)->WatchSecrets(
      kStack, {{"API", absl::StrCat("secret://", kName)}}, [&](const client::WatchEvent& event) {
        std::lock_guard<std::mutex> lock(mu);
        events.push_back(event);
        changed.notify_all();
      });
  ASSERT_TRUE(wait_for_version(1, absl::Seconds(10))) << sidecar_->Log();
  Put(kName, kValueTwo, {kService});
  EXPECT_TRUE(wait_for_version(2, absl::Seconds(1))) << "no event within 1 s of the write";

  sidecar_->Terminate();
  Put(kName, kValueOne, {kService});  // version 3, while no sidecar runs
  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> restarted =
      testing::SidecarProcess::Start(*state_);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  sidecar_ = *std::move(restarted);
  EXPECT_TRUE(wait_for_version(3, absl::Seconds(10))) << "no reconnection";
  watch.reset();
  std::lock_guard<std::mutex> lock(mu);
  for (const client::WatchEvent& event : events) EXPECT_EQ(event.ref_key, "API");
}

// The client library stops on a refusal a retry would not change, and says why.
TEST_P(WatchSecretsTest, TheClientLibraryStopsOnARefusal) {
  client::ClientOptions options;
  options.target = sidecar_->target();
  const testing::SidecarState* state = state_.get();
  options.token_provider = [state]() -> absl::StatusOr<std::string> {
    return state->Token(kStack, kService);
  };
  absl::StatusOr<std::unique_ptr<client::SecretResolverClient>> client =
      client::SecretResolverClient::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  std::mutex mu;
  std::condition_variable ended;
  std::optional<absl::Status> end;
  std::unique_ptr<client::SecretWatch> watch = (*client)->WatchSecrets(
      kStack, {{"K6", "secret://k6-only"}}, [](const client::WatchEvent&) {},
      [&](const absl::Status& status) {
        std::lock_guard<std::mutex> lock(mu);
        end = status;
        ended.notify_all();
      });
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(ended.wait_for(lock, std::chrono::seconds(10), [&] { return end.has_value(); }));
  EXPECT_EQ(end->code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(end->message()), HasSubstr("refs[\"K6\"]"));
}

INSTANTIATE_TEST_SUITE_P(Backends, WatchSecretsTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "PostgreSQL" : "SQLite";
                         });

}  // namespace
}  // namespace secret_resolver
