// SecretResolverClient: what a workflow service links to resolve `secret://` references through
// its secret-resolver sidecar (contract.md section 2), over a Unix socket, TCP or TLS/mTLS.
//
// Every ResolveSecrets call asks the token provider for a fresh access token (tokens expire and
// the caller's identity system refreshes them), sends it in the `x-access-token` metadata entry
// (contract.md section 3, the Grafana header) or, if configured, as `authorization: Bearer`,
// and gives the whole call, retries included, one deadline. Only UNAVAILABLE is retried (the
// sidecar restarting, the socket not there yet): with exponential backoff and full jitter, and
// never past the deadline. Every other status comes back at once.
//
// Values come back as SecretBytes; the response message's copies are wiped as soon as they are
// copied out. A reference that failed comes back as an absl::Status whose message starts with
// its ref key. CheckReferences is the same call as a dry run: no value is read anywhere.
//
// A call may carry its workflow run's identity (RunIds: `x-workflow-run-id`,
// `x-workflow-step-id`, W3C `traceparent`), which the sidecar writes into its audit lines and
// uses for nothing else, and pins (ResolveOptions::versions) that make a ref key resolve a
// given version (contract.md section 2; RunSecrets in client/step_inputs.h keeps them per run).
//
// Thread safety: a SecretResolverClient may be used from many threads at once.
#ifndef SECRET_RESOLVER_CLIENT_SECRET_RESOLVER_CLIENT_H_
#define SECRET_RESOLVER_CLIENT_SECRET_RESOLVER_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/redactor/redactor.h"
#include "client/remote_redaction.h"
#include "client/secret_watch.h"
#include "resolver/clock.h"
#include "resolver/secret_bytes.h"

namespace grpc {
class Channel;
class ClientContext;
class Status;
}  // namespace grpc

namespace secret_resolver {
namespace client {

// Returns the access token to send with one call, or an error that fails the call (returned
// as is, without a retry). Called once per attempt, so a token refreshed between attempts is
// used at once.
using TokenProvider = std::function<absl::StatusOr<std::string>()>;

// Where the token goes in the call's metadata; the sidecar accepts both.
enum class TokenHeader {
  kXAccessToken,         // `x-access-token: <jwt>` (Grafana's header; the default)
  kAuthorizationBearer,  // `authorization: Bearer <jwt>`
};

// TLS for a TCP (or Unix socket) target. Files are read once, by Create.
struct TlsOptions {
  std::string root_ca_file;      // PEM roots that sign the sidecar's certificate; required
  std::string cert_chain_file;   // PEM client certificate chain, for mTLS; with private_key_file
  std::string private_key_file;  // PEM client private key, for mTLS; with cert_chain_file
  // The name to check the sidecar's certificate against when it differs from the target's
  // host (e.g. a Unix socket target, or an IP address). Empty: the target's host.
  std::string server_name_override;
};

// UNAVAILABLE is retried; the wait before retry n (n = 1, 2, ...) is uniformly random in
// [0, min(max_backoff, initial_backoff * multiplier^(n-1))] ("full jitter"), so clients that
// failed together do not retry together.
struct RetryPolicy {
  int max_attempts = 5;  // the first attempt included; 1 disables retries
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  double multiplier = 2.0;
};

struct ClientOptions {
  // `unix:/path/to/socket` (or `unix:///abs/path`), `host:port`, `dns:///host:port`, ...
  std::string target;
  // Unset: no transport security (a Unix socket inside the pod, or a TCP port on loopback).
  std::optional<TlsOptions> tls;
  TokenProvider token_provider;  // required
  TokenHeader token_header = TokenHeader::kXAccessToken;
  // The budget of one ResolveSecrets call, every attempt and backoff included.
  absl::Duration deadline = absl::Seconds(5);
  RetryPolicy retry;

  // For tests: the clock the deadline is measured on (default Clock::Real()), how a backoff
  // waits (default absl::SleepFor), and the jitter source, returning a number in [0, 1)
  // (default absl::BitGen).
  Clock* clock = nullptr;
  std::function<void(absl::Duration)> sleep;
  std::function<double()> uniform_random;
};

// Who a call is for, for the sidecar's audit log: each sent as metadata when not empty. Run
// and step ids are 1-128 characters of [A-Za-z0-9._:-]; `traceparent` is a W3C trace context
// header (`00-<trace id>-<span id>-<flags>`). The sidecar drops (and audits as dropped) a value
// that breaks these rules; the call goes on.
struct RunIds {
  std::string run_id;
  std::string step_id;
  std::string traceparent;
};

// Options of one call.
struct ResolveOptions {
  // Unset: ClientOptions::deadline.
  std::optional<absl::Duration> deadline;
  // ResolveSecrets only: ref key -> the version that key must resolve to (each key one of the
  // call's refs, each version at least 1).
  std::map<std::string, int64_t> versions;
  RunIds run;
};

// One reference that CheckReferences found the caller may resolve.
struct CheckedReference {
  std::string name;     // the secret's name (after `secret://`)
  int64_t version = 0;  // its current version
};

// Ref key -> what the check found, or the error ResolveSecrets would give (message starting
// `ref "KEY": `, as for ResolvedSecrets).
using CheckedReferences = std::map<std::string, absl::StatusOr<CheckedReference>>;

// One resolved reference. Move-only (it holds a SecretBytes).
struct ResolvedSecret {
  SecretBytes value;
  std::string name;         // the secret's name (after `secret://`)
  int64_t version = 0;      // the version `value` belongs to
  std::string placeholder;  // what a logger writes instead of the value
  std::string fingerprint;  // "hmac-sha256:..."; stable across replicas, not reversible
  bool stale = false;       // served from cache past its TTL because the backend failed
  bool superseded = false;  // pinned to a version older than the newest
};

// Ref key -> the secret or why it could not be resolved. The status message starts with
// `ref "KEY": ` and carries the sidecar's per-reference code (NOT_FOUND, PERMISSION_DENIED, ...).
using ResolvedSecrets = std::map<std::string, absl::StatusOr<ResolvedSecret>>;

class SecretResolverClient {
 public:
  // Returns a client for `options.target`. The connection is made lazily, by the first call.
  // INVALID_ARGUMENT: no target, no token provider, a bad retry policy or deadline, a client
  // certificate without its key (or the reverse). FAILED_PRECONDITION: a TLS file that cannot
  // be read (the message names the file, never its contents).
  static absl::StatusOr<std::unique_ptr<SecretResolverClient>> Create(ClientOptions options);

  // Resolves `refs` (ref key -> `secret://name`) for `stack` within options.deadline.
  // On success, one entry per ref key of `refs` (per-reference failures are entries too).
  // Whole-call errors, as the sidecar returns them: UNAUTHENTICATED, PERMISSION_DENIED,
  // INVALID_ARGUMENT, RESOURCE_EXHAUSTED; DEADLINE_EXCEEDED when the deadline passed;
  // UNAVAILABLE when the sidecar could not be reached and no retry fits in the deadline or
  // max_attempts ran out; the token provider's own error, unchanged.
  absl::StatusOr<ResolvedSecrets> ResolveSecrets(absl::string_view stack,
                                                 const std::map<std::string, std::string>& refs);
  // As above, with `deadline` instead of options.deadline.
  absl::StatusOr<ResolvedSecrets> ResolveSecrets(absl::string_view stack,
                                                 const std::map<std::string, std::string>& refs,
                                                 absl::Duration deadline);
  // As above, with `options` (deadline, pinned versions, run ids).
  absl::StatusOr<ResolvedSecrets> ResolveSecrets(absl::string_view stack,
                                                 const std::map<std::string, std::string>& refs,
                                                 const ResolveOptions& options);

  // The sidecar's dry run of ResolveSecrets for `refs`: per ref key, the secret's name and
  // current version if the caller may resolve it, otherwise the error ResolveSecrets would give;
  // no value is read or decrypted. Whole-call errors and retries as ResolveSecrets.
  // `options.versions` is not used.
  absl::StatusOr<CheckedReferences> CheckReferences(
      absl::string_view stack, const std::map<std::string, std::string>& refs,
      const ResolveOptions& options = {});

  // Opens a RedactLogs stream for `refs` of `stack` (client/remote_redaction.h): the sidecar
  // redacts the text written to it with the values of `refs`, which never reach this process,
  // and `sink` receives the redacted text. Sends a fresh token; not retried, and no deadline (a
  // log stream lasts as long as its step). Errors: as ResolveSecrets, where a reference's error
  // fails the whole stream; RESOURCE_EXHAUSTED when the sidecar runs its most streams; the token
  // provider's own error.
  absl::StatusOr<std::unique_ptr<RemoteRedaction>> RedactLogs(
      absl::string_view stack, const std::map<std::string, std::string>& refs, ChunkSink sink);

  // Watches `refs` of `stack` (client/secret_watch.h): `on_event` hears each ref's current
  // version, then every new version or deletion, reconnecting with backoff (options.retry, a
  // fresh token each time) when the stream ends; `on_end` (may be empty) hears a refusal that
  // stops the watch (e.g. PERMISSION_DENIED for a ref the caller may not read). Destroying the
  // handle stops it. The client must outlive the handle.
  std::unique_ptr<SecretWatch> WatchSecrets(absl::string_view stack,
                                            const std::map<std::string, std::string>& refs,
                                            WatchCallback on_event,
                                            WatchEndCallback on_end = nullptr);

  ~SecretResolverClient();
  SecretResolverClient(const SecretResolverClient&) = delete;
  SecretResolverClient& operator=(const SecretResolverClient&) = delete;

 private:
  class Stub;
  SecretResolverClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  // The wait before retry `retry` (1-based), full jitter.
  absl::Duration Backoff(int retry);

  // Runs `attempt` (one RPC on a context carrying the token and `run`'s metadata) until it
  // succeeds, fails other than UNAVAILABLE, or the budget or max_attempts run out, as the file
  // comment describes. Returns OK when an attempt succeeded.
  absl::Status CallWithRetries(absl::Duration budget, const RunIds& run,
                               const std::function<grpc::Status(grpc::ClientContext*)>& attempt);

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;
  std::mutex random_mu_;
  absl::BitGen random_;  // guarded by random_mu_; used when options_.uniform_random is unset
};

}  // namespace client
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_CLIENT_SECRET_RESOLVER_CLIENT_H_
