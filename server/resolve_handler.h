// ResolveHandler: the body of the gRPC methods, with no gRPC server types in it, so that it is
// testable directly. It authenticates the caller, applies the per-stack rate limit, runs the
// Resolver and converts between the protos and the domain types.
//
// The rate limit is charged only once the caller's token is verified and covers the stack asked
// for, to the bucket of that stack: no caller can spend another stack's tokens, and no request
// string makes a bucket of its own. Under Grafana's API, where another namespace is a per-name
// refusal rather than a whole-call error, a call for a namespace the token does not cover is
// charged to the token's own namespace.
//
// A reference's error that comes from the backend (anything but NOT_FOUND, PERMISSION_DENIED and
// a malformed reference) reaches the caller with its code and a generic message that carries a
// correlation id; the store's own message, which may name database hosts, file paths or key ids,
// goes only to the hooks (the log line) with the same id. Responses come out as the wire
// bytes gRPC sends, in buffers that are wiped when gRPC releases them (server/wire_response.h):
//   - secretresolver.v1.SecretResolver/ResolveSecrets (contract.md section 2), and its dry run
//     CheckReferences (the same checks on the store's metadata, no value read; always blocks);
//   - SecureValueDecrypter/DecryptSecureValues, Grafana's API, served under both of Grafana's
//     packages (decryptv1beta1 and decryptv1, whose messages are the same on the wire), with
//     Grafana's semantics: only a missing or invalid token (UNAUTHENTICATED), more names than
//     max_decrypt_names (INVALID_ARGUMENT), the rate limit and a passed deadline fail the call;
//     everything else is per name, in Grafana's strings "not found", "not authorized" and
//     "decryption failed" (RequestRules::kGrafanaDecrypt);
//   - the first message of secretresolver.v1.SecretResolver/RedactLogs (StartRedaction): checked
//     and resolved exactly as a ResolveSecrets call, except that any reference's error fails the
//     whole call; the values go into a Redactor that stays in the sidecar;
//   - the request of secretresolver.v1.SecretResolver/WatchSecrets (StartWatch): CheckReferences'
//     checks, except that any reference's error fails the whole call; the current versions and
//     the token's `exp` go to the stream (server/watch_call.h).
// Whole-call failures come back as absl::Status, mapped one-to-one to gRPC by the services.
//
// Every outcome is reported through Hooks (metrics, audit log), with the call's run context
// (server/run_context.h: run and step ids, trace context; checked, and never part of a
// decision). Hooks never receive a value or a token.
//
// Thread safety: the methods may be called concurrently. ResolveSecrets and DecryptSecureValues
// block (signature checks, store I/O on cache misses): call them from the worker pool, never
// from a gRPC thread; the Try...WithoutBlocking variants never block.
#ifndef SECRET_RESOLVER_SERVER_RESOLVE_HANDLER_H_
#define SECRET_RESOLVER_SERVER_RESOLVE_HANDLER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/redactor/redactor.h"
#include "decrypt/v1beta1/decrypt.pb.h"
#include "resolver/access_policy.h"
#include "resolver/clock.h"
#include "resolver/resolver.h"
#include "secretresolver/v1/resolver.pb.h"
#include "server/auth/token_verifier.h"
#include "server/rate_limiter.h"
#include "server/run_context.h"

namespace secret_resolver {

// The credential metadata of a call: views of the gRPC context's metadata, valid while the
// call is.
struct CallCredentials {
  std::optional<absl::string_view> x_access_token;
  std::optional<absl::string_view> authorization;
  // One of the headers came more than once with different values: refused like two different
  // tokens (UNAUTHENTICATED, conflicting_credentials).
  bool conflicting = false;
  // `x-grafana-service-identity-name`: the service Grafana's decrypt client says it decrypts
  // for. Unverified: it goes into the audit line, never into a decision.
  std::optional<absl::string_view> grafana_service_name;
  // `x-workflow-run-id`, `x-workflow-step-id`, `traceparent`: for the audit line only.
  RunMetadata run;
};

// One reference's outcome, for the audit log and per-reference metrics. No value, no token.
// The views are valid during the hook call only.
struct ReferenceOutcome {
  absl::string_view stack;
  absl::string_view caller;  // the token's serviceIdentity
  // CallCredentials::grafana_service_name, at most kMaxReportedServiceBytes of it; empty when
  // not sent.
  absl::string_view reported_service;
  // The call's checked run context (views valid during the hook call).
  RunContext run;
  // "CheckReferences" for a dry run's outcome; empty for a resolution.
  absl::string_view method;
  absl::string_view ref_key;
  absl::string_view name;  // empty when the URI did not parse
  int64_t version = 0;  // 0 unless resolved (or, for a check, OK)
  absl::StatusCode code = absl::StatusCode::kOk;
  std::optional<CacheOutcome> cache_outcome;
  bool stale = false;
};

// A call refused as a whole because of who is calling, for the audit log. Views valid during the
// hook call only.
struct CallDenial {
  // The AuthFailureReason code of a rejected credential, or "stack_mismatch" (the token does not
  // cover the stack), or "no_decrypt_permission".
  absl::string_view reason;
  absl::StatusCode code = absl::StatusCode::kUnknown;
  // The stack (namespace) asked for, at most kMaxAuditedStackBytes of it: the caller's bytes.
  absl::string_view stack;
  // From the verified token; empty when the credential was rejected.
  absl::string_view caller;
  absl::string_view token_namespace;
  // As in ReferenceOutcome.
  absl::string_view reported_service;
  RunContext run;
};

// A reference that failed in the backend. `detail` is the store's error, which the caller did
// not see; the caller was given `correlation_id`. Views valid during the hook call only.
struct BackendError {
  std::string correlation_id;
  absl::string_view stack;
  absl::string_view ref_key;
  absl::string_view name;
  absl::Status detail;
};

struct ResolveHandlerHooks {
  // Once per call that got as far as resolving, with every reference's outcome (resolved or
  // refused); `latency` is the whole call's so far.
  std::function<void(absl::Span<const ReferenceOutcome>, absl::Duration latency)> on_references;
  // Once per rejected credential, with AuthFailureReason's code.
  std::function<void(absl::string_view reason)> on_auth_failure;
  // Once per call refused as a whole because of who is calling: a rejected credential, or a
  // verified caller refused PERMISSION_DENIED.
  std::function<void(const CallDenial&)> on_call_denied;
  // Once per reference whose error came from the backend.
  std::function<void(const BackendError&)> on_backend_error;
  // Once per call refused by the rate limit, with the caller's token namespace in its canonical
  // spelling (CanonicalStack).
  std::function<void(absl::string_view stack)> on_rate_limited;
};

// The most of a reported service name an audit line keeps: the header is the caller's to fill.
inline constexpr size_t kMaxReportedServiceBytes = 253;
// The most of a requested stack a denial's audit line keeps (a valid stack is shorter).
inline constexpr size_t kMaxAuditedStackBytes = 253;

// What a RedactLogs stream redacts with, once its first message passed every check.
struct RedactionSession {
  // Built from the resolved values; never null.
  std::shared_ptr<const client::Redactor> redactor;
  // Ref key to placeholder, in key order, for RedactLogsStarted.
  std::vector<std::pair<std::string, std::string>> placeholders;
};

// What a WatchSecrets stream watches, once its request passed every check.
struct WatchSession {
  std::string caller;  // the token's serviceIdentity
  absl::Time expires;  // the token's `exp`: the stream ends UNAUTHENTICATED then
  std::string stack;   // as requested
  struct Ref {
    std::string key;
    std::string name;
    int64_t version = 0;  // current when checked
  };
  std::vector<Ref> refs;  // in key order
};

struct ResolveHandlerOptions {
  // Null: no rate limit.
  RateLimiter* rate_limiter = nullptr;
  // The Resolver's access options, to know which stack a call is charged to.
  AccessPolicyOptions access;
  // Most names in one DecryptSecureValues request (limits.max_decrypt_names).
  size_t max_decrypt_names = 1024;
  Clock* clock = Clock::Real();
  ResolveHandlerHooks hooks;
};

class ResolveHandler {
 public:
  // `verifier` and `resolver` must outlive the handler.
  ResolveHandler(auth::TokenVerifier* verifier, const Resolver* resolver,
                 ResolveHandlerOptions options);

  // Sets `response` to the ResolveSecretsResponse, one result per ref key. Errors:
  // UNAUTHENTICATED (credential, or a token without a namespace or service identity),
  // PERMISSION_DENIED and INVALID_ARGUMENT (from the Resolver), RESOURCE_EXHAUSTED (rate limit),
  // DEADLINE_EXCEEDED (`deadline` passed before the work started).
  absl::Status ResolveSecrets(const CallCredentials& credentials,
                              const secretresolver::v1::ResolveSecretsRequest& request,
                              absl::Time deadline, grpc::ByteBuffer* response);

  // Sets `response` to the CheckReferencesResponse: per ref key, the secret's name and current
  // version, or the error ResolveSecrets would give (backend errors hidden behind a correlation
  // id as there). Errors as ResolveSecrets. Always blocks (store reads): a worker's call.
  absl::Status CheckReferences(const CallCredentials& credentials,
                               const secretresolver::v1::CheckReferencesRequest& request,
                               absl::Time deadline, grpc::ByteBuffer* response);

  // WatchSecrets' request: CheckReferences' checks (no value read; audited and rate-limited as
  // it). Errors: ResolveSecrets' whole-call errors; otherwise the error of the first reference
  // (in key order) that failed, prefixed by `refs["KEY"]: `, as StartRedaction. Always blocks.
  absl::StatusOr<WatchSession> StartWatch(const CallCredentials& credentials,
                                          const secretresolver::v1::WatchSecretsRequest& request,
                                          absl::Time deadline);

  // Grafana's decrypt API (either package: the request and response are the same on the wire):
  // `response` is set to the SecureValueDecryptResponseCollection, one entry per distinct
  // requested name. Errors: UNAUTHENTICATED (credential), INVALID_ARGUMENT (more names than
  // max_decrypt_names), RESOURCE_EXHAUSTED (rate limit), DEADLINE_EXCEEDED.
  absl::Status DecryptSecureValues(const CallCredentials& credentials,
                                   const decryptv1beta1::SecureValueDecryptRequest& request,
                                   absl::Time deadline, grpc::ByteBuffer* response);

  // RedactLogs' first message: authenticates the caller and resolves `start`'s references as
  // ResolveSecrets does (the same whole-call errors, audit lines and rate limit), then builds a
  // redactor from the values. Errors: ResolveSecrets' whole-call errors; otherwise the error of
  // the first reference (in key order) that failed, with its per-reference code and message,
  // prefixed by `refs["KEY"]: `.
  absl::StatusOr<RedactionSession> StartRedaction(const CallCredentials& credentials,
                                                  const secretresolver::v1::RedactLogsStart& start,
                                                  absl::Time deadline);
  // StartRedaction if it can be answered without blocking (as below); otherwise nullopt.
  std::optional<absl::StatusOr<RedactionSession>> TryStartRedactionWithoutBlocking(
      const CallCredentials& credentials, const secretresolver::v1::RedactLogsStart& start,
      absl::Time deadline);

  // The two methods, if the call can be answered without blocking: the token is in the
  // verifier's cache with no key reload due, and every reference is answered by the secret
  // cache alone. Returns the call's status then, for gRPC's own thread; otherwise nullopt,
  // leaving `response` untouched, and the method must run on a thread that may block. (The
  // common case, a warm cache, so takes no thread hand-off: docs/BENCHMARKS.md.)
  std::optional<absl::Status> TryResolveSecretsWithoutBlocking(
      const CallCredentials& credentials,
      const secretresolver::v1::ResolveSecretsRequest& request, absl::Time deadline,
      grpc::ByteBuffer* response);
  std::optional<absl::Status> TryDecryptSecureValuesWithoutBlocking(
      const CallCredentials& credentials,
      const decryptv1beta1::SecureValueDecryptRequest& request, absl::Time deadline,
      grpc::ByteBuffer* response);

 private:
  std::optional<absl::Status> ResolveSecrets(
      const CallCredentials& credentials,
      const secretresolver::v1::ResolveSecretsRequest& request, absl::Time deadline,
      grpc::ByteBuffer* response, bool may_block);
  std::optional<absl::Status> DecryptSecureValues(
      const CallCredentials& credentials,
      const decryptv1beta1::SecureValueDecryptRequest& request, absl::Time deadline,
      grpc::ByteBuffer* response, bool may_block);
  std::optional<absl::StatusOr<RedactionSession>> StartRedaction(
      const CallCredentials& credentials, const secretresolver::v1::RedactLogsStart& start,
      absl::Time deadline, bool may_block);
  // Authentication, ResolveSecrets' claims and Resolve for `stack`, `refs` and the pinned
  // `versions` (null: none; the results keep views into these); nullopt only without
  // `may_block`, when blocking would be needed.
  std::optional<absl::StatusOr<ResolveResults>> ResolveReferences(
      const CallCredentials& credentials, const std::string& stack,
      const google::protobuf::Map<std::string, std::string>& refs,
      const google::protobuf::Map<std::string, int64_t>* versions, absl::Time deadline,
      bool may_block);
  // The verified caller, or the whole-call error (deadline, credential); nullopt only without
  // `may_block`, when verifying would block. `stack` is what the call asks for, for the audit.
  std::optional<absl::StatusOr<std::shared_ptr<const Caller>>> Authenticate(
      const CallCredentials& credentials, absl::string_view stack, absl::Time start,
      absl::Time deadline, bool may_block);
  // What Resolve runs once the rate limit allows: the resolution, or the dry run of
  // CheckReferences or of a WatchSecrets stream's start (audited under that method's name).
  enum class Work { kResolve, kCheck, kWatch };
  // Rate limit and resolution shared by the methods, for an authenticated `caller`; nullopt only
  // without `may_block`, when blocking would be needed.
  std::optional<absl::StatusOr<ResolveResults>> Resolve(const Caller& caller,
                                                        const CallCredentials& credentials,
                                                        const ResolveRequest& request,
                                                        absl::Time start, absl::Time deadline,
                                                        bool may_block,
                                                        Work work = Work::kResolve);
  // Reports a rejected credential, with its AuthFailureReason code, to the hooks.
  void ReportAuthFailure(absl::string_view reason, const absl::Status& status,
                         const CallCredentials& credentials, absl::string_view stack);
  // Authentication and ResolveSecrets' claims; the caller or the whole-call error.
  std::optional<absl::StatusOr<std::shared_ptr<const Caller>>> AuthenticateResolver(
      const CallCredentials& credentials, absl::string_view stack, absl::Time start,
      absl::Time deadline, bool may_block);
  // Reports a call refused as a whole to the hooks.
  void ReportDenial(const CallDenial& denial);
  // Replaces the message of each backend error in `results` by a generic one with a correlation
  // id, reporting the original to the hooks.
  void HideBackendErrors(absl::string_view stack, ResolveResults& results);

  auth::TokenVerifier* const verifier_;
  const Resolver* const resolver_;
  ResolveHandlerOptions options_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_RESOLVE_HANDLER_H_
