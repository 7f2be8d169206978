// The central tier's change stream end to end (issue 19 item 2): the real sidecar binary as the
// central tier, serving SecretChanges/WatchChanges on a real mTLS listener (certificates made
// with openssl), on a real SQLite file and a real PostgreSQL server written to by the test's
// own store; on the other side the real UpstreamChangeFeed and the generated stub. An allowed
// client gets RESYNC, then the change within 1 s of a write, DELETED on a delete; a client
// certificate not in change_stream.allowed_clients, a plaintext caller and any caller of a
// server without allowed_clients are refused PERMISSION_DENIED; a restart of the central tier
// is seen as FeedLost, then Resync once it is back; heartbeats come to a caller that asks, and
// a frozen central tier is seen as FeedLost within three of their intervals.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/store/store_config.h"
#include "resolver/upstream/upstream_change_feed.h"
#include "secretresolver/v1/changes.grpc.pb.h"
#include "tests/integration/sidecar_process.h"
#include "tests/testing/change_recorder.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/test_pki.h"

namespace secret_resolver {
namespace {

using ::secretresolver::v1::SecretChangeEvent;
using ::secretresolver::v1::SecretChanges;
using ::secretresolver::v1::WatchChangesRequest;
using ::testing::HasSubstr;

constexpr char kStack[] = "stacks-42";
constexpr char kName[] = "workflows/http/auth-token";
// Stand-ins for production credentials: they must never reach an event or the log.
constexpr char kValueOne[] = "planted-tier-value-5d1c";
constexpr char kValueTwo[] = "planted-tier-value-8e2b";
// The allowed clients: one by SAN DNS name, one by SAN URI; "stranger" is signed by the same
// CA but listed nowhere.
constexpr char kAllowedDns[] = "sidecar.workflows.svc";
constexpr char kAllowedUri[] = "spiffe://cluster.local/ns/workflows/sa/runner";
// The central tier's change_stream.heartbeat_interval here (its default is 5 s).
constexpr absl::Duration kHeartbeat = absl::Milliseconds(200);

// A free TCP port on 127.0.0.1, so that a restarted central tier listens where it did.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(address.sin_port);
}

bool IsFeedLost(const SecretChange& c) { return c.feed_lost; }
bool IsResync(const SecretChange& c) { return c.resync; }

// The central tier on one backend, its PKI, and the test's own store on the same data.
class UpstreamChangeFeedTest : public ::testing::TestWithParam<bool /*postgres*/> {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    pki_ = std::make_unique<testing::TestPki>(tmp != nullptr ? tmp : "/tmp");
    ASSERT_TRUE(pki_->MakeCa("ca") && pki_->MakeLeaf("server", "ca") &&
                pki_->MakeLeaf("allowed-by-dns", "ca", absl::StrCat("DNS:", kAllowedDns)) &&
                pki_->MakeLeaf("allowed-by-uri", "ca", absl::StrCat("URI:", kAllowedUri)) &&
                pki_->MakeLeaf("stranger", "ca", "DNS:stranger.workflows.svc"));
    port_ = FreePort();
    ASSERT_NE(port_, 0);
    if (GetParam()) {
      absl::StatusOr<std::unique_ptr<PostgresServer>> postgres = PostgresServer::Start();
      ASSERT_TRUE(postgres.ok()) << postgres.status();
      postgres_ = *std::move(postgres);
    }
  }

  void TearDown() override {
    if (central_ == nullptr) return;
    const std::string log = central_->Log();
    for (const char* value : {kValueOne, kValueTwo}) {
      EXPECT_FALSE(absl::StrContains(log, value)) << "a value reached the central tier's log";
    }
  }

  // Starts the central tier: mTLS on port_, allowing kAllowedDns and kAllowedUri unless
  // `serve_changes` is false, with at most `max_streams` streams and heartbeats every
  // kHeartbeat. Opens the test's store on the same data.
  void StartCentral(bool serve_changes = true, int max_streams = 8) {
    const std::string extra =
        serve_changes ? absl::StrCat("change_stream:\n  allowed_clients: [\"", kAllowedDns,
                                     "\", \"", kAllowedUri, "\"]\n  max_streams: ",
                                     max_streams, "\n  heartbeat_interval: ",
                                     absl::ToInt64Milliseconds(kHeartbeat), "ms\n")
                      : "";
    absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create(
        extra, postgres_ != nullptr ? postgres_->dsn() : "",
        absl::StrCat("  tcp_address: 127.0.0.1:", port_, "\n  tls:\n    cert_file: ",
                     pki_->Path("server", "crt"), "\n    key_file: ", pki_->Path("server", "key"),
                     "\n    client_ca_file: ", pki_->Path("ca", "crt"),
                     "\n    require_client_cert: true\n"));
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = std::make_unique<testing::SidecarState>(*std::move(state));
    StoreConfig config;
    if (postgres_ != nullptr) {
      PostgresStoreConfig postgres;
      postgres.dsn = postgres_->dsn();
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
    Put(kValueOne);
    Restart();
  }

  // Starts the central tier again on the same state (and port).
  void Restart() {
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> central =
        testing::SidecarProcess::Start(*state_);
    ASSERT_TRUE(central.ok()) << central.status();
    central_ = *std::move(central);
  }

  void Put(const std::string& value) {
    SecretWrite write;
    write.stack = kStack;
    write.name = kName;
    write.decrypters = {"grafana-workflows"};
    write.actor = "upstream-change-feed-test";
    write.value = SecretBytes(value);
    ASSERT_TRUE(store_->Put(write).ok());
  }

  // A channel to the central tier over TLS, presenting `client`'s certificate, built as a
  // sidecar builds its upstream channel.
  std::shared_ptr<grpc::Channel> Channel(const std::string& client) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pki_->Read("ca", "crt");
    options.pem_private_key = pki_->Read(client, "key");
    options.pem_cert_chain = pki_->Read(client, "crt");
    // An IP target: no DNS resolution; the server's certificate names 127.0.0.1.
    return grpc::CreateCustomChannel(absl::StrCat("ipv4:127.0.0.1:", port_),
                                     grpc::SslCredentials(options), UpstreamChannelArguments());
  }

  // Options that make the tests quick: reconnect within 50-200 ms.
  static UpstreamChangeFeedOptions QuickRetry() {
    UpstreamChangeFeedOptions options;
    options.initial_backoff = absl::Milliseconds(50);
    options.max_backoff = absl::Milliseconds(200);
    return options;
  }

  // The first event of a raw stream on `channel`, or its status when it ended first.
  static grpc::Status FirstEvent(const std::shared_ptr<grpc::Channel>& channel,
                                 SecretChangeEvent* event) {
    auto stub = SecretChanges::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = stub->WatchChanges(&context, WatchChangesRequest());
    if (reader->Read(event)) {
      context.TryCancel();
      reader->Finish();
      return grpc::Status::OK;
    }
    return reader->Finish();
  }

  int port_ = 0;
  std::unique_ptr<testing::TestPki> pki_;
  std::unique_ptr<PostgresServer> postgres_;
  std::unique_ptr<testing::SidecarState> state_;
  std::unique_ptr<EncryptedSecretStore> store_;
  std::unique_ptr<testing::SidecarProcess> central_;
};

TEST_P(UpstreamChangeFeedTest, AnAllowedClientGetsResyncThenEachChangeWithinASecond) {
  ASSERT_NO_FATAL_FAILURE(StartCentral());
  ChangeRecorder recorder;
  auto feed = std::make_unique<UpstreamChangeFeed>(
      [this] { return Channel("allowed-by-dns"); }, recorder.Listener(), QuickRetry());
  ASSERT_TRUE(recorder.WaitForResync(absl::Now() + absl::Seconds(10))) << central_->Log();

  Put(kValueTwo);
  EXPECT_TRUE(recorder.WaitFor(kStack, kName, absl::Now() + absl::Seconds(1)))
      << "no change within 1 s of the write";
  ASSERT_TRUE(store_->Delete(kStack, kName, "upstream-change-feed-test").ok());
  EXPECT_TRUE(recorder.WaitFor(kStack, kName, 2, absl::Now() + absl::Seconds(1)))
      << "no change within 1 s of the delete";
  feed.reset();
  EXPECT_FALSE(recorder.WaitFor(
      [](const std::vector<SecretChange>& changes) {
        for (const SecretChange& c : changes) {
          if (c.feed_lost) return true;
        }
        return false;
      },
      absl::Now()))
      << "a working stream was reported lost";

  EXPECT_EQ(central_->Terminate(), 0);  // writes out the buffered log
  const std::string log = central_->Log();
  EXPECT_THAT(log, HasSubstr(absl::StrCat("\"client\":\"", kAllowedDns, "\"")));
  EXPECT_THAT(log, HasSubstr("\"phase\":\"start\""));
}

TEST_P(UpstreamChangeFeedTest, TheStreamCarriesKindAndVersionNeverAValue) {
  ASSERT_NO_FATAL_FAILURE(StartCentral());
  auto stub = SecretChanges::NewStub(Channel("allowed-by-uri"));
  grpc::ClientContext context;
  // A bound on the whole test, so a missing event fails it instead of hanging it.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = stub->WatchChanges(&context, WatchChangesRequest());
  SecretChangeEvent event;
  ASSERT_TRUE(reader->Read(&event)) << reader->Finish().error_message();
  EXPECT_EQ(event.kind(), SecretChangeEvent::RESYNC);

  Put(kValueTwo);
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.kind(), SecretChangeEvent::CHANGED);
  EXPECT_EQ(event.stack(), kStack);
  EXPECT_EQ(event.name(), kName);
  EXPECT_EQ(event.version(), 2);
  EXPECT_FALSE(absl::StrContains(event.SerializeAsString(), kValueTwo));

  ASSERT_TRUE(store_->Delete(kStack, kName, "upstream-change-feed-test").ok());
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.kind(), SecretChangeEvent::DELETED);
  EXPECT_EQ(event.name(), kName);
  EXPECT_EQ(event.version(), 0);

  // Shutdown ends the stream UNAVAILABLE, and the end is an audit line with the identity.
  EXPECT_EQ(central_->Terminate(), 0);
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(central_->Log(), HasSubstr(absl::StrCat("\"client\":\"", kAllowedUri, "\"")));
  EXPECT_THAT(central_->Log(), HasSubstr("\"phase\":\"end\""));
}

TEST_P(UpstreamChangeFeedTest, AClientNotListedIsRefusedAndTheFeedReportsItLost) {
  ASSERT_NO_FATAL_FAILURE(StartCentral());
  SecretChangeEvent event;
  const grpc::Status refused = FirstEvent(Channel("stranger"), &event);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(refused.error_message(), HasSubstr("change_stream.allowed_clients"));

  ChangeRecorder recorder;
  std::vector<absl::StatusCode> ends;
  std::mutex ends_mu;
  UpstreamChangeFeedOptions options = QuickRetry();
  options.on_stream_end = [&](const absl::Status& s) {
    std::lock_guard<std::mutex> lock(ends_mu);
    ends.push_back(s.code());
  };
  {
    UpstreamChangeFeed feed([this] { return Channel("stranger"); }, recorder.Listener(),
                            options);
    EXPECT_TRUE(recorder.WaitFor(
        [](const std::vector<SecretChange>& changes) {
          return !changes.empty() && IsFeedLost(changes.front());
        },
        absl::Now() + absl::Seconds(10)));
  }
  std::lock_guard<std::mutex> lock(ends_mu);
  ASSERT_FALSE(ends.empty());
  EXPECT_EQ(ends.front(), absl::StatusCode::kPermissionDenied);
  // Audit lines are written in batches every 50 ms: wait for the refusal's, at most 2 s.
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (!absl::StrContains(central_->Log(), "\"decision\":\"denied\"") &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_THAT(central_->Log(), HasSubstr("\"decision\":\"denied\""));
}

TEST_P(UpstreamChangeFeedTest, PlaintextCallersAreRefused) {
  ASSERT_NO_FATAL_FAILURE(StartCentral());
  SecretChangeEvent event;
  const grpc::Status refused = FirstEvent(
      grpc::CreateChannel(central_->target(), grpc::InsecureChannelCredentials()), &event);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(refused.error_message(), HasSubstr("no verified client certificate"));
}

TEST_P(UpstreamChangeFeedTest, WithoutAllowedClientsEveryoneIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartCentral(/*serve_changes=*/false));
  SecretChangeEvent event;
  const grpc::Status refused = FirstEvent(Channel("allowed-by-dns"), &event);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(refused.error_message(), HasSubstr("allowed_clients is empty"));
}

TEST_P(UpstreamChangeFeedTest, AStreamBeyondMaxStreamsIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartCentral(/*serve_changes=*/true, /*max_streams=*/1));
  auto stub = SecretChanges::NewStub(Channel("allowed-by-dns"));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = stub->WatchChanges(&context, WatchChangesRequest());
  SecretChangeEvent event;
  ASSERT_TRUE(reader->Read(&event));  // registered: its RESYNC came

  const grpc::Status refused = FirstEvent(Channel("allowed-by-uri"), &event);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("change_stream.max_streams is 1"));
  context.TryCancel();
  reader->Finish();
}

TEST_P(UpstreamChangeFeedTest, ARestartOfTheCentralTierIsFeedLostThenResync) {
  ASSERT_NO_FATAL_FAILURE(StartCentral());
  ChangeRecorder recorder;
  // A new channel per attempt, as a sidecar makes them.
  UpstreamChangeFeed feed([this] { return Channel("allowed-by-dns"); }, recorder.Listener(),
                          QuickRetry());
  ASSERT_TRUE(recorder.WaitForResync(absl::Now() + absl::Seconds(10))) << central_->Log();

  EXPECT_EQ(central_->Terminate(), 0);
  // Events after the first resync: FeedLost, then (once it is back) Resync.
  const auto after_first_resync = [](const std::vector<SecretChange>& changes) {
    std::vector<SecretChange> later;
    bool resynced = false;
    for (const SecretChange& c : changes) {
      if (resynced) later.push_back(c);
      resynced = resynced || IsResync(c);
    }
    return later;
  };
  ASSERT_TRUE(recorder.WaitFor(
      [&](const std::vector<SecretChange>& changes) {
        const std::vector<SecretChange> later = after_first_resync(changes);
        return !later.empty() && IsFeedLost(later.front());
      },
      absl::Now() + absl::Seconds(5)))
      << "no FeedLost after the central tier stopped";

  ASSERT_NO_FATAL_FAILURE(Restart());
  ASSERT_TRUE(recorder.WaitFor(
      [&](const std::vector<SecretChange>& changes) {
        const std::vector<SecretChange> later = after_first_resync(changes);
        return later.size() >= 2 && IsResync(later.back());
      },
      absl::Now() + absl::Seconds(10)))
      << "no Resync after the central tier came back";
  // Changes flow again after the resync.
  Put(kValueTwo);
  EXPECT_TRUE(recorder.WaitFor(kStack, kName, absl::Now() + absl::Seconds(1)));
}

// Heartbeats go only to a caller that asked, at the configured interval, and say what it is.
TEST_P(UpstreamChangeFeedTest, HeartbeatsComeOnlyWhenAskedForAndNameTheirInterval) {
  ASSERT_NO_FATAL_FAILURE(StartCentral());
  auto stub = SecretChanges::NewStub(Channel("allowed-by-dns"));
  for (const bool asked : {true, false}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    WatchChangesRequest request;
    request.set_heartbeats(asked);
    auto reader = stub->WatchChanges(&context, request);
    SecretChangeEvent event;
    std::vector<absl::Time> heartbeats;
    int others = 0;
    while (reader->Read(&event)) {
      if (event.kind() != SecretChangeEvent::HEARTBEAT) {
        ++others;
        continue;
      }
      EXPECT_EQ(event.heartbeat_interval_ms(), absl::ToInt64Milliseconds(kHeartbeat));
      EXPECT_TRUE(event.stack().empty() && event.name().empty() && event.version() == 0);
      heartbeats.push_back(absl::Now());
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    EXPECT_EQ(others, 1) << "RESYNC, and nothing else but heartbeats";
    if (!asked) {
      EXPECT_TRUE(heartbeats.empty()) << heartbeats.size() << " heartbeats, none asked for";
      continue;
    }
    // One with the RESYNC, then about one per interval (fewer on a loaded machine, never more).
    EXPECT_GE(heartbeats.size(), 3u);
    EXPECT_LE(heartbeats.size(), static_cast<size_t>(1 + absl::Seconds(3) / kHeartbeat + 1));
  }
}

// A central tier that stops answering without closing the connection (here: SIGSTOP) is
// noticed by the heartbeats' silence (three intervals, at least 1 s), not at the next keepalive
// ping (300 s), and the stream comes back once it answers again.
TEST_P(UpstreamChangeFeedTest, AFrozenCentralTierIsFeedLostByTheHeartbeatsSilence) {
  ASSERT_NO_FATAL_FAILURE(StartCentral());
  ChangeRecorder recorder;
  std::mutex mu;
  std::vector<absl::Status> ends;
  UpstreamChangeFeedOptions options = QuickRetry();
  options.on_stream_end = [&](const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mu);
    ends.push_back(status);
  };
  UpstreamChangeFeed feed([this] { return Channel("allowed-by-dns"); }, recorder.Listener(),
                          options);
  ASSERT_TRUE(recorder.WaitForResync(absl::Now() + absl::Seconds(10))) << central_->Log();
  // Heartbeats have come by then (the first right after the RESYNC): the stream is timed, and
  // a live stream's heartbeats (every 200 ms against the 1 s limit) keep it alive.
  absl::SleepFor(absl::Seconds(1));
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_TRUE(ends.empty()) << "a live stream ended: " << ends.front();
  }
  ASSERT_FALSE(recorder.WaitFor(
      [](const std::vector<SecretChange>& changes) {
        return std::any_of(changes.begin(), changes.end(), IsFeedLost);
      },
      absl::Now()))
      << "a live stream was reported lost";

  ASSERT_EQ(kill(central_->pid(), SIGSTOP), 0);
  const bool lost = recorder.WaitFor(
      [](const std::vector<SecretChange>& changes) {
        return !changes.empty() && IsFeedLost(changes.back());
      },
      absl::Now() + absl::Seconds(6));
  ASSERT_EQ(kill(central_->pid(), SIGCONT), 0);
  ASSERT_TRUE(lost) << "no FeedLost within 6 s of the freeze (the silence limit here is 1 s)";
  // The stream ended because of its silence, not otherwise.
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_FALSE(ends.empty());
    EXPECT_EQ(ends.front().code(), absl::StatusCode::kDeadlineExceeded) << ends.front();
    EXPECT_THAT(std::string(ends.front().message()), HasSubstr("three heartbeat intervals"));
  }
  ASSERT_TRUE(recorder.WaitFor(
      [](const std::vector<SecretChange>& changes) {
        return !changes.empty() && IsResync(changes.back());
      },
      absl::Now() + absl::Seconds(15)))
      << "no Resync once the central tier answered again";
  Put(kValueTwo);
  EXPECT_TRUE(recorder.WaitFor(kStack, kName, absl::Now() + absl::Seconds(1)));
}

INSTANTIATE_TEST_SUITE_P(Backends, UpstreamChangeFeedTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Postgres") : std::string("Sqlite");
                         });

}  // namespace
}  // namespace secret_resolver
