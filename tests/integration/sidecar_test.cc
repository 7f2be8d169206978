// The sidecar end to end: the real binary, real gRPC over a real Unix socket, through the
// generated client stubs, on a real SQLite store sealed with real keys.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <httplib.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "decrypt/v1beta1/decrypt.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"

namespace secret_resolver {
namespace {

using ::secretresolver::v1::ResolveSecretsRequest;
using ::secretresolver::v1::ResolveSecretsResponse;
using ::secretresolver::v1::SecretResolver;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kStack[] = "stacks-42";
constexpr char kService[] = "grafana-workflows";
// Stand-ins for production credentials: tests assert they never reach a log.
constexpr char kApiValue[] = "planted-api-token-6b1f9d";
constexpr char kDbValue[] = "planted-db-password-c03a";

class SidecarTest : public ::testing::Test {
 protected:
  void SetUp() override { StartWith(""); }

  void StartWith(const std::string& extra_yaml) {
    sidecar_.reset();
    absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create(extra_yaml);
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = std::make_unique<testing::SidecarState>(*std::move(state));
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(state_->store_path, &state_->key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    Put(kStack, "workflows/http/auth-token", kApiValue, {kService});
    Put(kStack, "workflows/db/password", kDbValue, {kService, "k6"});
    Put(kStack, "k6-only", "planted-k6-value-77", {"k6"});
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
        testing::SidecarProcess::Start(*state_);
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = *std::move(sidecar);
    channel_ = grpc::CreateChannel(sidecar_->target(), grpc::InsecureChannelCredentials());
    stub_ = SecretResolver::NewStub(channel_);
  }

  void Put(const std::string& stack, const std::string& name, const std::string& value,
           std::vector<std::string> decrypters) {
    SecretWrite write;
    write.stack = stack;
    write.name = name;
    write.decrypters = std::move(decrypters);
    write.actor = "integration-test";
    write.value = SecretBytes(value);
    ASSERT_TRUE(store_->Put(write).ok());
  }

  grpc::Status Resolve(const ResolveSecretsRequest& request, ResolveSecretsResponse* response,
                       const std::string& token, absl::Duration timeout = absl::Seconds(10)) {
    grpc::ClientContext context;
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(timeout));
    return stub_->ResolveSecrets(&context, request, response);
  }

  // Sends `bytes` as the request message of `method`, past the stub's serializer.
  grpc::Status CallRaw(const std::string& method, const std::string& bytes,
                       const std::string& token) {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice slice(bytes);
    const grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status status) { done.set_value(std::move(status)); });
    return done.get_future().get();
  }

  ResolveSecretsRequest Request(std::map<std::string, std::string> refs,
                                const std::string& stack = kStack) {
    ResolveSecretsRequest request;
    request.set_stack(stack);
    request.mutable_refs()->insert(refs.begin(), refs.end());
    return request;
  }

  std::string GoodToken() { return state_->Token(kStack, kService); }

  std::unique_ptr<testing::SidecarState> state_;
  std::unique_ptr<SqliteSecretStore> store_;
  std::unique_ptr<testing::SidecarProcess> sidecar_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<SecretResolver::Stub> stub_;
};

TEST_F(SidecarTest, ResolvesSecretsWithRedactionTokens) {
  ResolveSecretsResponse response;
  grpc::Status status = Resolve(Request({{"api-token", "secret://workflows/http/auth-token"},
                                         {"db", "secret://workflows/db/password"}}),
                                &response, GoodToken());
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 2);
  const auto& api = response.results().at("api-token").secret();
  EXPECT_EQ(api.value(), kApiValue);
  EXPECT_EQ(api.name(), "workflows/http/auth-token");
  EXPECT_EQ(api.version(), 1);
  EXPECT_EQ(api.redaction().placeholder(), "***SECRET_REDACTED:api-token***");
  EXPECT_EQ(api.redaction().fingerprint().rfind("hmac-sha256:", 0), 0u);
  EXPECT_EQ(api.redaction().fingerprint().size(), 12u + 32u);
  EXPECT_EQ(response.results().at("db").secret().value(), kDbValue);
}

TEST_F(SidecarTest, WholeCallErrors) {
  ResolveSecretsResponse response;
  const auto one = Request({{"k", "secret://workflows/http/auth-token"}});
  EXPECT_EQ(Resolve(one, &response, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Resolve(one, &response, "not.a.token").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Resolve(one, &response, state_->Token(kStack, kService, -absl::Minutes(5)))
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Resolve(one, &response, state_->Token("stacks-43", kService)).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Resolve(Request({}), &response, GoodToken()).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  std::map<std::string, std::string> many;
  for (int i = 0; i < 129; ++i) many[absl::StrCat("k", i)] = "secret://a";
  EXPECT_EQ(Resolve(Request(many), &response, GoodToken()).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Resolve(Request({{"bad key", "secret://a"}}), &response, GoodToken()).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Already passed: gRPC rounds deadlines up to the next millisecond, and a cache hit can be
  // answered within that, so a deadline of "now" would race.
  EXPECT_EQ(Resolve(one, &response, GoodToken(), -absl::Seconds(1)).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);

  grpc::ClientContext both;
  both.AddMetadata("authorization", "Bearer " + GoodToken());
  both.AddMetadata("x-access-token", state_->Token(kStack, "other-service"));
  EXPECT_EQ(stub_->ResolveSecrets(&both, one, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // Bytes that are no request message: a field cut short, and a string that is not UTF-8.
  for (const std::string& bytes :
       {std::string("\x0a\x05sta", 5), std::string("\x0a\x02\xc3\x28", 4)}) {
    grpc::Status status =
        CallRaw("/secretresolver.v1.SecretResolver/ResolveSecrets", bytes, GoodToken());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(),
              "the request is not a valid secretresolver.v1.ResolveSecretsRequest message");
    status = CallRaw("/decryptv1beta1.SecureValueDecrypter/DecryptSecureValues", bytes,
                     GoodToken());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(),
              "the request is not a valid decryptv1beta1.SecureValueDecryptRequest message");
  }
  // Protobuf's complaint about the non-UTF-8 string comes out as a JSON line like any other.
  EXPECT_EQ(sidecar_->Terminate(), 0);
  const std::string log = sidecar_->Log();
  EXPECT_THAT(log, HasSubstr("\"source\":\"protobuf\""));
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(nlohmann::json::accept(line)) << "not a JSON line: " << line;
  }
}

TEST_F(SidecarTest, PerReferenceErrors) {
  ResolveSecretsResponse response;
  grpc::Status status = Resolve(Request({{"bad", "secret://Upper/case"},
                                         {"missing", "secret://workflows/none"},
                                         {"denied", "secret://k6-only"},
                                         {"ok", "secret://workflows/db/password"}}),
                                &response, GoodToken());
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.results().at("bad").error().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(response.results().at("bad").error().message(), HasSubstr("byte 9"));
  EXPECT_EQ(response.results().at("missing").error().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(response.results().at("denied").error().code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(response.results().at("denied").error().message(), "not authorized");
  EXPECT_TRUE(response.results().at("ok").has_secret());
}

TEST_F(SidecarTest, ConcurrentCallersOfSeveralStacksSeeOnlyTheirOwnValues) {
  constexpr int kStacks = 4;
  for (int s = 0; s < kStacks; ++s) {
    Put(absl::StrCat("org-", s), "shared/name", absl::StrCat("value-of-org-", s), {kService});
  }
  std::vector<std::string> tokens;
  for (int s = 0; s < kStacks; ++s) tokens.push_back(state_->Token(absl::StrCat("org-", s), kService));
  std::atomic<int> wrong{0};
  std::atomic<int> served{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      const int s = t % kStacks;
      for (int i = 0; i < 25; ++i) {
        ResolveSecretsResponse response;
        grpc::Status status = Resolve(
            Request({{"k", "secret://shared/name"}}, absl::StrCat("org-", s)), &response,
            tokens[s]);
        if (!status.ok() || response.results().at("k").secret().value() !=
                                absl::StrCat("value-of-org-", s)) {
          wrong.fetch_add(1);
        } else {
          served.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(served.load(), 16 * 25);
}

TEST_F(SidecarTest, GrafanaDecryptApi) {
  Put(kStack, "db-password", "planted-grafana-value-31", {kService});
  auto stub = decryptv1beta1::SecureValueDecrypter::NewStub(channel_);
  grpc::ClientContext context;
  context.AddMetadata("x-access-token", GoodToken());
  decryptv1beta1::SecureValueDecryptRequest request;
  request.set_namespace_(kStack);
  request.add_names("db-password");
  request.add_names("absent");
  request.add_names("k6-only");
  decryptv1beta1::SecureValueDecryptResponseCollection response;
  grpc::Status status = stub->DecryptSecureValues(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.decrypted_values().at("db-password").value(), "planted-grafana-value-31");
  EXPECT_EQ(response.decrypted_values().at("absent").error_message(), "not found");
  EXPECT_EQ(response.decrypted_values().at("k6-only").error_message(), "not authorized");
}

TEST_F(SidecarTest, HealthServiceAndSocketMode) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  struct stat info;
  ASSERT_EQ(stat(state_->socket_path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0660u);
}

TEST_F(SidecarTest, RateLimitIsResourceExhausted) {
  StartWith("limits:\n  per_stack_rate: 0.001\n  per_stack_burst: 2\n");
  const auto one = Request({{"k", "secret://workflows/http/auth-token"}});
  ResolveSecretsResponse response;
  EXPECT_TRUE(Resolve(one, &response, GoodToken()).ok());
  EXPECT_TRUE(Resolve(one, &response, GoodToken()).ok());
  EXPECT_EQ(Resolve(one, &response, GoodToken()).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(SidecarTest, AuditLinesMetricsAndReadiness) {
  StartWith("admin:\n  enabled: true\n  address: 127.0.0.1:0\n");
  ResolveSecretsResponse response;
  ASSERT_TRUE(Resolve(Request({{"api-token", "secret://workflows/http/auth-token"},
                               {"denied", "secret://k6-only"}}),
                      &response, GoodToken())
                  .ok());
  Resolve(Request({{"k", "secret://workflows/http/auth-token"}}), &response, "bad.token.x");

  const std::string log = sidecar_->Log();
  const size_t at = log.find("\"admin\":\"");
  ASSERT_NE(at, std::string::npos) << log;
  const size_t start = at + 9;
  const std::string admin = log.substr(start, log.find('"', start) - start);
  const size_t colon = admin.rfind(':');
  httplib::Client client(admin.substr(0, colon), std::stoi(admin.substr(colon + 1)));
  auto ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_THAT(metrics->body,
              HasSubstr("secret_resolver_calls_total{method=\"ResolveSecrets\",code=\"OK\"} 1"));
  EXPECT_THAT(metrics->body, HasSubstr("secret_resolver_auth_failures_total{reason=\"malformed\"}"));
  EXPECT_THAT(metrics->body, HasSubstr("code=\"PERMISSION_DENIED\""));
  EXPECT_THAT(metrics->body, Not(HasSubstr(kApiValue)));

  sidecar_->Terminate();
  const std::string final_log = sidecar_->Log();
  EXPECT_THAT(final_log, HasSubstr("\"ref_key\":\"api-token\""));
  EXPECT_THAT(final_log, HasSubstr("\"decision\":\"denied\""));
  EXPECT_THAT(final_log, Not(HasSubstr(kApiValue)));
}

TEST_F(SidecarTest, SigtermDrainsExitsZeroAndRemovesSocket) {
  const int status = sidecar_->Terminate();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(access(state_->socket_path.c_str(), F_OK), 0);
}

TEST_F(SidecarTest, StaleSocketIsReplacedButALiveOneIsNot) {
  // A second sidecar on the same socket must refuse to start while the first one listens.
  // Start() returns as soon as the socket accepts, which the first sidecar's does; the second
  // one's log tells whether it refused.
  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> second =
      testing::SidecarProcess::Start(*state_);
  ASSERT_TRUE(second.ok()) << second.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline &&
         (*second)->Log().find("another process is listening") == std::string::npos) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_THAT((*second)->Log(), HasSubstr("another process is listening"));
  ResolveSecretsResponse response;
  EXPECT_TRUE(Resolve(Request({{"k", "secret://workflows/http/auth-token"}}), &response,
                      GoodToken())
                  .ok());
}

TEST_F(SidecarTest, NoValueOrTokenInAnyLogLineErrorMessageOrMetric) {
  StartWith("admin:\n  enabled: true\n  address: 127.0.0.1:0\n"
            "limits:\n  per_stack_rate: 0.001\n  per_stack_burst: 4\n");
  const std::string token = GoodToken();
  const std::string other_service = state_->Token(kStack, "k6");
  const std::string expired = state_->Token(kStack, kService, -absl::Minutes(5));
  const std::vector<std::string> planted = {kApiValue, kDbValue, "planted-k6-value-77",
                                            token, other_service, expired};
  // Every message a caller or an operator can see: status messages, per-reference errors,
  // Grafana's error strings, then the log and the metrics.
  std::vector<std::string> seen;
  auto call = [&](const ResolveSecretsRequest& request, const std::string& credential) {
    ResolveSecretsResponse response;
    const grpc::Status status = Resolve(request, &response, credential);
    seen.push_back(status.error_message());
    for (const auto& [key, result] : response.results()) {
      if (result.has_error()) seen.push_back(result.error().message());
    }
  };
  // Success, and every per-reference error: not found, not a decrypter, malformed URI.
  call(Request({{"a", "secret://workflows/http/auth-token"},
                {"b", "secret://workflows/db/password"},
                {"c", "secret://k6-only"},
                {"d", "secret://missing/one"},
                {"e", "secret://Bad Name"}}),
       token);
  call(Request({{"a", "secret://workflows/http/auth-token"}}), other_service);  // not a decrypter
  // Every whole-call error: bad, tampered, expired and wrong-stack tokens; invalid requests.
  call(Request({{"a", "secret://workflows/http/auth-token"}}), token + "x");
  call(Request({{"a", "secret://workflows/http/auth-token"}}), "not.a.token");
  call(Request({{"a", "secret://workflows/http/auth-token"}}), expired);
  call(Request({{"a", "secret://workflows/http/auth-token"}}, "stacks-1"), token);
  call(Request({}), token);
  call(Request({{"bad key", "secret://a"}}), token);
  for (int i = 0; i < 6; ++i) call(Request({{"a", "secret://k6-only"}}), token);  // rate limit
  {
    auto stub = decryptv1beta1::SecureValueDecrypter::NewStub(channel_);
    grpc::ClientContext context;
    context.AddMetadata("x-access-token", token);
    decryptv1beta1::SecureValueDecryptRequest request;
    request.set_namespace_(kStack);
    request.add_names("k6-only");
    request.add_names("absent");
    decryptv1beta1::SecureValueDecryptResponseCollection response;
    const grpc::Status status = stub->DecryptSecureValues(&context, request, &response);
    seen.push_back(status.error_message());
    for (const auto& [name, result] : response.decrypted_values()) {
      seen.push_back(result.error_message());
    }
  }
  const std::string admin = sidecar_->ServingAddress("admin");
  const size_t colon = admin.rfind(':');
  httplib::Client client(admin.substr(0, colon), std::stoi(admin.substr(colon + 1)));
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  seen.push_back(metrics->body);
  EXPECT_THAT(metrics->body, HasSubstr("code=\"RESOURCE_EXHAUSTED\""));  // every path was driven
  EXPECT_THAT(metrics->body, HasSubstr("reason=\"expired\""));
  sidecar_->Terminate();
  seen.push_back(sidecar_->Log());

  for (size_t i = 0; i < seen.size(); ++i) {
    for (size_t j = 0; j < planted.size(); ++j) {
      // Names the text and the planted item by index: neither is printed.
      EXPECT_EQ(seen[i].find(planted[j]), std::string::npos)
          << "text #" << i << " contains planted item #" << j;
    }
    const std::string& t = token;
    EXPECT_EQ(seen[i].find(t.substr(t.rfind('.') + 1)), std::string::npos)
        << "text #" << i << " contains the token's signature";
  }
}

}  // namespace
}  // namespace secret_resolver
