// SecretResolverClient against an in-process gRPC server on a real Unix socket: results and
// per-reference errors, the token header, and the retry policy (only UNAVAILABLE, exponential
// backoff with full jitter, never past the deadline). Backoffs are measured on a FakeClock that
// the client's sleep function advances, so no test sleeps through a backoff or reads the wall
// clock for an assertion. No test prints a value or a token.
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/secret_resolver_client.h"
#include "tests/client/fake_resolver_server.h"
#include "tests/fakes/fake_clock.h"

namespace secret_resolver {
namespace client {
namespace {

using ::secret_resolver::testing::FakeResolverServer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kStack[] = "stacks-7";
constexpr char kToken[] = "test-token-not-a-real-jwt";
constexpr char kApiValue[] = "fake-api-value-91d2";
constexpr char kDbValue[] = "fake-db-value-4c7e";

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeResolverServer>> server = FakeResolverServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    server_->AddSecret("workflows/api", kApiValue, 3);
    server_->AddSecret("workflows/db", kDbValue, 1);
  }

  // Options on the fake clock: sleeping advances it and is recorded, jitter is `fraction`.
  ClientOptions Options() {
    ClientOptions options;
    options.target = server_->target();
    options.token_provider = [this]() -> absl::StatusOr<std::string> {
      ++token_calls_;
      return std::string(kToken);
    };
    options.clock = &clock_;
    options.sleep = [this](absl::Duration d) {
      sleeps_.push_back(d);
      clock_.Advance(d);
    };
    options.uniform_random = [this] { return fraction_; };
    return options;
  }

  std::unique_ptr<SecretResolverClient> Client(ClientOptions options) {
    absl::StatusOr<std::unique_ptr<SecretResolverClient>> client =
        SecretResolverClient::Create(std::move(options));
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  absl::Duration TotalSleep() const {
    absl::Duration total;
    for (absl::Duration d : sleeps_) total += d;
    return total;
  }

  std::unique_ptr<FakeResolverServer> server_;
  FakeClock clock_{absl::Now()};
  std::vector<absl::Duration> sleeps_;
  double fraction_ = 1.0;
  int token_calls_ = 0;
};

TEST_F(ClientTest, ResolvesValuesAndPerReferenceErrors) {
  auto client = Client(Options());
  absl::StatusOr<ResolvedSecrets> results =
      client->ResolveSecrets(kStack, {{"api-token", "secret://workflows/api"},
                                      {"db", "secret://workflows/db"},
                                      {"gone", "secret://workflows/missing"}});
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 3u);

  const absl::StatusOr<ResolvedSecret>& api = results->at("api-token");
  ASSERT_TRUE(api.ok()) << api.status();
  EXPECT_TRUE(api->value.Equals(absl::string_view(kApiValue)));
  EXPECT_EQ(api->name, "workflows/api");
  EXPECT_EQ(api->version, 3);
  EXPECT_EQ(api->placeholder, "***SECRET_REDACTED:api-token***");
  EXPECT_EQ(api->fingerprint, "hmac-sha256:fake-workflows/api");
  EXPECT_FALSE(api->stale);
  ASSERT_TRUE(results->at("db").ok());
  EXPECT_TRUE(results->at("db")->value.Equals(absl::string_view(kDbValue)));

  const absl::Status& gone = results->at("gone").status();
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(gone.message(), HasSubstr("ref \"gone\": "));

  ASSERT_EQ(server_->calls(), 1);
  const testing::SeenCall call = server_->seen()[0];
  EXPECT_EQ(call.stack, kStack);
  EXPECT_EQ(call.refs.size(), 3u);
  EXPECT_TRUE(call.x_access_token == kToken) << "x-access-token does not carry the token";
  EXPECT_TRUE(call.authorization.empty());
}

TEST_F(ClientTest, SendsAuthorizationBearerWhenConfigured) {
  ClientOptions options = Options();
  options.token_header = TokenHeader::kAuthorizationBearer;
  auto client = Client(std::move(options));
  ASSERT_TRUE(client->ResolveSecrets(kStack, {{"db", "secret://workflows/db"}}).ok());
  const testing::SeenCall call = server_->seen().at(0);
  EXPECT_TRUE(call.authorization == absl::StrCat("Bearer ", kToken));
  EXPECT_TRUE(call.x_access_token.empty());
}

TEST_F(ClientTest, TokenProviderErrorFailsTheCallWithoutSendingIt) {
  ClientOptions options = Options();
  options.token_provider = []() -> absl::StatusOr<std::string> {
    return absl::UnauthenticatedError("identity system: token expired and refresh failed");
  };
  auto client = Client(std::move(options));
  absl::StatusOr<ResolvedSecrets> results =
      client->ResolveSecrets(kStack, {{"db", "secret://workflows/db"}});
  EXPECT_EQ(results.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(results.status().message(), HasSubstr("refresh failed"));
  EXPECT_EQ(server_->calls(), 0);
}

TEST_F(ClientTest, EmptyTokenIsUnauthenticatedLocally) {
  ClientOptions options = Options();
  options.token_provider = []() -> absl::StatusOr<std::string> { return std::string(); };
  auto client = Client(std::move(options));
  EXPECT_EQ(client->ResolveSecrets(kStack, {{"db", "secret://workflows/db"}}).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(server_->calls(), 0);
}

TEST_F(ClientTest, RetriesUnavailableWithExponentialBackoffThenSucceeds) {
  server_->FailNext(3, grpc::StatusCode::UNAVAILABLE);
  fraction_ = 1.0;  // the top of each jitter range: the exponential ceiling itself
  auto client = Client(Options());
  absl::StatusOr<ResolvedSecrets> results =
      client->ResolveSecrets(kStack, {{"db", "secret://workflows/db"}});
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_TRUE(results->at("db").ok());
  EXPECT_EQ(server_->calls(), 4);
  // 50 ms * 2^(n-1), the default policy.
  EXPECT_THAT(sleeps_, ElementsAre(absl::Milliseconds(50), absl::Milliseconds(100),
                                   absl::Milliseconds(200)));
  // A fresh token for every attempt.
  EXPECT_EQ(token_calls_, 4);
}

TEST_F(ClientTest, BackoffIsFullJitterUnderACap) {
  server_->FailNext(4, grpc::StatusCode::UNAVAILABLE);
  ClientOptions options = Options();
  options.retry.initial_backoff = absl::Milliseconds(100);
  options.retry.max_backoff = absl::Milliseconds(300);
  options.retry.multiplier = 2.0;
  options.deadline = absl::Seconds(60);
  std::vector<double> fractions = {0.0, 0.5, 0.25, 1.0};
  size_t next = 0;
  options.uniform_random = [&] { return fractions[next++]; };
  auto client = Client(std::move(options));
  ASSERT_TRUE(client->ResolveSecrets(kStack, {{"db", "secret://workflows/db"}}).ok());
  // Ceilings 100, 200, 300 (capped from 400), 300 (capped from 800) ms, times the fraction.
  EXPECT_THAT(sleeps_, ElementsAre(absl::ZeroDuration(), absl::Milliseconds(100),
                                   absl::Milliseconds(75), absl::Milliseconds(300)));
}

TEST_F(ClientTest, GivesUpAfterMaxAttempts) {
  server_->FailNext(100, grpc::StatusCode::UNAVAILABLE);
  ClientOptions options = Options();
  options.retry.max_attempts = 3;
  auto client = Client(std::move(options));
  absl::StatusOr<ResolvedSecrets> results =
      client->ResolveSecrets(kStack, {{"db", "secret://workflows/db"}});
  EXPECT_EQ(results.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(results.status().message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_EQ(server_->calls(), 3);
  EXPECT_EQ(sleeps_.size(), 2u);
}

TEST_F(ClientTest, NeverRetriesPastTheDeadline) {
  server_->FailNext(1000, grpc::StatusCode::UNAVAILABLE);
  ClientOptions options = Options();
  options.retry.max_attempts = 1000;
  options.retry.initial_backoff = absl::Milliseconds(100);
  options.retry.max_backoff = absl::Milliseconds(400);
  options.deadline = absl::Seconds(1);
  auto client = Client(std::move(options));
  absl::StatusOr<ResolvedSecrets> results =
      client->ResolveSecrets(kStack, {{"db", "secret://workflows/db"}});
  EXPECT_EQ(results.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(results.status().message(), HasSubstr("would pass the deadline"));
  // 100 + 200 + 400 = 700 ms fit in 1 s; the next 400 ms would not, so it is not taken.
  EXPECT_THAT(sleeps_, ElementsAre(absl::Milliseconds(100), absl::Milliseconds(200),
                                   absl::Milliseconds(400)));
  EXPECT_LT(TotalSleep(), absl::Seconds(1));
  EXPECT_EQ(server_->calls(), 4);
}

TEST_F(ClientTest, PerCallDeadlineOverridesTheDefault) {
  server_->FailNext(1000, grpc::StatusCode::UNAVAILABLE);
  ClientOptions options = Options();
  options.retry.max_attempts = 1000;
  options.deadline = absl::Seconds(60);
  auto client = Client(std::move(options));
  absl::StatusOr<ResolvedSecrets> results = client->ResolveSecrets(
      kStack, {{"db", "secret://workflows/db"}}, absl::Milliseconds(120));
  EXPECT_EQ(results.status().code(), absl::StatusCode::kUnavailable);
  // 50 ms fits in 120 ms; 50 + 100 does not.
  EXPECT_THAT(sleeps_, ElementsAre(absl::Milliseconds(50)));
}

class NotRetriedTest : public ClientTest,
                       public ::testing::WithParamInterface<grpc::StatusCode> {};

TEST_P(NotRetriedTest, OtherCodesComeBackAtOnce) {
  server_->FailNext(1, GetParam());
  auto client = Client(Options());
  absl::StatusOr<ResolvedSecrets> results =
      client->ResolveSecrets(kStack, {{"db", "secret://workflows/db"}});
  EXPECT_EQ(static_cast<int>(results.status().code()), static_cast<int>(GetParam()));
  EXPECT_EQ(server_->calls(), 1);
  EXPECT_TRUE(sleeps_.empty());
}

INSTANTIATE_TEST_SUITE_P(Codes, NotRetriedTest,
                         ::testing::Values(grpc::StatusCode::UNAUTHENTICATED,
                                           grpc::StatusCode::PERMISSION_DENIED,
                                           grpc::StatusCode::INVALID_ARGUMENT,
                                           grpc::StatusCode::RESOURCE_EXHAUSTED,
                                           grpc::StatusCode::INTERNAL,
                                           grpc::StatusCode::DEADLINE_EXCEEDED));

// The one test on the real clock: the server holds the call past the client's deadline, and the
// client reports DEADLINE_EXCEEDED after one attempt (the duration is not asserted).
TEST_F(ClientTest, SlowServerGivesDeadlineExceededWithoutRetry) {
  server_->set_delay(absl::Seconds(30));
  ClientOptions options = Options();
  options.clock = nullptr;
  options.sleep = nullptr;
  options.deadline = absl::Milliseconds(200);
  auto client = Client(std::move(options));
  absl::StatusOr<ResolvedSecrets> results =
      client->ResolveSecrets(kStack, {{"db", "secret://workflows/db"}});
  EXPECT_EQ(results.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(server_->calls(), 1);
}

TEST_F(ClientTest, UnreachableSidecarIsUnavailableAfterRetries) {
  ClientOptions options = Options();
  options.target = "unix:/nonexistent-dir-for-test/resolver.sock";
  options.retry.max_attempts = 3;
  auto client = Client(std::move(options));
  absl::StatusOr<ResolvedSecrets> results =
      client->ResolveSecrets(kStack, {{"db", "secret://workflows/db"}});
  EXPECT_EQ(results.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(sleeps_.size(), 2u);
}

TEST(ClientCreateTest, RejectsBadOptions) {
  ClientOptions options;
  options.target = "unix:/tmp/x.sock";
  EXPECT_EQ(SecretResolverClient::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);  // no token provider

  options.token_provider = []() -> absl::StatusOr<std::string> { return std::string("t"); };
  ClientOptions no_target = options;
  no_target.target = "";
  EXPECT_EQ(SecretResolverClient::Create(no_target).status().code(),
            absl::StatusCode::kInvalidArgument);

  ClientOptions bad_retry = options;
  bad_retry.retry.max_attempts = 0;
  EXPECT_EQ(SecretResolverClient::Create(bad_retry).status().code(),
            absl::StatusCode::kInvalidArgument);

  ClientOptions half_mtls = options;
  half_mtls.tls = TlsOptions{"/nonexistent/ca.pem", "/nonexistent/cert.pem", "", ""};
  EXPECT_EQ(SecretResolverClient::Create(half_mtls).status().code(),
            absl::StatusCode::kInvalidArgument);

  ClientOptions missing_ca = options;
  missing_ca.tls = TlsOptions{"/nonexistent/ca.pem", "", "", ""};
  absl::StatusOr<std::unique_ptr<SecretResolverClient>> client =
      SecretResolverClient::Create(missing_ca);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(client.status().message(), HasSubstr("/nonexistent/ca.pem"));
}

}  // namespace
}  // namespace client
}  // namespace secret_resolver
