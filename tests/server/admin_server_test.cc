#include "server/admin_server.h"

#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics.h"

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
    options.readiness = [this]() -> absl::Status {
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

  MetricsRegistry registry_;
  Counter* calls_ = nullptr;
  std::atomic<bool> ready_{true};
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
  res = client_->Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_THAT(res->body, HasSubstr("UNAVAILABLE: store unreachable"));

  // Liveness does not depend on readiness.
  res = client_->Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  ready_ = true;
  res = client_->Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
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
