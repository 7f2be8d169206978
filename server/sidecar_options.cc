#include "server/sidecar_options.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "resolver/access_policy.h"
#include "server/host_port.h"

namespace secret_resolver {

using secretresolver::config::v1::Config;

absl::Duration ToDuration(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) + absl::Nanoseconds(duration.nanos());
}

KekSource KekSourceFromConfig(const Config& config) {
  return KekSource{config.store().kek().file(), config.store().kek().env(),
                   AfterReading::kClear};
}

CacheOptions CacheOptionsFromConfig(const Config& config) {
  const auto& c = config.cache();
  CacheOptions options;
  options.ttl = ToDuration(c.ttl());
  options.refresh_ahead = ToDuration(c.refresh_ahead());
  options.refresh_jitter = ToDuration(c.refresh_jitter());
  options.negative_ttl = ToDuration(c.negative_ttl());
  options.max_stale = ToDuration(c.max_stale());
  options.unconfirmed_grace = ToDuration(c.unconfirmed_grace());
  options.stale_after = ToDuration(c.stale_after());
  options.max_bytes = c.max_bytes();
  options.per_stack_share = c.per_stack_share();
  options.max_concurrent_fetches = config.limits().max_concurrent_fetches();
  return options;
}

PrefetchOptions PrefetchOptionsFromConfig(const Config& config) {
  const auto& c = config.cache();
  PrefetchOptions options;
  for (const auto& prefetch : c.prefetch()) {
    for (const std::string& name : prefetch.names()) {
      // Stored and cached under the canonical spelling, as the resolver looks them up.
      options.secrets.push_back({CanonicalStack(prefetch.stack()), name});
    }
  }
  options.parallelism = config.limits().max_concurrent_fetches();
  // Twice per refresh-ahead window, so that every entry is touched inside it before it expires.
  const absl::Duration ahead = ToDuration(c.refresh_ahead());
  const absl::Duration window = ahead > absl::ZeroDuration() ? ahead : ToDuration(c.ttl());
  options.keep_warm_interval = std::max(absl::Seconds(1), window / 2);
  return options;
}

RedactLimits RedactLimitsFromConfig(const Config& config) {
  RedactLimits limits;
  limits.max_streams = config.limits().max_redact_streams();
  limits.max_message_bytes = config.limits().max_message_bytes();
  return limits;
}

WatchLimits WatchLimitsFromConfig(const Config& config) {
  WatchLimits limits;
  limits.max_streams = config.limits().max_watch_streams();
  return limits;
}

WorkerPoolLimits WorkerPoolLimitsFromConfig(const Config& config) {
  WorkerPoolLimits limits;
  limits.threads = config.limits().worker_threads();
  limits.max_queued = config.limits().max_queued_calls();
  return limits;
}

ChangeStreamOptions ChangeStreamOptionsFromConfig(const Config& config) {
  ChangeStreamOptions options;
  const auto& change_stream = config.change_stream();
  options.allowed_clients.assign(change_stream.allowed_clients().begin(),
                                 change_stream.allowed_clients().end());
  options.max_streams = change_stream.max_streams();
  options.heartbeat_interval = ToDuration(change_stream.heartbeat_interval());
  return options;
}

ResolverOptions ResolverOptionsFromConfig(const Config& config) {
  ResolverOptions options;
  options.max_refs = config.limits().max_refs();
  options.access.allow_wildcard_namespace = config.auth().allow_wildcard_namespace();
  return options;
}

auth::TokenVerifierOptions TokenVerifierOptionsFromConfig(const Config& config) {
  const auto& a = config.auth();
  auth::TokenVerifierOptions options;
  options.issuer = a.issuer();
  if (!a.audience().empty()) options.audiences.push_back(a.audience());
  options.audiences.insert(options.audiences.end(), a.audiences().begin(), a.audiences().end());
  options.algorithms.assign(a.algorithms().begin(), a.algorithms().end());
  options.max_token_lifetime = ToDuration(a.max_token_lifetime());
  options.leeway = ToDuration(a.leeway());
  options.allow_missing_typ = a.allow_missing_typ();
  options.cache_capacity = a.token_cache_size();
  options.clock = Clock::Real();
  return options;
}

JsonLoggerOptions LoggerOptionsFromConfig(const Config& config) {
  JsonLoggerOptions options;
  if (absl::StatusOr<LogLevel> level = ParseLogLevel(config.logging().level()); level.ok()) {
    options.min_level = *level;
  }
  options.audit = !config.logging().has_audit() || config.logging().audit();
  // Group commit: an audit line per reference, written synchronously, cost a third of the
  // throughput. Shutdown flushes, so only a crash can lose the last interval's lines.
  options.flush_interval = absl::Milliseconds(50);
  return options;
}

std::optional<RateLimiterOptions> RateLimiterOptionsFromConfig(const Config& config) {
  const auto& limits = config.limits();
  if (!(limits.per_stack_rate() > 0)) return std::nullopt;
  RateLimiterOptions options;
  options.rate = limits.per_stack_rate();
  options.burst = limits.per_stack_burst();
  return options;
}

GrpcServerLimits GrpcServerLimitsFromConfig(const Config& config) {
  const auto& l = config.limits();
  const auto ms = [](const google::protobuf::Duration& d) {
    return static_cast<int>(absl::ToInt64Milliseconds(ToDuration(d)));
  };
  GrpcServerLimits limits;
  limits.max_message_bytes = static_cast<int>(l.max_message_bytes());
  limits.max_concurrent_streams = static_cast<int>(l.max_concurrent_streams());
  limits.max_connection_idle_ms = ms(l.max_connection_idle());
  limits.max_connection_age_ms = ms(l.max_connection_age());
  limits.max_connection_age_grace_ms = ms(l.max_connection_age_grace());
  limits.handshake_timeout_ms = ms(l.handshake_timeout());
  limits.keepalive_time_ms = ms(l.keepalive_time());
  limits.keepalive_timeout_ms = ms(l.keepalive_timeout());
  limits.memory_bytes = static_cast<size_t>(l.grpc_memory_bytes());
  return limits;
}

AdminServerOptions AdminOptionsFromConfig(const Config& config) {
  AdminServerOptions options;
  options.address = config.admin().address();
  options.allow_non_loopback = config.admin().allow_non_loopback();
  return options;
}

absl::StatusOr<std::string> BoundTarget(absl::string_view address, int bound_port) {
  absl::StatusOr<HostPort> configured = ParseHostPort(address);
  if (!configured.ok()) return configured.status();
  const bool ipv6 = configured->host.find(':') != std::string::npos;
  return ipv6 ? absl::StrCat("[", configured->host, "]:", bound_port)
              : absl::StrCat(configured->host, ":", bound_port);
}

}  // namespace secret_resolver
