// Hostile wire input against the real binary (issue 15, items 5 and 8): a raw HTTP/2 client
// (tests/faults/h2_client.py) floods streams whose requests never complete, holds idle and
// half-open connections, and sends malformed gRPC messages. After each, a normal call is
// answered promptly. The stream flood's RSS figures (start, peak, after) are printed for
// docs/BENCHMARKS.md.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"
#include "tests/testing/child_process.h"

namespace secret_resolver {
namespace {

using ::nlohmann::json;
using ::secretresolver::v1::ResolveSecretsRequest;
using ::secretresolver::v1::ResolveSecretsResponse;
using ::secretresolver::v1::SecretResolver;

constexpr char kStack[] = "stacks-15";
constexpr char kService[] = "grafana-workflows";
constexpr char kName[] = "workflows/http/auth-token";
constexpr char kValue[] = "planted-wire-token-3e8a";  // a stand-in for a production credential
constexpr uint64_t kMiB = uint64_t{1} << 20;
// The memory limit of the manifests in deploy/kubernetes (docs/deploy.md).
constexpr uint64_t kManifestMemoryLimit = 256 * kMiB;

class WireFaultsTest : public ::testing::Test {
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
      write.actor = "wire-faults-test";
      write.value = SecretBytes(kValue);
      ASSERT_TRUE((*store)->Put(write).ok());
    }
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
        testing::SidecarProcess::Start(*state_);
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = *std::move(sidecar);
  }

  ResolveSecretsRequest Request() const {
    ResolveSecretsRequest request;
    request.set_stack(kStack);
    (*request.mutable_refs())["token"] = absl::StrCat("secret://", kName);
    return request;
  }

  // One ResolveSecrets call on a new channel, which must be answered within `timeout`.
  grpc::Status ResolveOnce(absl::Duration timeout = absl::Seconds(1)) {
    auto channel = grpc::CreateChannel(sidecar_->target(), grpc::InsecureChannelCredentials());
    auto stub = SecretResolver::NewStub(channel);
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + state_->Token(kStack, kService));
    context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(timeout));
    ResolveSecretsResponse response;
    grpc::Status status = stub->ResolveSecrets(&context, Request(), &response);
    if (status.ok() && response.results().at("token").secret().value() != kValue) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "resolved another value");
    }
    return status;
  }

  // Starts the raw HTTP/2 client on the sidecar's socket with `args`.
  std::unique_ptr<ChildProcess> StartClient(std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/python3", RunfilePath("tests/faults/h2_client.py")};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--unix");
    argv.push_back(state_->socket_path);
    return std::make_unique<ChildProcess>(argv);
  }

  // The client's next JSON line.
  static json NextEvent(ChildProcess& client) {
    std::string line;
    if (!client.ReadLine(&line)) {
      ADD_FAILURE() << "the HTTP/2 client ended without its report";
      return json::object();
    }
    return json::parse(line);
  }

  // Runs the client to its end and returns its last line.
  json RunClient(std::vector<std::string> args) {
    std::unique_ptr<ChildProcess> client = StartClient(std::move(args));
    json last = json::object();
    std::string line;
    while (client->ReadLine(&line)) last = json::parse(line);
    EXPECT_EQ(client->Wait(), 0);
    return last;
  }

  // The sidecar's resident set size, from /proc.
  uint64_t Rss() const {
    std::ifstream status(absl::StrCat("/proc/", sidecar_->pid(), "/status"));
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmRSS:", 0) == 0) {
        std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
        return std::stoull(parts.at(1)) * 1024;
      }
    }
    ADD_FAILURE() << "no VmRSS for the sidecar";
    return 0;
  }

  std::unique_ptr<testing::SidecarState> state_;
  std::unique_ptr<testing::SidecarProcess> sidecar_;
};

// True when the server closed every connection of `report` within `bound_s` seconds of the
// client's start.
bool AllClosedWithin(const json& report, double bound_s) {
  for (const json& t : report.at("closed_after_s")) {
    if (t.is_null() || double(t) > bound_s) return false;
  }
  return true;
}

// One connection opening 10,000 streams, each with request headers and a partial message: the
// sidecar refuses the streams past limits.max_concurrent_streams (default 100). Then a burst
// within the bound (100 connections of 100 such streams): RSS stays under the manifests' limit
// and comes back near where it started once the client has gone.
TEST_F(WireFaultsTest, StreamFloodIsBoundedAndMemoryComesBack) {
  Start("");
  ASSERT_TRUE(ResolveOnce().ok());
  const uint64_t start = Rss();

  json flood = RunClient({"flood", "--streams", "10000", "--hold", "0"});
  const bool refused =
      flood.at("refused") > 0 || flood.at("goaways") > 0 || flood.at("closed_by_server") > 0;
  EXPECT_TRUE(refused) << "10,000 streams on one connection were all accepted: " << flood;
  const uint64_t after_one_connection = Rss();
  EXPECT_LT(after_one_connection, kManifestMemoryLimit);
  const grpc::Status after_flood = ResolveOnce();
  EXPECT_TRUE(after_flood.ok()) << after_flood.error_message();

  const std::string go = absl::StrCat(state_->dir, "/close-now");
  std::unique_ptr<ChildProcess> burst = StartClient(
      {"flood", "--connections", "100", "--streams", "100", "--hold", "50", "--wait-file", go});
  const json sent = NextEvent(*burst);
  const uint64_t peak = Rss();
  EXPECT_LT(peak, kManifestMemoryLimit) << sent;
  std::ofstream(go).put('\n');
  NextEvent(*burst);
  EXPECT_EQ(burst->Wait(), 0);

  // The heap trimmer looks every 5 s.
  const uint64_t near_start = start + 32 * kMiB;
  uint64_t after = Rss();
  for (const absl::Time deadline = absl::Now() + absl::Seconds(20);
       after > near_start && absl::Now() < deadline; after = Rss()) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  std::cout << "10,000 streams on one connection: " << flood << "; RSS then "
            << after_one_connection / kMiB << " MiB\n";
  std::cout << "stream flood RSS: start " << start / kMiB << " MiB, peak " << peak / kMiB
            << " MiB (" << sent.at("written") << " streams written), after " << after / kMiB
            << " MiB\n";
  EXPECT_LE(after, near_start) << "RSS did not come back after the burst";
  const grpc::Status status = ResolveOnce();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// Idle connections, connections that never send the HTTP/2 preface, and connections holding
// streams whose requests never complete are closed after the configured bounds.
TEST_F(WireFaultsTest, IdleHalfOpenAndUnfinishedConnectionsAreClosed) {
  Start(
      "limits:\n"
      "  max_connection_idle: 2s\n"
      "  max_connection_age: 3s\n"
      "  max_connection_age_grace: 1s\n"
      "  handshake_timeout: 2s\n");
  std::unique_ptr<ChildProcess> idle = StartClient({"idle", "--connections", "20", "--hold", "10"});
  std::unique_ptr<ChildProcess> silent =
      StartClient({"idle", "--no-preface", "--connections", "20", "--hold", "10"});
  std::unique_ptr<ChildProcess> unfinished =
      StartClient({"flood", "--connections", "5", "--streams", "50", "--hold", "10"});
  const json idle_report = NextEvent(*idle);
  const json silent_report = NextEvent(*silent);
  NextEvent(*unfinished);  // "sent"
  const json unfinished_report = NextEvent(*unfinished);
  // Each bound, plus 2 s for the server's timer granularity and a loaded machine.
  EXPECT_TRUE(AllClosedWithin(idle_report, 4)) << "idle connections: " << idle_report;
  EXPECT_TRUE(AllClosedWithin(silent_report, 4))
      << "connections without a preface: " << silent_report;
  EXPECT_TRUE(AllClosedWithin(unfinished_report, 6))
      << "unfinished requests: " << unfinished_report;
  EXPECT_EQ(idle->Wait(), 0);
  EXPECT_EQ(silent->Wait(), 0);
  EXPECT_EQ(unfinished->Wait(), 0);
  const grpc::Status status = ResolveOnce();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// gRPC's own servers refuse a message flagged compressed on a call without a compression
// algorithm, and a second message in a unary request (INTERNAL); so does the sidecar. The same
// request, well framed, through the same raw client, is answered.
TEST_F(WireFaultsTest, MalformedMessageFramingIsRefused) {
  Start("");
  std::string serialized;
  ASSERT_TRUE(Request().SerializeToString(&serialized));
  const std::string hex = absl::BytesToHexString(serialized);
  const std::string auth = "authorization=Bearer " + state_->Token(kStack, kService);
  const auto call = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"call", "--hold", "10", "--header", auth, "--message", hex};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunClient(args);
  };
  const json well_framed = call({});
  EXPECT_EQ(well_framed.at("grpc_status"), 0) << well_framed;
  EXPECT_GT(well_framed.at("response_bytes"), 0) << well_framed;

  for (const std::vector<std::string>& compressed :
       {std::vector<std::string>{"--compressed-flag"},
        std::vector<std::string>{"--compressed-flag", "--header", "grpc-encoding=identity"}}) {
    const json report = call(compressed);
    EXPECT_EQ(report.at("grpc_status"), int(grpc::StatusCode::INTERNAL)) << report;
    EXPECT_EQ(report.at("response_bytes"), 0) << report;
  }
  const json two = call({"--two-messages"});
  EXPECT_EQ(two.at("grpc_status"), int(grpc::StatusCode::INTERNAL)) << two;
  EXPECT_EQ(two.at("response_bytes"), 0) << two;
  const grpc::Status status = ResolveOnce();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace
}  // namespace secret_resolver
