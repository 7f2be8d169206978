#include "client/secret_resolver_client.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iterator>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "secretresolver/v1/resolver.grpc.pb.h"

namespace secret_resolver {
namespace client {
namespace {

using ::secretresolver::v1::CheckReferencesRequest;
using ::secretresolver::v1::CheckReferencesResponse;
using ::secretresolver::v1::ResolveSecretsRequest;
using ::secretresolver::v1::ResolveSecretsResponse;
using ::secretresolver::v1::SecretResult;

void Wipe(std::string* bytes) {
  if (!bytes->empty()) OPENSSL_cleanse(bytes->data(), bytes->size());
}

// Wipes every value in `response`; it runs on every exit path of a call.
class ResponseWiper {
 public:
  explicit ResponseWiper(ResolveSecretsResponse* response) : response_(response) {}
  ~ResponseWiper() {
    for (auto& [key, result] : *response_->mutable_results()) {
      if (result.has_secret()) Wipe(result.mutable_secret()->mutable_value());
    }
  }

 private:
  ResolveSecretsResponse* const response_;
};

// gRPC and absl share code numbers and names.
absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

// A per-reference code from the wire; anything outside google.rpc.Code's error range (or OK,
// which an error must not carry) is UNKNOWN.
absl::StatusCode PerReferenceCode(int32_t code) {
  if (code <= 0 || code > static_cast<int32_t>(absl::StatusCode::kUnauthenticated)) {
    return absl::StatusCode::kUnknown;
  }
  return static_cast<absl::StatusCode>(code);
}

std::string RefPrefix(absl::string_view key) { return absl::StrCat("ref \"", key, "\": "); }

absl::StatusOr<ResolvedSecret> ConvertResult(absl::string_view key, SecretResult* result) {
  switch (result->result_case()) {
    case SecretResult::kSecret: {
      auto* secret = result->mutable_secret();
      ResolvedSecret resolved;
      resolved.value = SecretBytes(secret->value());
      Wipe(secret->mutable_value());
      resolved.name = secret->name();
      resolved.version = secret->version();
      resolved.placeholder = secret->redaction().placeholder();
      resolved.fingerprint = secret->redaction().fingerprint();
      resolved.stale = secret->stale();
      resolved.superseded = secret->superseded();
      return resolved;
    }
    case SecretResult::kError:
      return absl::Status(PerReferenceCode(result->error().code()),
                          absl::StrCat(RefPrefix(key), result->error().message()));
    default:
      return absl::InternalError(
          absl::StrCat(RefPrefix(key), "the sidecar returned a result with neither a secret "
                                       "nor an error"));
  }
}

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": cannot read ", path));
  }
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::FailedPreconditionError(absl::StrCat(what, ": cannot read ", path));
  return contents;
}

absl::Status CheckOptions(const ClientOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("target: must not be empty");
  if (!options.token_provider) {
    return absl::InvalidArgumentError("token_provider: must be set");
  }
  if (options.deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("deadline: must be positive");
  }
  const RetryPolicy& retry = options.retry;
  if (retry.max_attempts < 1) {
    return absl::InvalidArgumentError("retry.max_attempts: must be at least 1");
  }
  if (retry.initial_backoff < absl::ZeroDuration() || retry.max_backoff < retry.initial_backoff) {
    return absl::InvalidArgumentError(
        "retry: need 0 <= initial_backoff <= max_backoff");
  }
  if (!(retry.multiplier >= 1.0)) {
    return absl::InvalidArgumentError("retry.multiplier: must be at least 1");
  }
  if (options.tls.has_value()) {
    const TlsOptions& tls = *options.tls;
    if (tls.root_ca_file.empty()) {
      return absl::InvalidArgumentError("tls.root_ca_file: must be set for TLS");
    }
    if (tls.cert_chain_file.empty() != tls.private_key_file.empty()) {
      return absl::InvalidArgumentError(
          "tls: cert_chain_file and private_key_file go together (mTLS needs both)");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(
    const std::optional<TlsOptions>& tls, grpc::ChannelArguments* args) {
  if (!tls.has_value()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  absl::StatusOr<std::string> roots = ReadFile(tls->root_ca_file, "tls.root_ca_file");
  if (!roots.ok()) return roots.status();
  ssl.pem_root_certs = *std::move(roots);
  if (!tls->cert_chain_file.empty()) {
    absl::StatusOr<std::string> chain = ReadFile(tls->cert_chain_file, "tls.cert_chain_file");
    if (!chain.ok()) return chain.status();
    absl::StatusOr<std::string> key = ReadFile(tls->private_key_file, "tls.private_key_file");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(chain);
    ssl.pem_private_key = *std::move(key);
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::SslCredentials(ssl);
  // gRPC keeps its own copy of the key; ours is wiped.
  Wipe(&ssl.pem_private_key);
  if (!tls->server_name_override.empty()) {
    args->SetSslTargetNameOverride(tls->server_name_override);
  }
  return credentials;
}

}  // namespace

class SecretResolverClient::Stub {
 public:
  explicit Stub(const std::shared_ptr<grpc::Channel>& channel)
      : stub_(secretresolver::v1::SecretResolver::NewStub(channel)) {}
  secretresolver::v1::SecretResolver::Stub& get() { return *stub_; }

 private:
  std::unique_ptr<secretresolver::v1::SecretResolver::Stub> stub_;
};

absl::StatusOr<std::unique_ptr<SecretResolverClient>> SecretResolverClient::Create(
    ClientOptions options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  grpc::ChannelArguments args;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      Credentials(options.tls, &args);
  if (!credentials.ok()) return credentials.status();
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.target, *credentials, args);
  if (channel == nullptr) {
    return absl::InvalidArgumentError("target: gRPC cannot create a channel for it");
  }
  if (options.clock == nullptr) options.clock = Clock::Real();
  if (!options.sleep) options.sleep = [](absl::Duration d) { absl::SleepFor(d); };
  return std::unique_ptr<SecretResolverClient>(
      new SecretResolverClient(std::move(options), std::move(channel)));
}

SecretResolverClient::SecretResolverClient(ClientOptions options,
                                           std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(std::make_unique<Stub>(channel_)) {}

SecretResolverClient::~SecretResolverClient() = default;

absl::Duration SecretResolverClient::Backoff(int retry) {
  const RetryPolicy& policy = options_.retry;
  // initial * multiplier^(retry-1), computed in doubles so a large `retry` saturates at the cap
  // instead of overflowing.
  const double ceiling_seconds =
      std::min(absl::ToDoubleSeconds(policy.max_backoff),
               absl::ToDoubleSeconds(policy.initial_backoff) *
                   std::pow(policy.multiplier, static_cast<double>(retry - 1)));
  double fraction = 0;
  if (options_.uniform_random) {
    fraction = options_.uniform_random();
  } else {
    std::lock_guard<std::mutex> lock(random_mu_);
    fraction = absl::Uniform(random_, 0.0, 1.0);
  }
  fraction = std::clamp(fraction, 0.0, 1.0);
  return absl::Seconds(ceiling_seconds * fraction);
}

absl::StatusOr<std::unique_ptr<RemoteRedaction>> SecretResolverClient::RedactLogs(
    absl::string_view stack, const std::map<std::string, std::string>& refs, ChunkSink sink) {
  absl::StatusOr<std::string> token = options_.token_provider();
  if (!token.ok()) return token.status();
  if (token->empty()) {
    return absl::UnauthenticatedError("the token provider returned an empty token");
  }
  std::vector<std::pair<std::string, std::string>> metadata;
  if (options_.token_header == TokenHeader::kXAccessToken) {
    metadata.emplace_back("x-access-token", *token);
  } else {
    metadata.emplace_back("authorization", absl::StrCat("Bearer ", *token));
  }
  Wipe(&*token);
  absl::StatusOr<std::unique_ptr<RemoteRedaction>> stream =
      RemoteRedaction::Start(channel_, metadata, stack, refs, std::move(sink));
  Wipe(&metadata[0].second);
  return stream;
}

std::unique_ptr<SecretWatch> SecretResolverClient::WatchSecrets(
    absl::string_view stack, const std::map<std::string, std::string>& refs,
    WatchCallback on_event, WatchEndCallback on_end) {
  SecretWatch::Hooks hooks;
  hooks.metadata =
      [this]() -> absl::StatusOr<std::vector<std::pair<std::string, std::string>>> {
    absl::StatusOr<std::string> token = options_.token_provider();
    if (!token.ok()) return token.status();
    if (token->empty()) {
      return absl::UnauthenticatedError("the token provider returned an empty token");
    }
    std::vector<std::pair<std::string, std::string>> metadata;
    if (options_.token_header == TokenHeader::kXAccessToken) {
      metadata.emplace_back("x-access-token", *token);
    } else {
      metadata.emplace_back("authorization", absl::StrCat("Bearer ", *token));
    }
    Wipe(&*token);
    return metadata;
  };
  hooks.backoff = [this](int retry) { return Backoff(retry); };
  return std::make_unique<SecretWatch>(channel_, std::move(hooks), std::string(stack), refs,
                                       std::move(on_event), std::move(on_end));
}

absl::StatusOr<ResolvedSecrets> SecretResolverClient::ResolveSecrets(
    absl::string_view stack, const std::map<std::string, std::string>& refs) {
  return ResolveSecrets(stack, refs, ResolveOptions());
}

absl::StatusOr<ResolvedSecrets> SecretResolverClient::ResolveSecrets(
    absl::string_view stack, const std::map<std::string, std::string>& refs,
    absl::Duration budget) {
  ResolveOptions options;
  options.deadline = budget;
  return ResolveSecrets(stack, refs, options);
}

absl::StatusOr<ResolvedSecrets> SecretResolverClient::ResolveSecrets(
    absl::string_view stack, const std::map<std::string, std::string>& refs,
    const ResolveOptions& options) {
  ResolveSecretsRequest request;
  request.set_stack(std::string(stack));
  request.mutable_refs()->insert(refs.begin(), refs.end());
  request.mutable_versions()->insert(options.versions.begin(), options.versions.end());
  ResolveSecretsResponse response;
  const ResponseWiper wiper(&response);
  const absl::Status status = CallWithRetries(
      options.deadline.value_or(options_.deadline), options.run,
      [&](grpc::ClientContext* context) {
        return stub_->get().ResolveSecrets(context, request, &response);
      });
  if (!status.ok()) return status;
  ResolvedSecrets results;
  auto& wire = *response.mutable_results();
  for (const auto& [key, uri] : refs) {
    auto it = wire.find(key);
    if (it == wire.end()) {
      results.emplace(key, absl::InternalError(
                               absl::StrCat(RefPrefix(key), "the sidecar returned no result for it")));
      continue;
    }
    results.emplace(key, ConvertResult(key, &it->second));
  }
  return results;
}

absl::StatusOr<CheckedReferences> SecretResolverClient::CheckReferences(
    absl::string_view stack, const std::map<std::string, std::string>& refs,
    const ResolveOptions& options) {
  CheckReferencesRequest request;
  request.set_stack(std::string(stack));
  request.mutable_refs()->insert(refs.begin(), refs.end());
  CheckReferencesResponse response;
  const absl::Status status = CallWithRetries(
      options.deadline.value_or(options_.deadline), options.run,
      [&](grpc::ClientContext* context) {
        return stub_->get().CheckReferences(context, request, &response);
      });
  if (!status.ok()) return status;
  CheckedReferences results;
  for (const auto& [key, uri] : refs) {
    auto it = response.results().find(key);
    if (it == response.results().end()) {
      results.emplace(key, absl::InternalError(
                               absl::StrCat(RefPrefix(key), "the sidecar returned no result for it")));
    } else if (it->second.has_secret()) {
      results.emplace(key, CheckedReference{it->second.secret().name(),
                                            it->second.secret().version()});
    } else {
      results.emplace(key, absl::Status(PerReferenceCode(it->second.error().code()),
                                        absl::StrCat(RefPrefix(key), it->second.error().message())));
    }
  }
  return results;
}

absl::Status SecretResolverClient::CallWithRetries(
    absl::Duration budget, const RunIds& run,
    const std::function<grpc::Status(grpc::ClientContext*)>& attempt_call) {
  if (budget <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("deadline: must be positive");
  }
  Clock* const clock = options_.clock;
  const absl::Time deadline = clock->Now() + budget;
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<std::string> token = options_.token_provider();
    if (!token.ok()) return token.status();
    if (token->empty()) {
      return absl::UnauthenticatedError("the token provider returned an empty token");
    }
    const absl::Duration remaining = deadline - clock->Now();
    if (remaining <= absl::ZeroDuration()) {
      Wipe(&*token);
      return absl::DeadlineExceededError(
          absl::StrCat("the deadline passed before attempt ", attempt));
    }

    grpc::ClientContext context;
    // The budget is kept on options_.clock; gRPC measures the rest on the system clock.
    context.set_deadline(std::chrono::system_clock::now() +
                         absl::ToChronoNanoseconds(remaining));
    if (options_.token_header == TokenHeader::kXAccessToken) {
      context.AddMetadata("x-access-token", *token);
    } else {
      context.AddMetadata("authorization", absl::StrCat("Bearer ", *token));
    }
    Wipe(&*token);
    if (!run.run_id.empty()) context.AddMetadata("x-workflow-run-id", run.run_id);
    if (!run.step_id.empty()) context.AddMetadata("x-workflow-step-id", run.step_id);
    if (!run.traceparent.empty()) context.AddMetadata("traceparent", run.traceparent);

    const absl::Status status = FromGrpc(attempt_call(&context));
    if (!absl::IsUnavailable(status)) return status;
    if (attempt >= options_.retry.max_attempts) {
      return absl::UnavailableError(
          absl::StrCat(status.message(), " (gave up after ", attempt,
                       attempt == 1 ? " attempt)" : " attempts)"));
    }
    const absl::Duration wait = Backoff(attempt);
    if (clock->Now() + wait >= deadline) {
      return absl::UnavailableError(absl::StrCat(status.message(), " (gave up after ", attempt,
                                                 attempt == 1 ? " attempt" : " attempts",
                                                 ": the next retry would pass the deadline)"));
    }
    options_.sleep(wait);
  }
}

}  // namespace client
}  // namespace secret_resolver
