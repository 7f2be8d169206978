// The options of the sidecar's parts, built from its validated Config: pure functions, one per
// part, so that what each config field turns into is tested without starting anything
// (tests/server/sidecar_options_test.cc). Sidecar::Start (server/sidecar.cc) composes them.
//
// Functions that need a run-time collaborator (a clock, a callback) leave it at its default for
// the caller to set.
//
// Thread safety: pure functions.
#ifndef SECRET_RESOLVER_SERVER_SIDECAR_OPTIONS_H_
#define SECRET_RESOLVER_SERVER_SIDECAR_OPTIONS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "resolver/resolver.h"
#include "resolver/secret_cache.h"
#include "resolver/secret_prefetcher.h"
#include "resolver/store/kek_source.h"
#include "secretresolver/config/v1/config.pb.h"
#include "server/admin_server.h"
#include "server/auth/token_verifier.h"
#include "server/change_stream.h"
#include "server/json_log.h"
#include "server/rate_limiter.h"
#include "server/redact_call.h"
#include "server/watch_call.h"

namespace secret_resolver {

absl::Duration ToDuration(const google::protobuf::Duration& duration);

// store.kek; an environment variable is cleared once read.
KekSource KekSourceFromConfig(const secretresolver::config::v1::Config& config);

// cache.* and limits.max_concurrent_fetches. The fingerprint function and the store-fetch
// observer are left empty.
CacheOptions CacheOptionsFromConfig(const secretresolver::config::v1::Config& config);

// cache.prefetch, one target per name in the order given; limits.max_concurrent_fetches loads
// at once; warmed again every half refresh-ahead window (half the TTL without refresh-ahead),
// at least every second. No callbacks.
PrefetchOptions PrefetchOptionsFromConfig(const secretresolver::config::v1::Config& config);

// limits.max_redact_streams and limits.max_message_bytes.
RedactLimits RedactLimitsFromConfig(const secretresolver::config::v1::Config& config);
// limits.max_watch_streams.
WatchLimits WatchLimitsFromConfig(const secretresolver::config::v1::Config& config);
// change_stream.*: the allowed client identities and max_streams.
ChangeStreamOptions ChangeStreamOptionsFromConfig(
    const secretresolver::config::v1::Config& config);

// The worker pool that runs calls which may block: its threads and how many calls may wait.
struct WorkerPoolLimits {
  size_t threads = 0;
  size_t max_queued = 0;
};
// limits.worker_threads and limits.max_queued_calls.
WorkerPoolLimits WorkerPoolLimitsFromConfig(const secretresolver::config::v1::Config& config);

// limits.max_refs and auth.allow_wildcard_namespace.
ResolverOptions ResolverOptionsFromConfig(const secretresolver::config::v1::Config& config);

// auth.*: issuer, audience and audiences (in that order), algorithms, lifetimes, leeway, typ
// rule and token cache size. The clock is the real one.
auth::TokenVerifierOptions TokenVerifierOptionsFromConfig(
    const secretresolver::config::v1::Config& config);

// logging.*: the level (info when it does not parse; the config check refuses such a file), audit
// lines (on unless turned off) and the group-commit interval the sidecar writes with.
JsonLoggerOptions LoggerOptionsFromConfig(const secretresolver::config::v1::Config& config);

// limits.per_stack_rate and per_stack_burst; nullopt when the rate is 0 (no rate limit).
std::optional<RateLimiterOptions> RateLimiterOptionsFromConfig(
    const secretresolver::config::v1::Config& config);

// What one client may hold of a gRPC listener (limits.max_concurrent_streams and the
// connection limits after it), as gRPC's channel arguments take them; and the request size.
struct GrpcServerLimits {
  int max_message_bytes = 0;
  int max_concurrent_streams = 0;
  int max_connection_idle_ms = 0;
  int max_connection_age_ms = 0;
  int max_connection_age_grace_ms = 0;
  int handshake_timeout_ms = 0;
  int keepalive_time_ms = 0;
  int keepalive_timeout_ms = 0;
  size_t memory_bytes = 0;  // gRPC's ResourceQuota
};

// limits.max_message_bytes, max_concurrent_streams, max_connection_idle, max_connection_age,
// max_connection_age_grace, handshake_timeout, keepalive_time, keepalive_timeout and
// grpc_memory_bytes (validated: every duration fits an int of milliseconds).
GrpcServerLimits GrpcServerLimitsFromConfig(const secretresolver::config::v1::Config& config);

// admin.address and admin.allow_non_loopback; no metrics or readiness yet.
AdminServerOptions AdminOptionsFromConfig(const secretresolver::config::v1::Config& config);

// What clients dial for a listener configured as `address` ("host:port" or "[ipv6]:port") and
// bound to `bound_port` (the kernel's choice when the configured port was 0): "host:port", with
// brackets kept for IPv6. INVALID_ARGUMENT (from ParseHostPort) when `address` is malformed.
absl::StatusOr<std::string> BoundTarget(absl::string_view address, int bound_port);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_SIDECAR_OPTIONS_H_
