#include "server/resolve_handler.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "resolver/access_policy.h"
#include "resolver/secret_uri.h"
#include "resolver/secret_validation.h"
#include "server/auth/auth_failure.h"
#include "server/auth/claims_validator.h"
#include "server/auth/credentials.h"
#include "server/status_mapping.h"
#include "server/wire_response.h"

namespace secret_resolver {
namespace {

using decryptv1beta1::SecureValueDecryptResponseCollection;
using secretresolver::v1::CheckReferencesRequest;
using secretresolver::v1::CheckReferencesResponse;
using secretresolver::v1::CheckResult;
using secretresolver::v1::ResolveSecretsRequest;

// Grafana's per-name error strings (pkg/registry/apis/secret/contracts/decrypt.go).
constexpr absl::string_view kGrafanaNotFound = "not found";
constexpr absl::string_view kGrafanaNotAuthorized = "not authorized";
constexpr absl::string_view kGrafanaDecryptionFailed = "decryption failed";

// Per-reference codes whose messages are ours and safe for any caller: everything else came
// from the backend.
bool IsBackendError(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:  // the Resolver's own refusal of a non-UTF-8 value
      return false;
    default:
      return true;
  }
}

// 16 hex digits from OpenSSL's generator, to match a caller's error with the log line.
std::string NewCorrelationId() {
  unsigned char bytes[8] = {};
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // Still unique enough to find the line: the time in nanoseconds.
    return absl::StrCat(absl::Hex(absl::ToUnixNanos(absl::Now()), absl::kZeroPad16));
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

// The bucket a call is charged to (see the header): the stack asked for once the caller is known
// to speak for it; otherwise, under Grafana's rules, the token's own namespace; otherwise none,
// and the Resolver refuses the call.
std::optional<std::string> RateLimitBucket(const Caller& caller, const ResolveRequest& request,
                                           const AccessPolicyOptions& access) {
  if (ValidateStack(request.stack).ok() && CheckStack(caller, request.stack, access).ok()) {
    return CanonicalStack(request.stack);
  }
  if (request.rules == RequestRules::kGrafanaDecrypt) {
    return CanonicalStack(caller.token_namespace);
  }
  return std::nullopt;
}

absl::string_view GrafanaError(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:  // a name that cannot be a secret name
      return kGrafanaNotFound;
    case absl::StatusCode::kPermissionDenied:
      return kGrafanaNotAuthorized;
    default:
      return kGrafanaDecryptionFailed;
  }
}

// The token Authenticate verified, for a store that forwards it (ResolveRequest::credential).
absl::string_view VerifiedCredential(const CallCredentials& credentials) {
  absl::StatusOr<absl::string_view> token =
      auth::CredentialFromMetadata(credentials.x_access_token, credentials.authorization);
  return token.ok() ? *token : absl::string_view();
}

}  // namespace

ResolveHandler::ResolveHandler(auth::TokenVerifier* verifier, const Resolver* resolver,
                               ResolveHandlerOptions options)
    : verifier_(verifier), resolver_(resolver), options_(std::move(options)) {}

void ResolveHandler::ReportAuthFailure(absl::string_view reason, const absl::Status& status,
                                       const CallCredentials& credentials,
                                       absl::string_view stack) {
  if (options_.hooks.on_auth_failure) options_.hooks.on_auth_failure(reason);
  CallDenial denial;
  denial.reason = reason;
  denial.code = status.code();
  denial.stack = stack;
  denial.reported_service =
      credentials.grafana_service_name.value_or("").substr(0, kMaxReportedServiceBytes);
  denial.run = RunContextOf(credentials.run);
  ReportDenial(denial);
}

void ResolveHandler::ReportDenial(const CallDenial& denial) {
  if (!options_.hooks.on_call_denied) return;
  CallDenial bounded = denial;
  bounded.stack = denial.stack.substr(0, kMaxAuditedStackBytes);
  options_.hooks.on_call_denied(bounded);
}

void ResolveHandler::HideBackendErrors(absl::string_view stack, ResolveResults& results) {
  for (RefResult& result : results) {
    if (!IsBackendError(result.status.code())) continue;
    BackendError error;
    error.correlation_id = NewCorrelationId();
    error.stack = stack;
    error.ref_key = result.key;
    error.name = result.name;
    error.detail = std::move(result.status);
    result.status = absl::Status(
        error.detail.code(),
        absl::StrCat("the secrets backend failed; the sidecar's log has the detail under "
                     "correlation id ",
                     error.correlation_id));
    if (options_.hooks.on_backend_error) options_.hooks.on_backend_error(error);
  }
}

std::optional<absl::StatusOr<std::shared_ptr<const Caller>>> ResolveHandler::Authenticate(
    const CallCredentials& credentials, absl::string_view stack, absl::Time start,
    absl::Time deadline, bool may_block) {
  if (start >= deadline) {
    return absl::DeadlineExceededError("the call's deadline passed before it was served");
  }
  if (credentials.conflicting) {
    absl::Status refused =
        absl::UnauthenticatedError("conflicting credentials: a header was sent twice");
    ReportAuthFailure(auth::AuthFailureReason(auth::AuthFailure::kConflictingCredentials),
                      refused, credentials, stack);
    return refused;
  }
  absl::StatusOr<absl::string_view> token =
      auth::CredentialFromMetadata(credentials.x_access_token, credentials.authorization);
  if (!token.ok()) {
    ReportAuthFailure(auth::AuthFailureReason(auth::AuthFailureOf(token.status())),
                      token.status(), credentials, stack);
    return token.status();
  }
  std::optional<auth::TokenVerification> checked =
      may_block ? verifier_->Verify(*token) : verifier_->VerifyWithoutBlocking(*token);
  if (!checked.has_value()) return std::nullopt;
  if (!checked->caller.ok()) {
    ReportAuthFailure(auth::AuthFailureReason(checked->failure), checked->caller.status(),
                      credentials, stack);
    return checked->caller.status();
  }
  return *std::move(checked->caller);
}

std::optional<absl::StatusOr<ResolveResults>> ResolveHandler::Resolve(
    const Caller& caller, const CallCredentials& credentials, const ResolveRequest& request,
    absl::Time start, absl::Time deadline, bool may_block, Work work) {
  const std::optional<std::string> bucket =
      options_.rate_limiter == nullptr ? std::nullopt
                                       : RateLimitBucket(caller, request, options_.access);
  auto rate_limited = [&]() -> bool {
    return bucket.has_value() && !options_.rate_limiter->Allow(*bucket);
  };
  auto over_rate = [&] {
    if (options_.hooks.on_rate_limited) {
      options_.hooks.on_rate_limited(CanonicalStack(caller.token_namespace));
    }
    return absl::ResourceExhaustedError(
        absl::StrCat("rate limit exceeded for stack \"", *bucket, "\""));
  };
  absl::StatusOr<ResolveResults> results;
  if (may_block) {
    if (rate_limited()) return over_rate();
    results = work != Work::kResolve ? resolver_->Check(caller, request, deadline)
                                     : resolver_->Resolve(caller, request, deadline);
  } else {
    // The limit is applied only once the call is known to be answerable here, so a call that
    // moves to a worker does not spend a rate token twice.
    std::optional<absl::StatusOr<ResolveResults>> cached =
        resolver_->ResolveWithoutBlocking(caller, request);
    if (!cached.has_value()) return std::nullopt;
    if (rate_limited()) return over_rate();
    results = *std::move(cached);
  }
  const std::string stack = CanonicalStack(request.stack);
  if (!results.ok()) {
    if (results.status().code() == absl::StatusCode::kPermissionDenied) {
      CallDenial denial;
      denial.reason = CheckStack(caller, request.stack, options_.access).ok()
                          ? "no_decrypt_permission"
                          : "stack_mismatch";
      denial.code = results.status().code();
      denial.stack = request.stack;
      denial.caller = caller.service_identity;
      denial.token_namespace = caller.token_namespace;
      denial.reported_service =
          credentials.grafana_service_name.value_or("").substr(0, kMaxReportedServiceBytes);
      denial.run = RunContextOf(credentials.run);
      ReportDenial(denial);
    }
    return results;
  }
  HideBackendErrors(stack, *results);
  if (!options_.hooks.on_references) return results;
  const absl::Duration latency = options_.clock->Now() - start;
  const absl::string_view reported_service =
      credentials.grafana_service_name.value_or("").substr(0, kMaxReportedServiceBytes);
  const RunContext run = RunContextOf(credentials.run);
  absl::InlinedVector<ReferenceOutcome, 8> outcomes;
  outcomes.reserve(results->size());
  for (const RefResult& result : *results) {
    ReferenceOutcome& outcome = outcomes.emplace_back();
    outcome.stack = stack;
    outcome.caller = caller.service_identity;
    outcome.reported_service = reported_service;
    outcome.run = run;
    outcome.ref_key = result.key;
    outcome.name = result.name;
    outcome.code = result.status.code();
    outcome.cache_outcome = result.cache_outcome;
    if (work != Work::kResolve) {
      outcome.method = work == Work::kCheck ? "CheckReferences" : "WatchSecrets";
      outcome.version = result.checked_version;
    } else if (result.status.ok()) {
      outcome.version = result.value->version;
      outcome.stale = result.stale;
    }
  }
  options_.hooks.on_references(outcomes, latency);
  return results;
}

absl::Status ResolveHandler::ResolveSecrets(const CallCredentials& credentials,
                                            const ResolveSecretsRequest& request,
                                            absl::Time deadline, grpc::ByteBuffer* response) {
  return *ResolveSecrets(credentials, request, deadline, response, /*may_block=*/true);
}

std::optional<absl::Status> ResolveHandler::TryResolveSecretsWithoutBlocking(
    const CallCredentials& credentials, const ResolveSecretsRequest& request,
    absl::Time deadline, grpc::ByteBuffer* response) {
  return ResolveSecrets(credentials, request, deadline, response, /*may_block=*/false);
}

absl::Status ResolveHandler::DecryptSecureValues(
    const CallCredentials& credentials, const decryptv1beta1::SecureValueDecryptRequest& request,
    absl::Time deadline, grpc::ByteBuffer* response) {
  return *DecryptSecureValues(credentials, request, deadline, response, /*may_block=*/true);
}

std::optional<absl::Status> ResolveHandler::TryDecryptSecureValuesWithoutBlocking(
    const CallCredentials& credentials, const decryptv1beta1::SecureValueDecryptRequest& request,
    absl::Time deadline, grpc::ByteBuffer* response) {
  return DecryptSecureValues(credentials, request, deadline, response, /*may_block=*/false);
}

std::optional<absl::StatusOr<std::shared_ptr<const Caller>>>
ResolveHandler::AuthenticateResolver(const CallCredentials& credentials, absl::string_view stack,
                                     absl::Time start, absl::Time deadline, bool may_block) {
  std::optional<absl::StatusOr<std::shared_ptr<const Caller>>> caller =
      Authenticate(credentials, stack, start, deadline, may_block);
  if (!caller.has_value() || !caller->ok()) return caller;
  if (absl::Status claims = auth::ClaimsForResolving(***caller); !claims.ok()) {
    ReportAuthFailure(auth::AuthFailureReason(auth::AuthFailureOf(claims)), claims, credentials,
                      stack);
    return claims;
  }
  return caller;
}

absl::Status ResolveHandler::CheckReferences(const CallCredentials& credentials,
                                             const CheckReferencesRequest& request,
                                             absl::Time deadline, grpc::ByteBuffer* response) {
  const absl::Time start = options_.clock->Now();
  absl::StatusOr<std::shared_ptr<const Caller>> caller =
      *AuthenticateResolver(credentials, request.stack(), start, deadline, /*may_block=*/true);
  if (!caller.ok()) return caller.status();
  ResolveRequest domain;
  domain.stack = request.stack();
  for (const auto& [key, uri] : request.refs()) domain.refs.emplace_back(key, uri);
  absl::StatusOr<ResolveResults> results = *Resolve(**caller, credentials, domain, start,
                                                    deadline, /*may_block=*/true, Work::kCheck);
  if (!results.ok()) return results.status();
  CheckReferencesResponse out;
  for (const RefResult& result : *results) {
    CheckResult& entry = (*out.mutable_results())[std::string(result.key)];
    if (result.status.ok()) {
      entry.mutable_secret()->set_name(std::string(result.name));
      entry.mutable_secret()->set_version(result.checked_version);
    } else {
      entry.mutable_error()->set_code(RpcCodeNumber(result.status.code()));
      entry.mutable_error()->set_message(std::string(result.status.message()));
    }
  }
  *response = SerializeToWipedBuffer(out);
  return absl::OkStatus();
}

absl::StatusOr<WatchSession> ResolveHandler::StartWatch(
    const CallCredentials& credentials, const secretresolver::v1::WatchSecretsRequest& request,
    absl::Time deadline) {
  const absl::Time start = options_.clock->Now();
  absl::StatusOr<std::shared_ptr<const Caller>> caller =
      *AuthenticateResolver(credentials, request.stack(), start, deadline, /*may_block=*/true);
  if (!caller.ok()) return caller.status();
  ResolveRequest domain;
  domain.stack = request.stack();
  for (const auto& [key, uri] : request.refs()) domain.refs.emplace_back(key, uri);
  absl::StatusOr<ResolveResults> results = *Resolve(**caller, credentials, domain, start,
                                                    deadline, /*may_block=*/true, Work::kWatch);
  if (!results.ok()) return results.status();
  WatchSession session;
  session.caller = (*caller)->service_identity;
  session.expires = (*caller)->expires;
  session.stack = request.stack();
  for (const RefResult& result : *results) {
    if (!result.status.ok()) {
      return absl::Status(result.status.code(), absl::StrCat("refs[\"", result.key, "\"]: ",
                                                             result.status.message()));
    }
    session.refs.push_back(
        {std::string(result.key), std::string(result.name), result.checked_version});
  }
  return session;
}

std::optional<absl::StatusOr<ResolveResults>> ResolveHandler::ResolveReferences(
    const CallCredentials& credentials, const std::string& stack,
    const google::protobuf::Map<std::string, std::string>& refs,
    const google::protobuf::Map<std::string, int64_t>* versions, absl::Time deadline,
    bool may_block) {
  const absl::Time start = options_.clock->Now();
  std::optional<absl::StatusOr<std::shared_ptr<const Caller>>> caller =
      AuthenticateResolver(credentials, stack, start, deadline, may_block);
  if (!caller.has_value()) return std::nullopt;
  if (!caller->ok()) return caller->status();
  ResolveRequest domain;
  domain.stack = stack;
  domain.credential = VerifiedCredential(credentials);
  for (const auto& [key, uri] : refs) domain.refs.emplace_back(key, uri);
  if (versions != nullptr) {
    for (const auto& [key, version] : *versions) domain.versions.emplace_back(key, version);
  }
  return Resolve(***caller, credentials, domain, start, deadline, may_block);
}

std::optional<absl::Status> ResolveHandler::ResolveSecrets(const CallCredentials& credentials,
                                                           const ResolveSecretsRequest& request,
                                                           absl::Time deadline,
                                                           grpc::ByteBuffer* response,
                                                           bool may_block) {
  std::optional<absl::StatusOr<ResolveResults>> results =
      ResolveReferences(credentials, request.stack(), request.refs(), &request.versions(),
                        deadline, may_block);
  if (!results.has_value()) return std::nullopt;
  if (!results->ok()) return results->status();
  *response = EncodeResolveSecretsResponse(**results);
  return absl::OkStatus();
}

absl::StatusOr<RedactionSession> ResolveHandler::StartRedaction(
    const CallCredentials& credentials, const secretresolver::v1::RedactLogsStart& start,
    absl::Time deadline) {
  return *StartRedaction(credentials, start, deadline, /*may_block=*/true);
}

std::optional<absl::StatusOr<RedactionSession>> ResolveHandler::TryStartRedactionWithoutBlocking(
    const CallCredentials& credentials, const secretresolver::v1::RedactLogsStart& start,
    absl::Time deadline) {
  return StartRedaction(credentials, start, deadline, /*may_block=*/false);
}

std::optional<absl::StatusOr<RedactionSession>> ResolveHandler::StartRedaction(
    const CallCredentials& credentials, const secretresolver::v1::RedactLogsStart& start,
    absl::Time deadline, bool may_block) {
  std::optional<absl::StatusOr<ResolveResults>> results =
      ResolveReferences(credentials, start.stack(), start.refs(), /*versions=*/nullptr,
                        deadline, may_block);
  if (!results.has_value()) return std::nullopt;
  if (!results->ok()) return results->status();
  // The Resolver answers in key order, so the reference reported is the same on every call.
  for (const RefResult& result : **results) {
    if (!result.status.ok()) {
      return absl::Status(result.status.code(), absl::StrCat("refs[\"", result.key, "\"]: ",
                                                             result.status.message()));
    }
  }
  std::vector<client::RedactionSecret> secrets;
  RedactionSession session;
  secrets.reserve((*results)->size());
  session.placeholders.reserve((*results)->size());
  for (const RefResult& result : **results) {
    std::string placeholder = result.placeholder();
    session.placeholders.emplace_back(std::string(result.key), placeholder);
    secrets.push_back({result.value->value.Clone(), std::move(placeholder)});
  }
  session.redactor = client::Redactor::Create(std::move(secrets));
  return session;
}

std::optional<absl::Status> ResolveHandler::DecryptSecureValues(
    const CallCredentials& credentials, const decryptv1beta1::SecureValueDecryptRequest& request,
    absl::Time deadline, grpc::ByteBuffer* response, bool may_block) {
  const absl::Time start = options_.clock->Now();
  std::optional<absl::StatusOr<std::shared_ptr<const Caller>>> caller =
      Authenticate(credentials, request.namespace_(), start, deadline, may_block);
  if (!caller.has_value()) return std::nullopt;
  if (!caller->ok()) return caller->status();
  const Caller& verified = ***caller;
  if (static_cast<size_t>(request.names_size()) > options_.max_decrypt_names) {
    return absl::InvalidArgumentError(absl::StrCat("names: ", request.names_size(),
                                                   " names, more than the limit of ",
                                                   options_.max_decrypt_names));
  }
  // Each name is judged alone, as its own ref key; a name asked for twice is answered once.
  std::vector<absl::string_view> names(request.names().begin(), request.names().end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<std::string> uris;
  uris.reserve(names.size());  // no reallocation: the refs view these strings
  ResolveRequest domain;
  domain.stack = request.namespace_();
  domain.rules = RequestRules::kGrafanaDecrypt;
  domain.credential = VerifiedCredential(credentials);
  for (absl::string_view name : names) {
    domain.refs.emplace_back(name, uris.emplace_back(absl::StrCat(kSecretScheme, name)));
  }
  std::optional<absl::StatusOr<ResolveResults>> results =
      Resolve(verified, credentials, domain, start, deadline, may_block);
  if (!results.has_value()) return std::nullopt;
  if (!results->ok()) return results->status();
  SecureValueDecryptResponseCollection collection;
  for (const RefResult& result : **results) {
    decryptv1beta1::Result& out =
        (*collection.mutable_decrypted_values())[std::string(result.key)];
    if (result.status.ok()) {
      // Straight into the message: set_value() would pass the value through a temporary string
      // that is freed without being wiped.
      const absl::string_view value = result.value->value.reveal();
      out.mutable_value()->assign(value.data(), value.size());
    } else {
      out.set_error_message(std::string(GrafanaError(result.status.code())));
    }
  }
  *response = SerializeToWipedBuffer(collection);
  for (auto& [name, out] : *collection.mutable_decrypted_values()) {
    if (out.has_value()) OPENSSL_cleanse(out.mutable_value()->data(), out.value().size());
  }
  return absl::OkStatus();
}

}  // namespace secret_resolver
