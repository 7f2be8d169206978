#include "server/config_defaults.h"

#include <google/protobuf/duration.pb.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace secret_resolver {
namespace {

using secretresolver::config::v1::Auth;
using secretresolver::config::v1::Cache;
using secretresolver::config::v1::Config;

bool IsZero(const google::protobuf::Duration& d) { return d.seconds() == 0 && d.nanos() == 0; }

void SetIfZero(google::protobuf::Duration* d, int64_t seconds) {
  if (IsZero(*d)) d->set_seconds(seconds);
}

// For durations where zero means something (no leeway, no negative caching, ...): the default
// only when the key is absent, so an explicit "0s" stays zero.
template <typename Message>
void SetIfAbsent(Message* parent, bool (Message::*has)() const,
                 google::protobuf::Duration* (Message::*mutable_field)(), int64_t seconds,
                 int32_t nanos = 0) {
  if ((parent->*has)()) return;
  (parent->*mutable_field)()->set_seconds(seconds);
  (parent->*mutable_field)()->set_nanos(nanos);
}

template <typename Message>
void SetIfAbsent(Message* parent, bool (Message::*has)() const,
                 google::protobuf::Duration* (Message::*mutable_field)(),
                 const google::protobuf::Duration& value) {
  SetIfAbsent(parent, has, mutable_field, value.seconds(), value.nanos());
}

// `d` divided by `divisor`, at most `cap_seconds` (a non-negative, in-range `d`).
google::protobuf::Duration FractionOf(const google::protobuf::Duration& d, int64_t divisor,
                                      int64_t cap_seconds) {
  google::protobuf::Duration out;
  const int64_t nanos = d.seconds() > cap_seconds * divisor
                            ? cap_seconds * 1000000000
                            : (d.seconds() * 1000000000 + d.nanos()) / divisor;
  out.set_seconds(nanos / 1000000000);
  out.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return out;
}

}  // namespace

void ApplyDefaults(Config* config) {
  auto* listen = config->mutable_listen();
  if (listen->unix_socket_mode().empty()) listen->set_unix_socket_mode("0660");
  if (listen->has_tls()) SetIfZero(listen->mutable_tls()->mutable_reload_interval(), 60);

  if (config->store().has_postgres()) {
    auto* postgres = config->mutable_store()->mutable_postgres();
    if (postgres->max_connections() == 0) postgres->set_max_connections(8);
    SetIfZero(postgres->mutable_connect_timeout(), 2);
    SetIfZero(postgres->mutable_statement_timeout(), 2);
  }
  if (config->store().has_upstream()) {
    auto* upstream = config->mutable_store()->mutable_upstream();
    SetIfZero(upstream->mutable_reload_interval(), 60);
    SetIfZero(upstream->mutable_timeout(), 2);
  }
  if (config->store().has_sqlite()) {
    SetIfZero(config->mutable_store()->mutable_sqlite()->mutable_busy_timeout(), 2);
  }

  auto* auth = config->mutable_auth();
  SetIfZero(auth->mutable_jwks_refresh_interval(), 300);
  SetIfAbsent(auth, &Auth::has_leeway, &Auth::mutable_leeway, 60);
  if (auth->token_cache_size() == 0) auth->set_token_cache_size(10000);
  SetIfZero(auth->mutable_max_token_lifetime(), 86400);

  auto* cache = config->mutable_cache();
  SetIfZero(cache->mutable_ttl(), 300);
  // Refresh-ahead and its jitter scale down with a short TTL (a tenth and a twentieth of it),
  // so that a TTL set alone never leaves every hit inside the refresh window.
  SetIfAbsent(cache, &Cache::has_refresh_ahead, &Cache::mutable_refresh_ahead,
              FractionOf(cache->ttl(), 10, 30));
  SetIfAbsent(cache, &Cache::has_refresh_jitter, &Cache::mutable_refresh_jitter,
              FractionOf(cache->ttl(), 20, 15));
  SetIfAbsent(cache, &Cache::has_negative_ttl, &Cache::mutable_negative_ttl, 5);
  SetIfAbsent(cache, &Cache::has_max_stale, &Cache::mutable_max_stale, 900);
  SetIfAbsent(cache, &Cache::has_unconfirmed_grace, &Cache::mutable_unconfirmed_grace, 2);
  SetIfAbsent(cache, &Cache::has_stale_after, &Cache::mutable_stale_after, 0, 250000000);
  if (cache->max_bytes() == 0) cache->set_max_bytes(uint64_t{64} << 20);
  if (cache->per_stack_share() == 0) cache->set_per_stack_share(0.25);

  auto* redaction = config->mutable_redaction();
  if (redaction->placeholder_format().empty()) {
    redaction->set_placeholder_format("***SECRET_REDACTED:{key}***");
  }

  auto* limits = config->mutable_limits();
  if (limits->max_refs() == 0) limits->set_max_refs(128);
  if (limits->max_decrypt_names() == 0) limits->set_max_decrypt_names(1024);
  if (limits->max_redact_streams() == 0) limits->set_max_redact_streams(64);
  if (limits->max_watch_streams() == 0) limits->set_max_watch_streams(256);
  if (config->change_stream().max_streams() == 0) {
    config->mutable_change_stream()->set_max_streams(1024);
  }
  SetIfZero(config->mutable_change_stream()->mutable_heartbeat_interval(), 5);
  if (limits->max_message_bytes() == 0) limits->set_max_message_bytes(1 << 20);
  if (limits->per_stack_burst() == 0) {
    const double rate = limits->per_stack_rate();
    // Guarded so that a bad rate (negative, NaN, huge) cannot make the cast undefined;
    // ValidateConfig reports it.
    const double burst = std::isfinite(rate) ? std::ceil(rate) : 1;
    limits->set_per_stack_burst(burst <= 1              ? 1
                                : burst >= 4294967295.0 ? std::numeric_limits<uint32_t>::max()
                                                        : static_cast<uint32_t>(burst));
  }
  if (limits->max_concurrent_fetches() == 0) limits->set_max_concurrent_fetches(16);
  if (limits->worker_threads() == 0) limits->set_worker_threads(4);
  if (limits->max_queued_calls() == 0) limits->set_max_queued_calls(4096);
  if (limits->max_concurrent_streams() == 0) limits->set_max_concurrent_streams(100);
  SetIfZero(limits->mutable_max_connection_idle(), 300);
  SetIfZero(limits->mutable_max_connection_age(), 600);
  SetIfZero(limits->mutable_max_connection_age_grace(), 10);
  SetIfZero(limits->mutable_handshake_timeout(), 10);
  SetIfZero(limits->mutable_keepalive_time(), 60);
  SetIfZero(limits->mutable_keepalive_timeout(), 20);
  if (limits->grpc_memory_bytes() == 0) limits->set_grpc_memory_bytes(uint64_t{64} << 20);

  auto* admin = config->mutable_admin();
  if (!admin->has_enabled()) admin->set_enabled(true);
  if (admin->enabled() && admin->address().empty()) admin->set_address("127.0.0.1:9464");

  auto* logging = config->mutable_logging();
  if (logging->level().empty()) logging->set_level("info");
  if (!logging->has_audit()) logging->set_audit(true);

  SetIfAbsent(config, &Config::has_shutdown_grace, &Config::mutable_shutdown_grace, 10);
}

}  // namespace secret_resolver
