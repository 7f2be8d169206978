// ResolveHandler over real parts: tokens minted by PyJWT (tests/server/auth/mint_tokens.py),
// the real verifier with a JWKS file, the real cache and resolver, and the in-memory store.
#include "server/resolve_handler.h"

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/auth/file_jwks_source.h"
#include "server/auth/jwks_source.h"
#include "server/auth/token_verifier.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_secret_store.h"
#include "tests/server/auth/token_minter.h"
#include "tests/server/wire_bytes.h"

namespace secret_resolver {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using secretresolver::v1::ResolveSecretsResponse;

constexpr char kIssuer[] = "https://auth.example.test";
constexpr char kAudience[] = "secret-resolver";
constexpr char kStack[] = "stacks-7";
constexpr char kValue[] = "planted-handler-value-51c3";
constexpr int64_t kNow = 1'800'000'000;

// The message a handler's response bytes encode.
template <typename Message>
Message Decode(const grpc::ByteBuffer& bytes) {
  Message message;
  EXPECT_TRUE(message.ParseFromString(testing::WireBytes(bytes)));
  return message;
}

nlohmann::json Claims(const std::string& ns, const std::string& service) {
  return {{"iss", kIssuer},
          {"aud", kAudience},
          {"exp", kNow + 3600},
          {"iat", kNow - 10},
          {"namespace", ns},
          {"serviceIdentity", service},
          {"permissions", {"secret.grafana.app/securevalues:decrypt"}}};
}

class ResolveHandlerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = auth::testing::TempDir("handler-tokens");
    nlohmann::json specs = {
        {"good", {{"key", "ec"}, {"claims", Claims(kStack, "grafana-workflows")}}},
        {"other_stack", {{"key", "ec"}, {"claims", Claims("stacks-8", "grafana-workflows")}}},
        {"intruder", {{"key", "ec"}, {"claims", Claims(kStack, "k6")}}},
        {"no_identity", {{"key", "ec"}, {"claims", Claims(kStack, "")}}},
        {"no_permission",
         {{"key", "ec"},
          {"claims", [] {
             nlohmann::json claims = Claims(kStack, "grafana-workflows");
             claims["permissions"] = nlohmann::json::array();
             return claims;
           }()}}},
        {"forged", {{"key", "ec"}, {"mode", "tamper_signature"},
                    {"claims", Claims(kStack, "grafana-workflows")}}},
    };
    absl::StatusOr<auth::testing::MintedTokens> minted = auth::testing::MintTokens(dir, specs);
    ASSERT_TRUE(minted.ok()) << minted.status();
    minted_ = new auth::testing::MintedTokens(*std::move(minted));
    jwks_path_ = new std::string(dir + "/jwks.json");
    ASSERT_TRUE(auth::testing::WriteFileAtomically(
                    *jwks_path_, auth::testing::JwksDocument(*minted_, {"ec"}))
                    .ok());
  }

  void SetUp() override {
    clock_.SetTime(absl::FromUnixSeconds(kNow));
    SecretWrite write;
    write.stack = kStack;
    write.name = "workflows/http/auth-token";
    write.decrypters = {"grafana-workflows"};
    write.actor = "test";
    write.value = SecretBytes(kValue);
    ASSERT_TRUE(store_.Put(write).ok());

    auth::JwksFileOptions jwks_options;
    jwks_options.path = *jwks_path_;
    jwks_options.clock = &clock_;
    jwks_ = *auth::FileJwksSource::Create(jwks_options);
    auth::TokenVerifierOptions verifier_options;
    verifier_options.issuer = kIssuer;
    verifier_options.audiences = {kAudience};
    verifier_options.clock = &clock_;
    verifier_ = *auth::TokenVerifier::Create(verifier_options, jwks_.get());
    tokens_ = *RedactionTokens::Create(kDefaultPlaceholderFormat,
                                       SecretBytes(std::string(32, 'z')));
    CacheOptions cache_options;
    cache_options.clock = &clock_;
    cache_options.refresh_executor = [](std::function<void()> task) { task(); };
    cache_ = std::make_unique<SecretCache>(&store_, std::move(cache_options));
    resolver_ = std::make_unique<Resolver>(cache_.get(), tokens_.get(), ResolverOptions{});
    MakeHandler(nullptr);
  }

  RateLimiterOptions Limits(double rate, double burst) {
    RateLimiterOptions options;
    options.rate = rate;
    options.burst = burst;
    options.clock = &clock_;
    return options;
  }

  void MakeHandler(RateLimiter* limiter, size_t max_decrypt_names = 1024) {
    ResolveHandlerOptions options;
    options.clock = &clock_;
    options.rate_limiter = limiter;
    options.max_decrypt_names = max_decrypt_names;
    options.hooks.on_auth_failure = [this](absl::string_view reason) {
      auth_failures_.emplace_back(reason);
    };
    options.hooks.on_rate_limited = [this](absl::string_view stack) {
      rate_limited_.emplace_back(stack);
    };
    options.hooks.on_references = [this](absl::Span<const ReferenceOutcome> outcomes,
                                         absl::Duration) {
      for (const ReferenceOutcome& outcome : outcomes) {
        outcomes_.push_back({std::string(outcome.stack), std::string(outcome.caller),
                             std::string(outcome.reported_service)});
      }
    };
    options.hooks.on_call_denied = [this](const CallDenial& denial) {
      denials_.push_back({std::string(denial.reason), std::string(denial.stack),
                          std::string(denial.caller), denial.code});
    };
    options.hooks.on_backend_error = [this](const BackendError& error) {
      backend_errors_.push_back({error.correlation_id, std::string(error.ref_key), error.detail});
    };
    handler_ = std::make_unique<ResolveHandler>(verifier_.get(), resolver_.get(), options);
  }

  // The header lives in the fixture: CallCredentials only views it.
  CallCredentials Bearer(const std::string& token_name) {
    CallCredentials credentials;
    credentials.authorization = headers_.emplace_back("Bearer " + minted_->tokens.at(token_name));
    return credentials;
  }

  absl::Time Deadline() { return clock_.Now() + absl::Seconds(5); }

  // One reference to the stored secret.
  secretresolver::v1::ResolveSecretsRequest OneRefRequest() {
    secretresolver::v1::ResolveSecretsRequest request;
    request.set_stack(kStack);
    (*request.mutable_refs())["api-token"] = "secret://workflows/http/auth-token";
    return request;
  }

  secretresolver::v1::ResolveSecretsRequest Request() {
    secretresolver::v1::ResolveSecretsRequest request;
    request.set_stack(kStack);
    (*request.mutable_refs())["api-token"] = "secret://workflows/http/auth-token";
    (*request.mutable_refs())["missing"] = "secret://workflows/none";
    (*request.mutable_refs())["bad"] = "secret://Bad";
    return request;
  }

  static auth::testing::MintedTokens* minted_;
  static std::string* jwks_path_;
  FakeClock clock_;
  FakeSecretStore store_;
  std::unique_ptr<auth::JwksSource> jwks_;
  std::unique_ptr<auth::TokenVerifier> verifier_;
  std::unique_ptr<RedactionTokens> tokens_;
  std::unique_ptr<SecretCache> cache_;
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<ResolveHandler> handler_;
  std::vector<std::string> auth_failures_;
  std::vector<std::string> rate_limited_;
  std::deque<std::string> headers_;
  // What the tests check of each ReferenceOutcome, copied: its views end with the hook call.
  struct Audited {
    std::string stack;
    std::string caller;
    std::string reported_service;
  };
  std::vector<Audited> outcomes_;
  struct Denied {
    std::string reason;
    std::string stack;
    std::string caller;
    absl::StatusCode code;
  };
  std::vector<Denied> denials_;
  struct Hidden {
    std::string correlation_id;
    std::string ref_key;
    absl::Status detail;
  };
  std::vector<Hidden> backend_errors_;
};

auth::testing::MintedTokens* ResolveHandlerTest::minted_ = nullptr;
std::string* ResolveHandlerTest::jwks_path_ = nullptr;

TEST_F(ResolveHandlerTest, ResolvesAndConvertsEveryReference) {
  grpc::ByteBuffer bytes;
  ASSERT_TRUE(handler_->ResolveSecrets(Bearer("good"), Request(), Deadline(), &bytes).ok());
  const auto response = Decode<ResolveSecretsResponse>(bytes);
  ASSERT_EQ(response.results_size(), 3);

  const auto& ok = response.results().at("api-token");
  ASSERT_TRUE(ok.has_secret());
  EXPECT_EQ(ok.secret().value(), kValue);
  EXPECT_EQ(ok.secret().name(), "workflows/http/auth-token");
  EXPECT_EQ(ok.secret().version(), 1);
  EXPECT_EQ(ok.secret().redaction().placeholder(), "***SECRET_REDACTED:api-token***");
  EXPECT_THAT(ok.secret().redaction().fingerprint(), HasSubstr("hmac-sha256:"));
  EXPECT_FALSE(ok.secret().stale());

  const auto& missing = response.results().at("missing");
  ASSERT_TRUE(missing.has_error());
  EXPECT_EQ(missing.error().code(), 5);  // google.rpc.Code NOT_FOUND

  const auto& bad = response.results().at("bad");
  ASSERT_TRUE(bad.has_error());
  EXPECT_EQ(bad.error().code(), 3);  // INVALID_ARGUMENT
  EXPECT_THAT(bad.error().message(), HasSubstr("byte 9"));

  ASSERT_EQ(outcomes_.size(), 3u);
  for (const Audited& outcome : outcomes_) {
    EXPECT_EQ(outcome.stack, kStack);
    EXPECT_EQ(outcome.caller, "grafana-workflows");
  }
}

TEST_F(ResolveHandlerTest, AnswersWithoutBlockingOnlyFromWarmCaches) {
  const secretresolver::v1::ResolveSecretsRequest request = OneRefRequest();

  // Cold: the secret was never fetched. Nothing happens but the token's verification (its key
  // is loaded, so that needs no I/O).
  grpc::ByteBuffer response;
  EXPECT_FALSE(handler_->TryResolveSecretsWithoutBlocking(Bearer("good"), request, Deadline(),
                                                          &response)
                   .has_value());
  EXPECT_FALSE(response.Valid());
  EXPECT_EQ(store_.get_calls(), 0);
  EXPECT_TRUE(outcomes_.empty());

  // Warmed by a call that may block, the same call is answered at once, identically.
  grpc::ByteBuffer slow;
  ASSERT_TRUE(handler_->ResolveSecrets(Bearer("good"), request, Deadline(), &slow).ok());
  std::optional<absl::Status> fast = handler_->TryResolveSecretsWithoutBlocking(
      Bearer("good"), request, Deadline(), &response);
  ASSERT_TRUE(fast.has_value());
  ASSERT_TRUE(fast->ok()) << *fast;
  // Compared without printing: the bytes hold the value.
  EXPECT_TRUE(testing::WireBytes(response) == testing::WireBytes(slow));
  EXPECT_EQ(store_.get_calls(), 1);
  EXPECT_EQ(outcomes_.size(), 2u);  // audited like any call

  // A token it has not seen is verified here, signature and all, when its key is loaded: a new
  // token costs no trip to a worker thread (this caller is not a decrypter of the secret).
  grpc::ByteBuffer fresh_bytes;
  std::optional<absl::Status> fresh = handler_->TryResolveSecretsWithoutBlocking(
      Bearer("intruder"), request, Deadline(), &fresh_bytes);
  ASSERT_TRUE(fresh.has_value());
  ASSERT_TRUE(fresh->ok()) << *fresh;
  EXPECT_EQ(Decode<ResolveSecretsResponse>(fresh_bytes).results().at("api-token").error().message(),
            "not authorized");

  // A JWKS check that is due needs a thread that may block.
  clock_.Advance(absl::Seconds(2));  // past the JWKS file's check interval
  EXPECT_FALSE(handler_->TryResolveSecretsWithoutBlocking(Bearer("good"), request, Deadline(),
                                                          &response)
                   .has_value());

  // Final answers that need no I/O are given at once, warm or not.
  std::optional<absl::Status> unauthenticated = handler_->TryResolveSecretsWithoutBlocking(
      CallCredentials(), request, Deadline(), &response);
  ASSERT_TRUE(unauthenticated.has_value());
  EXPECT_EQ(unauthenticated->code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(ResolveHandlerTest, CallMovedToAWorkerSpendsOneRateToken) {
  RateLimiter limiter(Limits(/*rate=*/0.001, /*burst=*/1));
  MakeHandler(&limiter);
  const secretresolver::v1::ResolveSecretsRequest request = OneRefRequest();
  grpc::ByteBuffer response;
  // Cold, so not answerable here: no token spent...
  EXPECT_FALSE(handler_->TryResolveSecretsWithoutBlocking(Bearer("good"), request, Deadline(),
                                                          &response)
                   .has_value());
  // ...and the worker's call gets the only one.
  EXPECT_TRUE(handler_->ResolveSecrets(Bearer("good"), request, Deadline(), &response).ok());
  std::optional<absl::Status> limited = handler_->TryResolveSecretsWithoutBlocking(
      Bearer("good"), request, Deadline(), &response);
  ASSERT_TRUE(limited.has_value());
  EXPECT_EQ(limited->code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(ResolveHandlerTest, RejectsCredentialsWithReasons) {
  grpc::ByteBuffer response;
  EXPECT_EQ(handler_->ResolveSecrets({}, Request(), Deadline(), &response).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(handler_->ResolveSecrets(Bearer("forged"), Request(), Deadline(), &response).code(),
            absl::StatusCode::kUnauthenticated);
  CallCredentials twice = Bearer("good");
  twice.conflicting = true;
  EXPECT_EQ(handler_->ResolveSecrets(twice, Request(), Deadline(), &response).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(auth_failures_, ::testing::ElementsAre("missing_credential", "bad_signature",
                                                     "conflicting_credentials"));
  EXPECT_FALSE(response.Valid());
  EXPECT_EQ(store_.get_calls(), 0);
}

TEST_F(ResolveHandlerTest, OtherStackIsPermissionDenied) {
  grpc::ByteBuffer response;
  EXPECT_EQ(
      handler_->ResolveSecrets(Bearer("other_stack"), Request(), Deadline(), &response).code(),
      absl::StatusCode::kPermissionDenied);
}

TEST_F(ResolveHandlerTest, PassedDeadlineIsDeadlineExceeded) {
  grpc::ByteBuffer response;
  EXPECT_EQ(handler_->ResolveSecrets(Bearer("good"), Request(), clock_.Now(), &response).code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(ResolveHandlerTest, RateLimitIsResourceExhaustedPerStack) {
  RateLimiter limiter(Limits(/*rate=*/1, /*burst=*/2));
  MakeHandler(&limiter);
  grpc::ByteBuffer response;
  EXPECT_TRUE(handler_->ResolveSecrets(Bearer("good"), Request(), Deadline(), &response).ok());
  EXPECT_TRUE(handler_->ResolveSecrets(Bearer("good"), Request(), Deadline(), &response).ok());
  EXPECT_EQ(handler_->ResolveSecrets(Bearer("good"), Request(), Deadline(), &response).code(),
            absl::StatusCode::kResourceExhausted);
  // The hook names the caller's token namespace; a caller whose token does not cover the stack
  // is refused before any bucket is charged, so naming stacks adds no metric series.
  EXPECT_EQ(
      handler_->ResolveSecrets(Bearer("other_stack"), Request(), Deadline(), &response).code(),
      absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(rate_limited_, ::testing::ElementsAre(kStack));
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(handler_->ResolveSecrets(Bearer("good"), Request(), Deadline(), &response).ok());
  EXPECT_EQ(rate_limited_.size(), 1u);
}

TEST_F(ResolveHandlerTest, GrafanaDecryptUsesGrafanaErrorStrings) {
  SecretWrite write;
  write.stack = kStack;
  write.name = "db-password";
  write.decrypters = {"grafana-workflows"};
  write.actor = "test";
  write.value = SecretBytes("db-secret-value-9");
  ASSERT_TRUE(store_.Put(write).ok());
  write.name = "k6-only";
  write.decrypters = {"k6"};
  ASSERT_TRUE(store_.Put(write).ok());

  decryptv1beta1::SecureValueDecryptRequest request;
  request.set_namespace_(kStack);
  request.add_names("db-password");
  request.add_names("nope");
  request.add_names("k6-only");
  request.add_names("db-password");  // asked twice: answered once, not refused
  grpc::ByteBuffer bytes;
  ASSERT_TRUE(handler_->DecryptSecureValues(Bearer("good"), request, Deadline(), &bytes).ok());
  auto response = Decode<decryptv1beta1::SecureValueDecryptResponseCollection>(bytes);
  EXPECT_EQ(response.decrypted_values().at("db-password").value(), "db-secret-value-9");
  EXPECT_EQ(response.decrypted_values().at("nope").error_message(), "not found");
  EXPECT_EQ(response.decrypted_values().at("k6-only").error_message(), "not authorized");
  EXPECT_EQ(response.decrypted_values_size(), 3);

  store_.set_next_error(absl::DataLossError("ciphertext failed authentication"));
  cache_->InvalidateAll();
  request.clear_names();
  request.add_names("db-password");
  ASSERT_TRUE(handler_->DecryptSecureValues(Bearer("good"), request, Deadline(), &bytes).ok());
  response = Decode<decryptv1beta1::SecureValueDecryptResponseCollection>(bytes);
  EXPECT_EQ(response.decrypted_values().at("db-password").error_message(), "decryption failed");
}

TEST_F(ResolveHandlerTest, DecrypterCheckFailsForAnotherService) {
  grpc::ByteBuffer bytes;
  ASSERT_TRUE(handler_->ResolveSecrets(Bearer("intruder"), Request(), Deadline(), &bytes).ok());
  const auto response = Decode<ResolveSecretsResponse>(bytes);
  const auto& denied = response.results().at("api-token");
  ASSERT_TRUE(denied.has_error());
  EXPECT_EQ(denied.error().code(), 7);  // PERMISSION_DENIED
  EXPECT_EQ(denied.error().message(), "not authorized");
  EXPECT_THAT(response.DebugString(), Not(HasSubstr(kValue)));
}

TEST_F(ResolveHandlerTest, TokenWithoutServiceIdentity) {
  // ResolveSecrets needs the claim: the whole call is UNAUTHENTICATED.
  grpc::ByteBuffer bytes;
  absl::Status status =
      handler_->ResolveSecrets(Bearer("no_identity"), OneRefRequest(), Deadline(), &bytes);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(auth_failures_, ::testing::ElementsAre("missing_claim"));
  // Grafana's API answers "not authorized" per name instead.
  decryptv1beta1::SecureValueDecryptRequest request;
  request.set_namespace_(kStack);
  request.add_names("db-password");
  ASSERT_TRUE(
      handler_->DecryptSecureValues(Bearer("no_identity"), request, Deadline(), &bytes).ok());
  const auto response = Decode<decryptv1beta1::SecureValueDecryptResponseCollection>(bytes);
  EXPECT_EQ(response.decrypted_values().at("db-password").error_message(), "not authorized");
}

TEST_F(ResolveHandlerTest, DecryptNameLimitCountsTheRequestsNames) {
  MakeHandler(nullptr, /*max_decrypt_names=*/2);
  decryptv1beta1::SecureValueDecryptRequest request;
  request.set_namespace_(kStack);
  request.add_names("a");
  request.add_names("a");
  grpc::ByteBuffer bytes;
  EXPECT_TRUE(handler_->DecryptSecureValues(Bearer("good"), request, Deadline(), &bytes).ok());
  request.add_names("b");
  const absl::Status status =
      handler_->DecryptSecureValues(Bearer("good"), request, Deadline(), &bytes);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("3 names, more than the limit of 2"));
  // An unauthenticated caller learns nothing of the limit.
  EXPECT_EQ(handler_->DecryptSecureValues(CallCredentials(), request, Deadline(), &bytes).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(ResolveHandlerTest, ReportedServiceNameReachesTheAuditHookBounded) {
  decryptv1beta1::SecureValueDecryptRequest request;
  request.set_namespace_(kStack);
  request.add_names("db-password");
  CallCredentials credentials = Bearer("good");
  const std::string& reported = headers_.emplace_back(std::string(300, 's'));
  credentials.grafana_service_name = reported;
  grpc::ByteBuffer bytes;
  ASSERT_TRUE(handler_->DecryptSecureValues(credentials, request, Deadline(), &bytes).ok());
  ASSERT_EQ(outcomes_.size(), 1u);
  EXPECT_EQ(outcomes_[0].caller, "grafana-workflows") << "decisions use the token's identity";
  EXPECT_EQ(outcomes_[0].reported_service, std::string(kMaxReportedServiceBytes, 's'));
}

TEST_F(ResolveHandlerTest, CallsForAStackTheTokenDoesNotCoverSpendNoneOfItsRate) {
  RateLimiter limiter(Limits(/*rate=*/0.001, /*burst=*/1));
  MakeHandler(&limiter);
  grpc::ByteBuffer response;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(handler_->ResolveSecrets(Bearer("other_stack"), OneRefRequest(), Deadline(),
                                       &response)
                  .code(),
              absl::StatusCode::kPermissionDenied);
  }
  // The stack's own caller still has its token.
  EXPECT_TRUE(
      handler_->ResolveSecrets(Bearer("good"), OneRefRequest(), Deadline(), &response).ok());
  EXPECT_EQ(handler_->ResolveSecrets(Bearer("good"), OneRefRequest(), Deadline(), &response).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(ResolveHandlerTest, RequestedStackStringsMakeNoBuckets) {
  RateLimiter limiter(Limits(/*rate=*/1, /*burst=*/1));
  MakeHandler(&limiter);
  grpc::ByteBuffer response;
  for (const char* stack : {"stacks-8", "stacks-9", "not a stack!", "stacks-10"}) {
    secretresolver::v1::ResolveSecretsRequest request = OneRefRequest();
    request.set_stack(stack);
    EXPECT_NE(handler_->ResolveSecrets(Bearer("good"), request, Deadline(), &response).code(),
              absl::StatusCode::kOk);
  }
  EXPECT_EQ(limiter.bucket_count(), 0u);
  // `stack-7` is `stacks-7`: one bucket.
  secretresolver::v1::ResolveSecretsRequest request = OneRefRequest();
  request.set_stack("stack-7");
  EXPECT_TRUE(handler_->ResolveSecrets(Bearer("good"), request, Deadline(), &response).ok());
  EXPECT_EQ(handler_->ResolveSecrets(Bearer("good"), OneRefRequest(), Deadline(), &response).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(limiter.bucket_count(), 1u);
}

TEST_F(ResolveHandlerTest, GrafanaCallsForAnotherNamespaceAreChargedToTheTokensOwn) {
  RateLimiter limiter(Limits(/*rate=*/0.001, /*burst=*/1));
  MakeHandler(&limiter);
  decryptv1beta1::SecureValueDecryptRequest request;
  request.set_namespace_(kStack);
  request.add_names("workflows");
  grpc::ByteBuffer response;
  // Per name "not authorized", as Grafana answers; the call costs stacks-8's token...
  ASSERT_TRUE(
      handler_->DecryptSecureValues(Bearer("other_stack"), request, Deadline(), &response).ok());
  const auto refused = Decode<decryptv1beta1::SecureValueDecryptResponseCollection>(response);
  EXPECT_EQ(refused.decrypted_values().at("workflows").error_message(), "not authorized");
  EXPECT_EQ(
      handler_->DecryptSecureValues(Bearer("other_stack"), request, Deadline(), &response).code(),
      absl::StatusCode::kResourceExhausted);
  // ...and none of stacks-7's.
  EXPECT_TRUE(handler_->DecryptSecureValues(Bearer("good"), request, Deadline(), &response).ok());
}

TEST_F(ResolveHandlerTest, BackendErrorsReachTheCallerOnlyAsACorrelationId) {
  store_.set_next_error(absl::UnavailableError(
      "connection to server at \"db.internal\" (10.1.2.3), port 5432 failed: sqlite path "
      "/var/lib/sr/secrets.db, KEK \"kek-2024\""));
  grpc::ByteBuffer bytes;
  ASSERT_TRUE(handler_->ResolveSecrets(Bearer("good"), OneRefRequest(), Deadline(), &bytes).ok());
  const auto response = Decode<ResolveSecretsResponse>(bytes);
  const auto& failed = response.results().at("api-token");
  ASSERT_TRUE(failed.has_error());
  EXPECT_EQ(failed.error().code(), 14);  // UNAVAILABLE, still retryable
  for (const char* detail : {"db.internal", "10.1.2.3", "5432", "/var/lib", "kek-2024"}) {
    EXPECT_THAT(failed.error().message(), Not(HasSubstr(detail)));
  }
  ASSERT_EQ(backend_errors_.size(), 1u);
  const Hidden& hidden = backend_errors_[0];
  EXPECT_EQ(hidden.correlation_id.size(), 16u);
  EXPECT_THAT(failed.error().message(), HasSubstr("correlation id " + hidden.correlation_id));
  EXPECT_EQ(hidden.ref_key, "api-token");
  EXPECT_EQ(hidden.detail.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(hidden.detail.message(), HasSubstr("db.internal"));
}

TEST_F(ResolveHandlerTest, OurOwnPerReferenceMessagesAreKept) {
  grpc::ByteBuffer bytes;
  ASSERT_TRUE(handler_->ResolveSecrets(Bearer("good"), Request(), Deadline(), &bytes).ok());
  const auto response = Decode<ResolveSecretsResponse>(bytes);
  EXPECT_THAT(response.results().at("missing").error().message(), HasSubstr("not found"));
  EXPECT_THAT(response.results().at("bad").error().message(), HasSubstr("byte 9"));
  EXPECT_TRUE(backend_errors_.empty());
}

TEST_F(ResolveHandlerTest, WholeCallDenialsAreReportedWithTheirReason) {
  grpc::ByteBuffer response;
  secretresolver::v1::ResolveSecretsRequest request = OneRefRequest();
  request.set_stack("stacks-9");
  EXPECT_EQ(handler_->ResolveSecrets(Bearer("good"), request, Deadline(), &response).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(
      handler_->ResolveSecrets(Bearer("no_permission"), OneRefRequest(), Deadline(), &response)
          .code(),
      absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(handler_->ResolveSecrets(Bearer("forged"), request, Deadline(), &response).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(handler_->ResolveSecrets({}, request, Deadline(), &response).code(),
            absl::StatusCode::kUnauthenticated);
  ASSERT_EQ(denials_.size(), 4u);
  EXPECT_EQ(denials_[0].reason, "stack_mismatch");
  EXPECT_EQ(denials_[0].stack, "stacks-9");
  EXPECT_EQ(denials_[0].caller, "grafana-workflows");
  EXPECT_EQ(denials_[0].code, absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(denials_[1].reason, "no_decrypt_permission");
  EXPECT_EQ(denials_[1].stack, kStack);
  EXPECT_EQ(denials_[2].reason, "bad_signature");
  EXPECT_EQ(denials_[2].caller, "");
  EXPECT_EQ(denials_[2].code, absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(denials_[3].reason, "missing_credential");
  EXPECT_EQ(denials_[3].stack, "stacks-9");
}

TEST_F(ResolveHandlerTest, ADenialKeepsAtMostABoundedPartOfTheRequestedStack) {
  grpc::ByteBuffer response;
  secretresolver::v1::ResolveSecretsRequest request = OneRefRequest();
  request.set_stack(std::string(100000, 'x'));
  EXPECT_EQ(handler_->ResolveSecrets({}, request, Deadline(), &response).code(),
            absl::StatusCode::kUnauthenticated);
  ASSERT_EQ(denials_.size(), 1u);
  EXPECT_EQ(denials_[0].stack.size(), kMaxAuditedStackBytes);
}

}  // namespace
}  // namespace secret_resolver
