// SIGTERM against the real binary under load (issue 15, item 6): every call in flight when the
// signal arrives ends OK (with the right value) or UNAVAILABLE, which clients retry, never
// CANCELLED; the process exits 0 within shutdown_grace, also while a fetch is blocked on a
// locked store.
#include <signal.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <map>
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
#include "resolver/sqlite/sqlite_secret_store.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"

namespace secret_resolver {
namespace {

using ::secretresolver::v1::RedactLogsRequest;
using ::secretresolver::v1::RedactLogsResponse;
using ::secretresolver::v1::ResolveSecretsRequest;
using ::secretresolver::v1::ResolveSecretsResponse;
using ::secretresolver::v1::SecretResolver;

constexpr char kStack[] = "stacks-16";
constexpr char kService[] = "grafana-workflows";
constexpr char kName[] = "workflows/http/auth-token";
constexpr char kValue[] = "planted-shutdown-token-71c4";  // a stand-in for a credential
constexpr int kConnections = 5;
constexpr int kCallsPerConnection = 20;

// What the callers saw, by status code; "broken" counts OK answers without the right value.
struct Outcomes {
  std::mutex mu;
  std::map<grpc::StatusCode, int> by_code;
  int broken = 0;

  std::string Describe() {
    std::lock_guard<std::mutex> lock(mu);
    std::string text;
    for (const auto& [code, count] : by_code) {
      absl::StrAppend(&text, "code ", code, ": ", count, "; ");
    }
    return absl::StrCat(text, "broken: ", broken);
  }
};

// Keeps kCallsPerConnection calls in flight on a connection of its own, each with a reference
// to an unknown name (a cache miss: the call goes to the worker pool and the store), until
// `stop`; then waits for the calls in flight and records how each ended.
class Caller {
 public:
  Caller(const std::string& target, std::string token, int index, absl::Duration timeout,
         std::atomic<bool>* stop, Outcomes* outcomes)
      : token_(std::move(token)),
        index_(index),
        timeout_(timeout),
        stop_(stop),
        outcomes_(outcomes) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection per caller
    stub_ = SecretResolver::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
    thread_ = std::thread([this] { Run(); });
  }
  ~Caller() { thread_.join(); }

 private:
  struct Call {
    grpc::ClientContext context;
    ResolveSecretsResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<ResolveSecretsResponse>> reader;
  };

  void Issue() {
    auto* call = new Call;
    call->context.AddMetadata("authorization", "Bearer " + token_);
    call->context.set_deadline(std::chrono::system_clock::now() +
                               absl::ToChronoNanoseconds(timeout_));
    ResolveSecretsRequest request;
    request.set_stack(kStack);
    (*request.mutable_refs())["token"] = absl::StrCat("secret://", kName);
    (*request.mutable_refs())["miss"] = absl::StrCat("secret://unknown/c", index_, "-", next_++);
    call->reader = stub_->AsyncResolveSecrets(&call->context, request, &queue_);
    call->reader->Finish(&call->response, &call->status, call);
  }

  void Run() {
    for (int i = 0; i < kCallsPerConnection; ++i) Issue();
    int in_flight = kCallsPerConnection;
    void* tag = nullptr;
    bool ok = false;
    while (in_flight > 0 && queue_.Next(&tag, &ok)) {
      std::unique_ptr<Call> call(static_cast<Call*>(tag));
      --in_flight;
      {
        std::lock_guard<std::mutex> lock(outcomes_->mu);
        ++outcomes_->by_code[call->status.error_code()];
        if (call->status.ok()) {
          const auto& results = call->response.results();
          if (results.count("token") == 0 || results.at("token").secret().value() != kValue) {
            ++outcomes_->broken;
          }
        }
      }
      if (!stop_->load()) {
        Issue();
        ++in_flight;
      }
    }
    queue_.Shutdown();
    while (queue_.Next(&tag, &ok)) {
    }
  }

  const std::string token_;
  const int index_;
  const absl::Duration timeout_;
  std::atomic<bool>* const stop_;
  Outcomes* const outcomes_;
  std::unique_ptr<SecretResolver::Stub> stub_;
  grpc::CompletionQueue queue_;
  int next_ = 0;
  std::thread thread_;  // last
};

class ShutdownFaultsTest : public ::testing::Test {
 protected:
  void Start(const std::string& extra_yaml) {
    absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create(extra_yaml);
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = std::make_unique<testing::SidecarState>(*std::move(state));
    {
      absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
          SqliteSecretStore::Open(state_->store_path, &state_->key_ring);
      ASSERT_TRUE(store.ok()) << store.status();
      SecretWrite write;
      write.stack = kStack;
      write.name = kName;
      write.decrypters = {kService};
      write.actor = "shutdown-faults-test";
      write.value = SecretBytes(kValue);
      ASSERT_TRUE((*store)->Put(write).ok());
    }
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
        testing::SidecarProcess::Start(*state_);
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = *std::move(sidecar);
  }

  // kConnections callers with kCallsPerConnection calls in flight each.
  std::vector<std::unique_ptr<Caller>> StartCallers(absl::Duration timeout) {
    std::vector<std::unique_ptr<Caller>> callers;
    for (int i = 0; i < kConnections; ++i) {
      callers.push_back(std::make_unique<Caller>(
          sidecar_->target(), state_->Token(kStack, kService), i, timeout, &stop_, &outcomes_));
    }
    return callers;
  }

  std::unique_ptr<testing::SidecarState> state_;
  std::unique_ptr<testing::SidecarProcess> sidecar_;
  std::atomic<bool> stop_{false};
  Outcomes outcomes_;
};

TEST_F(ShutdownFaultsTest, CallsInFlightAtSigtermEndOkOrUnavailable) {
  Start("shutdown_grace: 5s\n");
  std::vector<std::unique_ptr<Caller>> callers = StartCallers(absl::Seconds(20));
  absl::SleepFor(absl::Seconds(1));
  stop_ = true;  // each caller's calls now in flight are its last
  // Within the grace, plus a second for a loaded machine.
  const absl::Time signalled = absl::Now();
  const int status = sidecar_->Terminate(absl::Seconds(6));
  const absl::Duration took = absl::Now() - signalled;
  callers.clear();
  std::cout << "exit after SIGTERM: " << took << " (grace 5s); " << outcomes_.Describe() << "\n";
  ASSERT_NE(status, -1) << "no exit within shutdown_grace";
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const std::string outcomes = outcomes_.Describe();
  std::lock_guard<std::mutex> lock(outcomes_.mu);
  EXPECT_GT(outcomes_.by_code[grpc::StatusCode::OK], 0) << outcomes;
  EXPECT_EQ(outcomes_.broken, 0) << outcomes;
  for (const auto& [code, count] : outcomes_.by_code) {
    EXPECT_TRUE(code == grpc::StatusCode::OK || code == grpc::StatusCode::UNAVAILABLE)
        << "calls in flight at SIGTERM ended " << code << ": " << outcomes;
  }
}

// Another process holds SQLite's WAL read locks (the read-mark bytes of the `-shm` file), so
// every read the sidecar's store makes waits (about 10 s, then SQLITE_PROTOCOL), longer than
// the grace: the sidecar still exits 0 within it, and the calls it gives up on are UNAVAILABLE.
TEST_F(ShutdownFaultsTest, ExitsWithinTheGraceWhileTheStoreHangs) {
  Start("shutdown_grace: 2s\n");
  const std::string shm = state_->store_path + "-shm";
  const int locker = open(shm.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(locker, 0) << shm;
  struct flock shm_lock {};
  shm_lock.l_type = F_WRLCK;
  shm_lock.l_whence = SEEK_SET;
  shm_lock.l_start = 123;  // WAL_READ_LOCK(0..4): sqlite3.c, walLockShared
  shm_lock.l_len = 5;
  ASSERT_EQ(fcntl(locker, F_SETLK, &shm_lock), 0) << "cannot lock " << shm;
  std::vector<std::unique_ptr<Caller>> callers = StartCallers(absl::Seconds(30));
  absl::SleepFor(absl::Milliseconds(500));
  stop_ = true;
  const absl::Time signalled = absl::Now();
  const int status = sidecar_->Terminate(absl::Seconds(3));
  const absl::Duration took = absl::Now() - signalled;
  close(locker);  // releases the locks
  callers.clear();
  ASSERT_NE(status, -1) << "no exit within shutdown_grace with a hung store";
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::cout << "exit after SIGTERM with a hung store: " << took << " (grace 2s)\n";
  const std::string outcomes = outcomes_.Describe();
  std::lock_guard<std::mutex> lock(outcomes_.mu);
  EXPECT_EQ(outcomes_.broken, 0) << outcomes;
  for (const auto& [code, count] : outcomes_.by_code) {
    EXPECT_TRUE(code == grpc::StatusCode::OK || code == grpc::StatusCode::UNAVAILABLE)
        << "calls in flight at SIGTERM ended " << code << ": " << outcomes;
  }
}

// A RedactLogs stream open at SIGTERM (started, one chunk answered, its caller quiet, the end of
// its chunk held back because it could begin the value): the stream ends UNAVAILABLE (or OK),
// never CANCELLED, after the held-back bytes came; the process exits 0 within the grace.
TEST_F(ShutdownFaultsTest, RedactStreamOpenAtSigtermEndsUnavailableWithItsTail) {
  Start("shutdown_grace: 5s\n");
  auto stub = SecretResolver::NewStub(
      grpc::CreateChannel(sidecar_->target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + state_->Token(kStack, kService));
  auto stream = stub->RedactLogs(&context);
  RedactLogsRequest start;
  start.mutable_start()->set_stack(kStack);
  (*start.mutable_start()->mutable_refs())["token"] = absl::StrCat("secret://", kName);
  RedactLogsResponse started;
  ASSERT_TRUE(stream->Write(start) && stream->Read(&started)) << stream->Finish().error_message();
  ASSERT_TRUE(started.has_started());
  const std::string placeholder = started.started().placeholders().at("token");
  const std::string prefix = std::string(kValue).substr(0, 7);  // held back: it may begin kValue
  RedactLogsRequest chunk;
  chunk.set_chunk(absl::StrCat("token=", kValue, " next=", prefix));
  ASSERT_TRUE(stream->Write(chunk));
  RedactLogsResponse answer;
  ASSERT_TRUE(stream->Read(&answer));
  std::string output = answer.chunk();
  // Some of the end stays held back (at least `prefix`).
  ASSERT_LE(output.size(), absl::StrCat("token=", placeholder, " next=").size()) << output;

  grpc::Status ended;
  std::thread reader([&] {
    RedactLogsResponse response;
    while (stream->Read(&response)) output += response.chunk();
    ended = stream->Finish();
  });
  const int status = sidecar_->Terminate(absl::Seconds(6));
  reader.join();
  std::cout << "RedactLogs stream open at SIGTERM ended " << ended.error_code() << " ("
            << ended.error_message() << ")\n";
  ASSERT_NE(status, -1) << "no exit within shutdown_grace with a RedactLogs stream open";
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(ended.error_code() == grpc::StatusCode::UNAVAILABLE ||
              ended.error_code() == grpc::StatusCode::OK)
      << "the stream open at SIGTERM ended " << ended.error_code() << ": "
      << ended.error_message();
  // The sidecar's own answer, not gRPC's Shutdown cancelling the stream (which a client also
  // sees as UNAVAILABLE, "Cancelling all calls").
  if (ended.error_code() == grpc::StatusCode::UNAVAILABLE) {
    EXPECT_EQ(ended.error_message(), "the sidecar is shutting down");
  }
  EXPECT_EQ(output, absl::StrCat("token=", placeholder, " next=", prefix))
      << "the held-back tail did not come";
}

// The store hangs: a RedactLogs stream whose start waits on it holds the drain. Streams opened
// during the drain are each answered UNAVAILABLE by the sidecar (every queue keeps one requested),
// and the blocked one is answered UNAVAILABLE at the end of the grace; the process exits 0.
TEST_F(ShutdownFaultsTest, RedactStreamsDuringTheDrainAndOnAHungStoreEndUnavailable) {
  Start("shutdown_grace: 2s\n");
  const std::string shm = state_->store_path + "-shm";
  const int locker = open(shm.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(locker, 0) << shm;
  struct flock shm_lock {};
  shm_lock.l_type = F_WRLCK;
  shm_lock.l_whence = SEEK_SET;
  shm_lock.l_start = 123;  // WAL_READ_LOCK(0..4), as above
  shm_lock.l_len = 5;
  ASSERT_EQ(fcntl(locker, F_SETLK, &shm_lock), 0) << "cannot lock " << shm;
  auto stub = SecretResolver::NewStub(
      grpc::CreateChannel(sidecar_->target(), grpc::InsecureChannelCredentials()));
  // Opens a stream and sends `start` with an unknown name (read from the store); returns how
  // the stream ended.
  auto run_stream = [&](const std::string& name) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + state_->Token(kStack, kService));
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = stub->RedactLogs(&context);
    RedactLogsRequest start;
    start.mutable_start()->set_stack(kStack);
    (*start.mutable_start()->mutable_refs())["x"] = absl::StrCat("secret://unknown/", name);
    RedactLogsResponse response;
    if (stream->Write(start)) {
      while (stream->Read(&response)) {
      }
    }
    return stream->Finish();
  };
  grpc::Status blocked;
  std::thread blocked_stream([&] { blocked = run_stream("blocked"); });
  absl::SleepFor(absl::Milliseconds(500));  // its start is on a worker, waiting on the store
  int status = -1;
  std::thread terminate([&] { status = sidecar_->Terminate(absl::Seconds(3)); });
  absl::SleepFor(absl::Milliseconds(300));  // the drain has begun
  std::vector<grpc::Status> during;
  for (int i = 0; i < 8; ++i) during.push_back(run_stream(absl::StrCat("during-", i)));
  terminate.join();
  blocked_stream.join();
  close(locker);
  ASSERT_NE(status, -1) << "no exit within shutdown_grace";
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::cout << "blocked stream: " << blocked.error_code() << " (" << blocked.error_message()
            << ")\n";
  EXPECT_EQ(blocked.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(blocked.error_message(), "the sidecar is shutting down");
  for (size_t i = 0; i < during.size(); ++i) {
    EXPECT_EQ(during[i].error_code(), grpc::StatusCode::UNAVAILABLE) << "stream " << i;
    EXPECT_EQ(during[i].error_message(), "the sidecar is shutting down") << "stream " << i;
  }
}

// The store hangs, and the calls that reached it have given up (their deadlines passed): no call
// is in flight at SIGTERM, but the cache's fetches are still blocked in the store. Tearing the
// cache and the store down would wait for them; the sidecar exits 0 within the grace anyway.
TEST_F(ShutdownFaultsTest, ExitsWithinTheGraceWhileOnlyStoreFetchesHang) {
  Start("shutdown_grace: 2s\n");
  const std::string shm = state_->store_path + "-shm";
  const int locker = open(shm.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(locker, 0) << shm;
  struct flock shm_lock {};
  shm_lock.l_type = F_WRLCK;
  shm_lock.l_whence = SEEK_SET;
  shm_lock.l_start = 123;  // WAL_READ_LOCK(0..4), as above
  shm_lock.l_len = 5;
  ASSERT_EQ(fcntl(locker, F_SETLK, &shm_lock), 0) << "cannot lock " << shm;
  stop_ = true;  // one round of calls each
  StartCallers(absl::Milliseconds(300)).clear();  // waits until every call has ended
  const int status = sidecar_->Terminate(absl::Seconds(3));
  close(locker);
  ASSERT_NE(status, -1) << "no exit within shutdown_grace with fetches blocked in the store";
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::lock_guard<std::mutex> lock(outcomes_.mu);
  EXPECT_GT(outcomes_.by_code[grpc::StatusCode::DEADLINE_EXCEEDED], 0);
}

}  // namespace
}  // namespace secret_resolver
