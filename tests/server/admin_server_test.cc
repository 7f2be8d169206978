#include "server/admin_server.h"

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics.h"
#include "tests/fakes/fake_clock.h"

namespace secret_resolver {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    calls_ =
        registry_.AddCounter("secret_resolver_grpc_calls_total", "gRPC calls.", {"method", "code"});
    calls_->Increment({"ResolveSecrets", "OK"});
    AdminServerOptions options;
    options.address = "127.0.0.1:0";
    options.metrics = &registry_;
    options.readiness_interval = absl::Milliseconds(1);
    options.readiness = [this]() -> absl::Status {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++checks_started_;
      }
      check_started_.notify_all();
      if (ready_.load()) return absl::OkStatus();
      return absl::UnavailableError("store unreachable");
    };
    absl::StatusOr<std::unique_ptr<AdminServer>> server = AdminServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_connection_timeout(5);
    client_->set_read_timeout(5);
  }

  // Waits until a check that started after this call has finished and its result is kept:
  // checks run one after another, so that is once two more have started.
  void WaitForFreshReadiness() {
    std::unique_lock<std::mutex> lock(mu_);
    const int target = checks_started_ + 2;
    check_started_.wait(lock, [&] { return checks_started_ >= target; });
  }

  MetricsRegistry registry_;
  Counter* calls_ = nullptr;
  std::atomic<bool> ready_{true};
  std::mutex mu_;
  std::condition_variable check_started_;
  int checks_started_ = 0;
  std::unique_ptr<AdminServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(AdminServerTest, BindsTheKernelsPort) {
  EXPECT_GT(server_->port(), 0);
  EXPECT_EQ(server_->address(), "127.0.0.1:" + std::to_string(server_->port()));
}

TEST_F(AdminServerTest, ServesMetrics) {
  httplib::Result res = client_->Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), StartsWith("text/plain; version=0.0.4"));
  EXPECT_EQ(res->body, registry_.Render());
  EXPECT_THAT(
      res->body,
      HasSubstr("secret_resolver_grpc_calls_total{method=\"ResolveSecrets\",code=\"OK\"} 1\n"));

  calls_->Increment({"ResolveSecrets", "OK"});
  res = client_->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_THAT(res->body, HasSubstr("code=\"OK\"} 2\n"));
}

TEST_F(AdminServerTest, HealthzIsOk) {
  httplib::Result res = client_->Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");
}

TEST_F(AdminServerTest, ReadyzFollowsTheReadinessCheck) {
  httplib::Result res = client_->Get("/readyz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");

  ready_ = false;
  WaitForFreshReadiness();
  res = client_->Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_THAT(res->body, HasSubstr("UNAVAILABLE: store unreachable"));

  // Liveness does not depend on readiness.
  res = client_->Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  ready_ = true;
  WaitForFreshReadiness();
  res = client_->Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

// Notes (trouble that does not stop serving) follow "ok" in a 200 body, read at every request.
TEST(AdminServerNotesTest, ReadyBodyCarriesTheNotes) {
  std::mutex mu;
  std::vector<std::string> notes;
  AdminServerOptions options;
  options.address = "127.0.0.1:0";
  options.readiness = [] { return absl::OkStatus(); };
  options.readiness_notes = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return notes;
  };
  absl::StatusOr<std::unique_ptr<AdminServer>> server = AdminServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  httplib::Result res = client.Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "ok\n");
  {
    std::lock_guard<std::mutex> lock(mu);
    notes = {"store change feed lost (x)"};
  }
  res = client.Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\nnote: store change feed lost (x)\n");
}

// The readiness check hangs (as on a hung store): no endpoint waits for it, however many
// probes are pending, and /readyz answers the last result until the hang outlasts the timeout.
TEST(AdminServerHungCheckTest, EndpointsAnswerWhileTheCheckIsBlocked) {
  MetricsRegistry registry;
  registry.AddCounter("secret_resolver_calls_total", "Calls.", {"code"})->Increment({"OK"});
  FakeClock clock;
  absl::Notification blocked;
  absl::Notification release;
  std::atomic<int> runs{0};
  std::atomic<bool> announced{false};
  AdminServerOptions options;
  options.address = "127.0.0.1:0";
  options.metrics = &registry;
  options.clock = &clock;
  options.readiness_interval = absl::Milliseconds(1);
  options.readiness_timeout = absl::Seconds(5);
  options.readiness = [&]() -> absl::Status {
    if (runs.fetch_add(1) == 0) return absl::OkStatus();  // the run in Start
    if (!announced.exchange(true)) blocked.Notify();
    release.WaitForNotification();
    return absl::OkStatus();
  };
  absl::StatusOr<std::unique_ptr<AdminServer>> server = AdminServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  blocked.WaitForNotification();

  // More /readyz probes at once than the server has workers, then the other endpoints. Each
  // client's read timeout only keeps a regression from hanging the test.
  auto get = [&](const std::string& path) {
    httplib::Client client("127.0.0.1", (*server)->port());
    client.set_read_timeout(10);
    httplib::Result res = client.Get(path);
    return res ? res->status : -1;
  };
  std::vector<int> readyz_codes(8, 0);
  std::vector<std::thread> probes;
  for (int& code : readyz_codes) probes.emplace_back([&get, &code] { code = get("/readyz"); });
  EXPECT_EQ(get("/healthz"), 200);
  EXPECT_EQ(get("/metrics"), 200);
  for (std::thread& probe : probes) probe.join();
  for (int code : readyz_codes) EXPECT_EQ(code, 200);  // the last result: ready

  clock.Advance(absl::Seconds(5));  // the hang has now lasted the timeout
  httplib::Client client("127.0.0.1", (*server)->port());
  client.set_read_timeout(10);
  httplib::Result res = client.Get("/readyz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 503);
  EXPECT_THAT(res->body, HasSubstr("the readiness check has not finished for 5s"));
  EXPECT_EQ(get("/healthz"), 200);

  release.Notify();
  (*server)->Stop();
}

TEST_F(AdminServerTest, UnknownPathsAndMethodsAreRejected) {
  httplib::Result res = client_->Get("/debug/vars");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = client_->Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(res);
  EXPECT_GE(res->status, 400);
}

TEST_F(AdminServerTest, StopClosesThePortAndIsIdempotent) {
  ASSERT_TRUE(client_->Get("/healthz"));
  server_->Stop();
  server_->Stop();
  httplib::Client fresh("127.0.0.1", server_->port());
  fresh.set_connection_timeout(1);
  EXPECT_FALSE(fresh.Get("/healthz"));
}

TEST_F(AdminServerTest, PortInUseIsUnavailable) {
  AdminServerOptions options;
  options.address = server_->address();
  absl::StatusOr<std::unique_ptr<AdminServer>> second = AdminServer::Start(std::move(options));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
}

TEST(AdminServerStartTest, WithoutRegistryOrCheck) {
  AdminServerOptions options;
  options.address = "localhost:0";
  absl::StatusOr<std::unique_ptr<AdminServer>> server = AdminServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("localhost", (*server)->port());
  httplib::Result res = client.Get("/readyz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST(AdminServerStartTest, RefusesNonLoopbackAddresses) {
  for (const char* address : {"0.0.0.0:0", "10.1.2.3:0", "[::]:0", "example.com:0"}) {
    AdminServerOptions options;
    options.address = address;
    absl::StatusOr<std::unique_ptr<AdminServer>> server = AdminServer::Start(std::move(options));
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_THAT(std::string(server.status().message()), HasSubstr("loopback")) << address;
  }
}

TEST(AdminServerStartTest, ServesOnAnyAddressWhenAllowed) {
  AdminServerOptions options;
  options.address = "0.0.0.0:0";
  options.allow_non_loopback = true;
  absl::StatusOr<std::unique_ptr<AdminServer>> server = AdminServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string port = (*server)->address().substr((*server)->address().rfind(':') + 1);
  httplib::Client client("127.0.0.1", std::stoi(port));
  httplib::Result res = client.Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
}

TEST(AdminServerStartTest, RefusesMalformedAddresses) {
  for (const char* address : {"", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:65536", "::1:80"}) {
    AdminServerOptions options;
    options.address = address;
    absl::StatusOr<std::unique_ptr<AdminServer>> server = AdminServer::Start(std::move(options));
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << address;
  }
}

TEST(AdminServerStartTest, StartAndStopImmediately) {
  // Stop may run before the server thread has reached its accept loop.
  for (int i = 0; i < 20; ++i) {
    AdminServerOptions options;
    options.address = "127.0.0.1:0";
    absl::StatusOr<std::unique_ptr<AdminServer>> server = AdminServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
  }
}

}  // namespace
}  // namespace secret_resolver
