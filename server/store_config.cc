#include "server/store_config.h"

#include <google/protobuf/duration.pb.h>

#include "absl/time/time.h"

namespace secret_resolver {
namespace {

absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

StoreConfig StoreConfigFromProto(const secretresolver::config::v1::Store& store) {
  if (store.has_upstream()) {
    const secretresolver::config::v1::UpstreamStore& proto = store.upstream();
    UpstreamStoreConfig upstream;
    upstream.options.address = proto.address();
    upstream.options.ca_file = proto.ca_file();
    upstream.options.cert_file = proto.cert_file();
    upstream.options.key_file = proto.key_file();
    upstream.options.server_name = proto.server_name();
    upstream.options.allow_insecure = proto.allow_insecure();
    upstream.options.change_stream = proto.change_stream();
    if (ToDuration(proto.reload_interval()) > absl::ZeroDuration()) {
      upstream.options.reload_interval = ToDuration(proto.reload_interval());
    }
    if (ToDuration(proto.timeout()) > absl::ZeroDuration()) {
      upstream.options.timeout = ToDuration(proto.timeout());
    }
    return StoreConfig{std::move(upstream)};
  }
  if (store.has_postgres()) {
    const secretresolver::config::v1::PostgresStore& proto = store.postgres();
    PostgresStoreConfig postgres;
    postgres.dsn = proto.dsn();
    postgres.dsn_env = proto.dsn_env();
    postgres.options.allow_insecure = proto.allow_insecure();
    if (ToDuration(proto.connect_timeout()) > absl::ZeroDuration()) {
      postgres.options.timeouts.connect = ToDuration(proto.connect_timeout());
    }
    if (ToDuration(proto.statement_timeout()) > absl::ZeroDuration()) {
      postgres.options.timeouts.statement = ToDuration(proto.statement_timeout());
    }
    if (proto.max_connections() > 0) {
      postgres.max_connections = static_cast<int>(proto.max_connections());
    }
    return StoreConfig{std::move(postgres)};
  }
  SqliteStoreConfig sqlite;
  sqlite.path = store.sqlite().path();
  if (ToDuration(store.sqlite().busy_timeout()) > absl::ZeroDuration()) {
    sqlite.options.busy_timeout = ToDuration(store.sqlite().busy_timeout());
  }
  return StoreConfig{std::move(sqlite)};
}

}  // namespace secret_resolver
