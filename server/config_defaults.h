// The defaults of the sidecar's configuration (proto/secretresolver/config/v1/config.proto),
// the second of the three loading steps described in server/config.h.
//
// Thread safety: a stateless function; safe from any thread.
#ifndef SECRET_RESOLVER_SERVER_CONFIG_DEFAULTS_H_
#define SECRET_RESOLVER_SERVER_CONFIG_DEFAULTS_H_

#include "secretresolver/config/v1/config.pb.h"

namespace secret_resolver {

// Fills every zero or empty field that has a default with the default documented in config.proto:
// listen.unix_socket_mode "0660"; listen.tls.reload_interval 60s (when tls is present);
// store.postgres.max_connections 8, connect_timeout 2s, statement_timeout 2s (when postgres is
// chosen); store.sqlite.busy_timeout 2s (when sqlite is chosen); auth.jwks_refresh_interval 300s,
// auth.leeway 60s, auth.token_cache_size 10000; cache.ttl 300s, refresh_ahead ttl/10 (at most
// 30s), refresh_jitter ttl/20 (at most 15s), negative_ttl 5s, max_stale 900s, max_bytes 64 MiB, per_stack_share 0.25,
// unconfirmed_grace 2s, stale_after 250ms;
// redaction.placeholder_format "***SECRET_REDACTED:{key}***"; limits.max_refs 128,
// max_message_bytes 1 MiB, per_stack_burst max(1, ceil(per_stack_rate)),
// max_concurrent_fetches 16, worker_threads 4, max_queued_calls 4096; admin.enabled true and, when
// enabled, admin.address "127.0.0.1:9464"; logging.level "info", logging.audit true;
// shutdown_grace 10s; change_stream.max_streams 1024.
// Fields already set are left alone. Idempotent.
void ApplyDefaults(secretresolver::config::v1::Config* config);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_CONFIG_DEFAULTS_H_
