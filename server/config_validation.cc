#include "server/config_validation.h"

#include <google/protobuf/duration.pb.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "resolver/postgres/postgres_connection.h"
#include "resolver/quote.h"
#include "resolver/secret_uri.h"
#include "resolver/secret_validation.h"
#include "server/config_text.h"
#include "server/host_port.h"

namespace secret_resolver {
namespace {

using config_internal::kMaxDurationSeconds;

// SQLite takes its busy timeout in milliseconds as an int; a day is far more than any lock
// should be waited for.
constexpr int64_t kMaxBusyTimeoutSeconds = 86400;
using secretresolver::config::v1::Config;

// The connection limits (limits.max_connection_idle and the rest) go to gRPC as int
// milliseconds: at most 24 days fits; a day is already far more than any of them needs.
constexpr int64_t kMaxConnectionLimitSeconds = 86400;
constexpr uint64_t kMinGrpcMemoryBytes = uint64_t{4} << 20;
// Each change stream holds at most 1024 small pending events.
constexpr uint32_t kMaxChangeStreams = 100000;

// Collects the problems ValidateConfig finds.
class Problems {
 public:
  void Add(absl::string_view path, absl::string_view problem) {
    list_.push_back(absl::StrCat(path, ": ", problem));
  }

  void CheckDuration(absl::string_view path, const google::protobuf::Duration& d) {
    if (d.seconds() < 0 || d.nanos() < 0) {
      Add(path, "must not be negative");
    } else if (d.nanos() > 999999999 || d.seconds() > kMaxDurationSeconds) {
      Add(path, "is out of range");
    }
  }

  absl::Status ToStatus() const {
    if (list_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(list_, "; "));
  }

 private:
  std::vector<std::string> list_;
};

bool IsOctalMode(absl::string_view mode) {
  if (mode.empty() || mode.size() > 4) return false;
  unsigned value = 0;
  for (char c : mode) {
    if (c < '0' || c > '7') return false;
    value = value * 8 + static_cast<unsigned>(c - '0');
  }
  return value <= 0777;
}

// https:// anywhere; http:// only to this host (test JWKS servers), where nothing crosses the
// network.
bool IsAcceptableJwksUrl(absl::string_view url) {
  absl::string_view rest;
  if (absl::StartsWithIgnoreCase(url, "https://")) {
    rest = url.substr(8);
    return !rest.empty() && rest[0] != '/';
  }
  if (!absl::StartsWithIgnoreCase(url, "http://")) return false;
  rest = url.substr(7);
  const absl::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (absl::StrContains(authority, "@")) return false;
  absl::StatusOr<HostPort> host_port = ParseHostPort(authority);
  return IsLoopbackHost(host_port.ok() ? absl::string_view(host_port->host) : authority);
}

void ValidateListen(const Config& config, Problems* problems) {
  const auto& listen = config.listen();
  if (listen.unix_socket().empty() && listen.tcp_address().empty()) {
    problems->Add("listen", "at least one of unix_socket and tcp_address must be set");
  }
  if (!listen.unix_socket_mode().empty() && !IsOctalMode(listen.unix_socket_mode())) {
    problems->Add("listen.unix_socket_mode",
                  absl::StrCat(QuoteForMessage(listen.unix_socket_mode()),
                               " is not octal permission bits such as \"0660\""));
  }
  if (!listen.tcp_address().empty()) {
    if (absl::StatusOr<HostPort> hp = ParseHostPort(listen.tcp_address()); !hp.ok()) {
      problems->Add("listen.tcp_address", hp.status().message());
    } else if (listen.tls().cert_file().empty() && !IsLoopbackHost(hp->host) &&
               !listen.allow_insecure_tcp()) {
      problems->Add("listen.tcp_address",
                    absl::StrCat(QuoteForMessage(listen.tcp_address(), kQuotedAddressBytes),
                                 " is plaintext TCP on a non-loopback address, where tokens and "
                                 "secret values cross the network in the clear; configure "
                                 "listen.tls, use a loopback host, or set "
                                 "listen.allow_insecure_tcp: true"));
    }
  }
  if (!listen.health_address().empty()) {
    if (absl::StatusOr<HostPort> hp = ParseHostPort(listen.health_address()); !hp.ok()) {
      problems->Add("listen.health_address", hp.status().message());
    } else if (listen.health_address() == listen.tcp_address()) {
      problems->Add("listen.health_address", "must differ from listen.tcp_address");
    }
  }
  if (!listen.has_tls()) return;
  const auto& tls = listen.tls();
  const bool has_cert = !tls.cert_file().empty();
  const bool has_key = !tls.key_file().empty();
  if (has_cert != has_key) {
    problems->Add("listen.tls", "cert_file and key_file must be set together");
  }
  if ((has_cert || has_key) && listen.tcp_address().empty()) {
    problems->Add("listen.tls",
                  "TLS applies to the TCP listener, but listen.tcp_address is "
                  "not set");
  }
  if (!tls.client_ca_file().empty() && !has_cert) {
    problems->Add("listen.tls.client_ca_file", "requires cert_file and key_file");
  }
  if (tls.require_client_cert() && tls.client_ca_file().empty()) {
    problems->Add("listen.tls.require_client_cert", "requires listen.tls.client_ca_file");
  }
  problems->CheckDuration("listen.tls.reload_interval", tls.reload_interval());
}

// Callers of the change stream are admitted by their client certificate alone, so serving it
// needs a listener that verifies one.
void ValidateChangeStream(const Config& config, Problems* problems) {
  const auto& change_stream = config.change_stream();
  if (change_stream.max_streams() > kMaxChangeStreams) {
    problems->Add("change_stream.max_streams",
                  absl::StrCat("must be at most ", kMaxChangeStreams, ", got ",
                               change_stream.max_streams()));
  }
  const google::protobuf::Duration& heartbeat = change_stream.heartbeat_interval();
  const absl::Duration interval =
      absl::Seconds(heartbeat.seconds()) + absl::Nanoseconds(heartbeat.nanos());
  if (heartbeat.nanos() < 0 || heartbeat.nanos() > 999999999 ||
      interval < absl::Milliseconds(100) || interval > absl::Minutes(1)) {
    problems->Add("change_stream.heartbeat_interval", "must be from 100ms to 1m");
  }
  for (int i = 0; i < change_stream.allowed_clients_size(); ++i) {
    const std::string& client = change_stream.allowed_clients(i);
    if (client.empty() || client != absl::StripAsciiWhitespace(client)) {
      problems->Add(absl::StrCat("change_stream.allowed_clients[", i, "]"),
                    absl::StrCat(QuoteForMessage(client),
                                 " is not a certificate name (empty, or surrounded by spaces)"));
    }
  }
  if (change_stream.allowed_clients().empty()) return;
  const auto& tls = config.listen().tls();
  if (config.listen().tcp_address().empty() || tls.cert_file().empty() ||
      tls.client_ca_file().empty() || !tls.require_client_cert()) {
    problems->Add("change_stream.allowed_clients",
                  "callers are admitted by their client certificate, so it needs a TLS "
                  "listener that requires one: set listen.tcp_address, listen.tls.cert_file, "
                  "key_file, client_ca_file and require_client_cert: true");
  }
}

void ValidateUpstream(const secretresolver::config::v1::UpstreamStore& upstream,
                      Problems* problems) {
  const absl::string_view address = upstream.address();
  bool loopback = false;
  if (address.empty()) {
    problems->Add("store.upstream.address", "is required");
  } else if (absl::StartsWith(address, "unix:")) {
    loopback = true;
  } else if (absl::StatusOr<HostPort> hp = ParseHostPort(address); !hp.ok()) {
    problems->Add("store.upstream.address", hp.status().message());
  } else {
    loopback = IsLoopbackHost(hp->host);
  }
  if (upstream.ca_file().empty() && !upstream.allow_insecure()) {
    problems->Add("store.upstream.ca_file",
                  "is required (the server's certificate must be checked) unless allow_insecure "
                  "is set for a loopback or unix: address");
  }
  if (upstream.allow_insecure() && !address.empty() && !loopback) {
    problems->Add("store.upstream.allow_insecure",
                  absl::StrCat("is only allowed for a loopback or unix: address, not ",
                               QuoteForMessage(address, kQuotedAddressBytes),
                               ", where tokens and values would cross the network in the clear; "
                               "configure ca_file"));
  }
  if (upstream.cert_file().empty() != upstream.key_file().empty()) {
    problems->Add("store.upstream", "cert_file and key_file must be set together");
  }
  problems->CheckDuration("store.upstream.timeout", upstream.timeout());
  problems->CheckDuration("store.upstream.reload_interval", upstream.reload_interval());
}

void ValidateStore(const Config& config, Problems* problems) {
  const auto& store = config.store();
  switch (store.backend_case()) {
    case secretresolver::config::v1::Store::kSqlite:
      if (store.sqlite().path().empty()) problems->Add("store.sqlite.path", "is required");
      problems->CheckDuration("store.sqlite.busy_timeout", store.sqlite().busy_timeout());
      if (store.sqlite().busy_timeout().seconds() > kMaxBusyTimeoutSeconds) {
        problems->Add("store.sqlite.busy_timeout",
                      absl::StrCat("must be at most ", kMaxBusyTimeoutSeconds, "s"));
      }
      break;
    case secretresolver::config::v1::Store::kPostgres:
      if (store.postgres().dsn().empty() == store.postgres().dsn_env().empty()) {
        problems->Add("store.postgres", "exactly one of dsn and dsn_env must be set");
      } else if (!store.postgres().dsn().empty()) {
        // The store makes the same checks when it opens (also for a dsn_env DSN); here they
        // fail --check-config.
        absl::StatusOr<PostgresDsn> dsn = PostgresDsn::Parse(store.postgres().dsn());
        absl::Status transport = dsn.ok() && !store.postgres().allow_insecure()
                                     ? CheckPostgresTransport(*dsn)
                                     : dsn.status();
        if (!transport.ok()) problems->Add("store.postgres.dsn", transport.message());
      }
      problems->CheckDuration("store.postgres.connect_timeout", store.postgres().connect_timeout());
      problems->CheckDuration("store.postgres.statement_timeout",
                              store.postgres().statement_timeout());
      break;
    case secretresolver::config::v1::Store::kUpstream:
      ValidateUpstream(store.upstream(), problems);
      if (config.cache().prefetch_size() > 0) {
        problems->Add("cache.prefetch",
                      "is not possible with store.upstream, which answers per caller's token");
      }
      break;
    default:
      problems->Add("store", "exactly one backend must be set: sqlite, postgres or upstream");
  }
  if (store.has_upstream()) {
    // The upstream keeps the ciphertexts and their keys; a KEK here is allowed but unused.
    if (!store.kek().file().empty() && !store.kek().env().empty()) {
      problems->Add("store.kek", "at most one of file and env may be set");
    }
  } else if (store.kek().file().empty() == store.kek().env().empty()) {
    problems->Add("store.kek", "exactly one of file and env must be set");
  }
}

void ValidateAuth(const Config& config, Problems* problems) {
  const auto& auth = config.auth();
  if (auth.issuer().empty()) problems->Add("auth.issuer", "is required");
  if (auth.audience().empty() && auth.audiences().empty()) {
    problems->Add("auth.audiences", "at least one audience is required");
  }
  for (int i = 0; i < auth.audiences_size(); ++i) {
    if (auth.audiences(i).empty()) {
      problems->Add(absl::StrCat("auth.audiences[", i, "]"), "must not be empty");
    }
  }
  for (int i = 0; i < auth.algorithms_size(); ++i) {
    const std::string& alg = auth.algorithms(i);
    if (alg != "ES256" && alg != "RS256" && alg != "EdDSA") {
      problems->Add(absl::StrCat("auth.algorithms[", i, "]"),
                    "must be one of ES256, RS256, EdDSA");
    }
  }
  switch (auth.jwks_case()) {
    case secretresolver::config::v1::Auth::kJwksFile:
      if (auth.jwks_file().empty()) problems->Add("auth.jwks_file", "must not be empty");
      break;
    case secretresolver::config::v1::Auth::kJwksUrl:
      if (!IsAcceptableJwksUrl(auth.jwks_url())) {
        problems->Add("auth.jwks_url", "must be an https:// URL (http:// only to a loopback host)");
      }
      break;
    default:
      problems->Add("auth", "one of jwks_file and jwks_url is required");
  }
  problems->CheckDuration("auth.jwks_refresh_interval", auth.jwks_refresh_interval());
  problems->CheckDuration("auth.leeway", auth.leeway());
  problems->CheckDuration("auth.max_token_lifetime", auth.max_token_lifetime());
}

// Warm start loads every name at start; a list longer than this is a mistake, not a cache.
constexpr size_t kMaxPrefetchNames = 100000;

void ValidateCache(const Config& config, Problems* problems) {
  const auto& cache = config.cache();
  problems->CheckDuration("cache.ttl", cache.ttl());
  problems->CheckDuration("cache.refresh_ahead", cache.refresh_ahead());
  problems->CheckDuration("cache.refresh_jitter", cache.refresh_jitter());
  problems->CheckDuration("cache.negative_ttl", cache.negative_ttl());
  problems->CheckDuration("cache.max_stale", cache.max_stale());
  problems->CheckDuration("cache.unconfirmed_grace", cache.unconfirmed_grace());
  problems->CheckDuration("cache.stale_after", cache.stale_after());
  // A refresh window (with its jitter) as long as the TTL puts every hit inside it: each one
  // would refetch the secret, so the cache would save the store nothing.
  const auto duration = [](const google::protobuf::Duration& d) {
    return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  };
  const absl::Duration ttl = duration(cache.ttl());
  const absl::Duration ahead = duration(cache.refresh_ahead());
  const absl::Duration window = ahead + duration(cache.refresh_jitter());
  if (cache.has_ttl() && ahead > absl::ZeroDuration() && window >= ttl) {
    problems->Add("cache.refresh_ahead",
                  absl::StrCat("with refresh_jitter (", absl::FormatDuration(window),
                               " together) must be shorter than cache.ttl (",
                               absl::FormatDuration(ttl),
                               "), or every hit refetches the secret; lower them or set "
                               "refresh_ahead: 0s"));
  }
  // Zero means the default; anything else must be a fraction in (0, 1]. NaN fails both tests.
  const double share = cache.per_stack_share();
  if (share != 0 && !(share > 0 && share <= 1)) {
    problems->Add("cache.per_stack_share", absl::StrCat("must be in (0, 1], got ", share));
  }
  size_t names = 0;
  for (int i = 0; i < cache.prefetch_size(); ++i) {
    const auto& prefetch = cache.prefetch(i);
    const std::string path = absl::StrCat("cache.prefetch[", i, "]");
    if (absl::Status s = ValidateStack(prefetch.stack()); !s.ok()) {
      problems->Add(absl::StrCat(path, ".stack"), s.message());
    }
    if (prefetch.names().empty()) problems->Add(absl::StrCat(path, ".names"), "must not be empty");
    for (int j = 0; j < prefetch.names_size(); ++j) {
      if (absl::Status s = ValidateSecretName(prefetch.names(j)); !s.ok()) {
        problems->Add(absl::StrCat(path, ".names[", j, "]"), s.message());
      }
    }
    names += static_cast<size_t>(prefetch.names_size());
  }
  if (names > kMaxPrefetchNames) {
    problems->Add("cache.prefetch", absl::StrCat(names, " names, more than the limit of ",
                                                 kMaxPrefetchNames));
  }
}

// Each stream holds a redactor and a message's worth of text.
constexpr uint32_t kMaxRedactStreams = 10000;
constexpr uint32_t kMaxWatchStreams = 10000;
// Each waiting call holds its request and gRPC's call; gRPC's memory quota bounds them anyway.
constexpr uint32_t kMaxQueuedCalls = 1000000;

// The connection limits become gRPC channel arguments, which are ints of milliseconds.
void ValidateLimits(const Config& config, Problems* problems) {
  const auto& limits = config.limits();
  const double rate = limits.per_stack_rate();
  if (!(rate >= 0) || !std::isfinite(rate)) {
    problems->Add("limits.per_stack_rate", "must be a finite number >= 0");
  }
  const std::pair<absl::string_view, const google::protobuf::Duration*> durations[] = {
      {"limits.max_connection_idle", &limits.max_connection_idle()},
      {"limits.max_connection_age", &limits.max_connection_age()},
      {"limits.max_connection_age_grace", &limits.max_connection_age_grace()},
      {"limits.handshake_timeout", &limits.handshake_timeout()},
      {"limits.keepalive_time", &limits.keepalive_time()},
      {"limits.keepalive_timeout", &limits.keepalive_timeout()},
  };
  for (const auto& [path, duration] : durations) {
    problems->CheckDuration(path, *duration);
    if (duration->seconds() > kMaxConnectionLimitSeconds) {
      problems->Add(path, absl::StrCat("must be at most ", kMaxConnectionLimitSeconds, "s"));
    }
  }
  if (limits.max_queued_calls() > kMaxQueuedCalls) {
    problems->Add("limits.max_queued_calls", absl::StrCat("must be at most ", kMaxQueuedCalls,
                                                          ", got ", limits.max_queued_calls()));
  }
  // Below this gRPC could not hold one connection's buffers.
  if (limits.grpc_memory_bytes() != 0 && limits.grpc_memory_bytes() < kMinGrpcMemoryBytes) {
    problems->Add("limits.grpc_memory_bytes",
                  absl::StrCat("must be at least ", kMinGrpcMemoryBytes, " (4 MiB), got ",
                               limits.grpc_memory_bytes()));
  }
}

}  // namespace

absl::Status ValidateConfig(const Config& config) {
  Problems problems;
  ValidateListen(config, &problems);
  ValidateStore(config, &problems);
  ValidateAuth(config, &problems);
  ValidateCache(config, &problems);

  const auto& redaction = config.redaction();
  if (redaction.fingerprint_key_file().empty() == redaction.fingerprint_key_env().empty()) {
    problems.Add("redaction",
                 "exactly one of fingerprint_key_file and fingerprint_key_env must be set");
  }

  ValidateLimits(config, &problems);

  if (config.limits().max_redact_streams() > kMaxRedactStreams) {
    problems.Add("limits.max_redact_streams",
                 absl::StrCat("must be at most ", kMaxRedactStreams, ", got ",
                              config.limits().max_redact_streams()));
  }
  if (config.limits().max_watch_streams() > kMaxWatchStreams) {
    problems.Add("limits.max_watch_streams",
                 absl::StrCat("must be at most ", kMaxWatchStreams, ", got ",
                              config.limits().max_watch_streams()));
  }

  const auto& admin = config.admin();
  if (!admin.has_enabled() || admin.enabled()) {
    if (admin.address().empty()) {
      if (admin.has_enabled()) problems.Add("admin.address", "is required when admin is enabled");
    } else if (absl::StatusOr<HostPort> hp = ParseHostPort(admin.address()); !hp.ok()) {
      problems.Add("admin.address", hp.status().message());
    } else if (!admin.allow_non_loopback() && !IsLoopbackHost(hp->host)) {
      problems.Add("admin.address",
                   absl::StrCat(QuoteForMessage(admin.address(), kQuotedAddressBytes),
                                " is not a loopback address (127.0.0.0/8, ::1 or localhost); "
                                "set admin.allow_non_loopback to serve it on the network"));
    }
  }

  const std::string& level = config.logging().level();
  if (!level.empty() && level != "debug" && level != "info" && level != "warning" &&
      level != "error") {
    problems.Add("logging.level",
                 absl::StrCat(QuoteForMessage(level),
                              " is not one of debug, info, warning, error"));
  }

  ValidateChangeStream(config, &problems);
  problems.CheckDuration("shutdown_grace", config.shutdown_grace());
  return problems.ToStatus();
}

}  // namespace secret_resolver
