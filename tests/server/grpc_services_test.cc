// GrpcServices behind a real gRPC server on a temporary Unix socket, over the real handler,
// verifier, cache and resolver, with the in-memory store (whose fetches a test can hold open).
// What is checked here is what the services tell their observer: the status each caller got.
#include "server/grpc_services.h"

#include <unistd.h>

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "resolver/redaction.h"
#include "resolver/resolver.h"
#include "resolver/secret_cache.h"
#include "resolver/thread_pool.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "server/auth/file_jwks_source.h"
#include "server/auth/token_verifier.h"
#include "server/resolve_handler.h"
#include "tests/fakes/fake_secret_store.h"
#include "tests/server/auth/token_minter.h"

namespace secret_resolver {
namespace {

constexpr char kIssuer[] = "https://auth.example.test";
constexpr char kAudience[] = "secret-resolver";
constexpr char kStack[] = "stacks-7";
constexpr char kService[] = "grafana-workflows";

// One call as the observer heard of it.
struct ObservedCall {
  std::string method;
  absl::StatusCode code;
};

class GrpcServicesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = auth::testing::TempDir("grpc-services-tokens");
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    nlohmann::json claims = {{"iss", kIssuer},
                             {"aud", kAudience},
                             {"exp", now + 3600},
                             {"iat", now - 10},
                             {"namespace", kStack},
                             {"serviceIdentity", kService},
                             {"permissions", {"secret.grafana.app/securevalues:decrypt"}}};
    absl::StatusOr<auth::testing::MintedTokens> minted = auth::testing::MintTokens(
        dir, {{"good", {{"key", "ec"}, {"claims", claims}}}});
    ASSERT_TRUE(minted.ok()) << minted.status();
    token_ = new std::string(minted->tokens.at("good"));
    jwks_path_ = new std::string(dir + "/jwks.json");
    ASSERT_TRUE(auth::testing::WriteFileAtomically(
                    *jwks_path_, auth::testing::JwksDocument(*minted, {"ec"}))
                    .ok());
  }

  void SetUp() override {
    SecretWrite write;
    write.stack = kStack;
    write.name = "workflows/http/auth-token";
    write.decrypters = {kService};
    write.actor = "test";
    write.value = SecretBytes("grpc-services-test-value");
    ASSERT_TRUE(store_.Put(write).ok());

    auth::JwksFileOptions jwks_options;
    jwks_options.path = *jwks_path_;
    jwks_options.clock = Clock::Real();
    jwks_ = *auth::FileJwksSource::Create(jwks_options);
    auth::TokenVerifierOptions verifier_options;
    verifier_options.clock = Clock::Real();
    verifier_options.issuer = kIssuer;
    verifier_options.audiences = {kAudience};
    verifier_ = *auth::TokenVerifier::Create(verifier_options, jwks_.get());
    tokens_ = *RedactionTokens::Create(kDefaultPlaceholderFormat,
                                       SecretBytes(std::string(32, 'z')));
    cache_ = std::make_unique<SecretCache>(&store_, CacheOptions());
    resolver_ = std::make_unique<Resolver>(cache_.get(), tokens_.get(), ResolverOptions{});
    handler_ = std::make_unique<ResolveHandler>(verifier_.get(), resolver_.get(),
                                                ResolveHandlerOptions());
    pool_ = std::make_unique<ThreadPool>(2, 16);
    services_ = std::make_unique<GrpcServices>(
        handler_.get(), pool_.get(),
        [this](absl::string_view method, absl::StatusCode code, absl::Duration) {
          std::lock_guard<std::mutex> lock(mu_);
          observed_.push_back({std::string(method), code});
          if (!all_observed_.HasBeenNotified()) all_observed_.Notify();
        },
        1, RedactLimits());
    // In /tmp: socket paths are limited to 107 bytes, and TEST_TMPDIR may be longer.
    char dir[] = "/tmp/grpc-services-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    socket_dir_ = dir;
    socket_path_ = socket_dir_ + "/s";
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket_path_, grpc::InsecureServerCredentials());
    services_->Register(&builder);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    services_->Start();
    stub_ = secretresolver::v1::SecretResolver::NewStub(
        grpc::CreateChannel("unix:" + socket_path_, grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    server_->Shutdown();
    services_->BeginDrain();
    pool_.reset();
    services_->Stop();
    unlink(socket_path_.c_str());
    rmdir(socket_dir_.c_str());
  }

  // Once the test's call has been observed.
  std::vector<ObservedCall> WaitForObservedCalls() {
    all_observed_.WaitForNotification();
    std::lock_guard<std::mutex> lock(mu_);
    return observed_;
  }

  grpc::Status Resolve(grpc::ClientContext* context) {
    context->AddMetadata("authorization", "Bearer " + *token_);
    secretresolver::v1::ResolveSecretsRequest request;
    request.set_stack(kStack);
    (*request.mutable_refs())["api-token"] = "secret://workflows/http/auth-token";
    secretresolver::v1::ResolveSecretsResponse response;
    return stub_->ResolveSecrets(context, request, &response);
  }

  static std::string* token_;
  static std::string* jwks_path_;
  // Lets store fetches held by a test's hook go on; first, so that it outlives the threads that
  // wait on it.
  absl::Notification release_;
  FakeSecretStore store_;
  std::unique_ptr<auth::JwksSource> jwks_;
  std::unique_ptr<auth::TokenVerifier> verifier_;
  std::unique_ptr<RedactionTokens> tokens_;
  std::unique_ptr<SecretCache> cache_;
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<ResolveHandler> handler_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<GrpcServices> services_;
  std::unique_ptr<grpc::Server> server_;
  std::string socket_dir_;
  std::string socket_path_;
  std::unique_ptr<secretresolver::v1::SecretResolver::Stub> stub_;

  std::mutex mu_;
  std::vector<ObservedCall> observed_;
  absl::Notification all_observed_;  // each test makes one call
};

std::string* GrpcServicesTest::token_ = nullptr;
std::string* GrpcServicesTest::jwks_path_ = nullptr;

TEST_F(GrpcServicesTest, AnsweredCallIsObservedWithItsCode) {
  grpc::ClientContext context;
  ASSERT_TRUE(Resolve(&context).ok());
  const std::vector<ObservedCall> calls = WaitForObservedCalls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].method, "ResolveSecrets");
  EXPECT_EQ(calls[0].code, absl::StatusCode::kOk);
}

// The store does not answer: the cache gives up at the call's deadline, and the handler answers
// OK (with a per-reference error), but too late for any caller. The call is counted as
// DEADLINE_EXCEEDED. (What the client saw is not checked: on a loaded machine its own deadline
// timer may fire after the late answer has arrived.)
TEST_F(GrpcServicesTest, CallAnsweredAtItsDeadlineIsObservedAsDeadlineExceeded) {
  store_.set_get_hook([this] { release_.WaitForNotification(); });
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  Resolve(&context).IgnoreError();
  const std::vector<ObservedCall> calls = WaitForObservedCalls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].code, absl::StatusCode::kDeadlineExceeded);
}

// The caller gives up while the store is held: CANCELLED, not what the handler answers at the
// deadline (the store still held).
TEST_F(GrpcServicesTest, CallCancelledByItsCallerIsObservedAsCancelled) {
  absl::Notification fetching;
  std::atomic<bool> announced{false};
  store_.set_get_hook([this, &fetching, &announced] {
    if (!announced.exchange(true)) fetching.Notify();
    release_.WaitForNotification();
  });
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::Status status;
  std::thread caller([&] { status = Resolve(&context); });
  fetching.WaitForNotification();
  context.TryCancel();
  caller.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  const std::vector<ObservedCall> calls = WaitForObservedCalls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].code, absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace secret_resolver
