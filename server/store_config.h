// The configuration file's `store` section (proto secretresolver.config.v1.Store) turned into
// the resolver's typed StoreConfig (resolver/store/store_config.h), so that every store option
// the file sets reaches the store that OpenSecretStore opens.
//
// Thread safety: a pure function.
#ifndef SECRET_RESOLVER_SERVER_STORE_CONFIG_H_
#define SECRET_RESOLVER_SERVER_STORE_CONFIG_H_

#include "proto/secretresolver/config/v1/config.pb.h"
#include "resolver/store/store_config.h"

namespace secret_resolver {

// Maps `store` (already validated by LoadConfig: exactly one backend, and for PostgreSQL exactly
// one of dsn and dsn_env) field by field. A max_connections, timeout or reload_interval of 0
// keeps the store's default. upstream.change_stream is not part of it (the sidecar hooks the
// feed in).
// The KEK source is not part of it: the caller loads the KeyRing (resolver/store/kek_source.h).
StoreConfig StoreConfigFromProto(const secretresolver::config::v1::Store& store);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_STORE_CONFIG_H_
