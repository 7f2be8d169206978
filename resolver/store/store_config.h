// StoreConfig: which SecretStore to open, with every option it takes, and OpenSecretStore, the
// one switch over the backends (contract.md section 6).
//
// The sidecar builds a StoreConfig from its configuration file (server/store_config.h);
// secretctl parses one from a store URL (resolver/store/store_url.h). Both open their store
// here, so an option reaches the store the same way whoever sets it. No message returned from
// here quotes a DSN (it may hold a password).
//
// Thread safety: pure functions; the stores they return are safe for concurrent use.
#ifndef SECRET_RESOLVER_RESOLVER_STORE_STORE_CONFIG_H_
#define SECRET_RESOLVER_RESOLVER_STORE_STORE_CONFIG_H_

#include <memory>
#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/postgres/postgres_secret_store.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "resolver/upstream/upstream_secret_store.h"

namespace secret_resolver {

// The embedded SQLite store in one file.
struct SqliteStoreConfig {
  std::string path;  // created (mode 0600) if missing
  SqliteStoreOptions options;
};

// The shared PostgreSQL store.
struct PostgresStoreConfig {
  // libpq connection string (key=value pairs or a postgresql:// URI, TLS settings included). It
  // may hold a password: never print it.
  std::string dsn;
  // When dsn is empty: the name of the environment variable holding the connection string.
  std::string dsn_env;
  // Most connections the store's pool holds at once; at least 1.
  int max_connections = 8;
  // Shown in pg_stat_activity unless the DSN sets application_name.
  std::string application_name = "secret-resolver";
  PostgresStoreOptions options;
};

// A SecureValueDecrypter server (Grafana's secrets service or a central secret-resolver): no
// KEK, no writes; the sidecar only.
struct UpstreamStoreConfig {
  UpstreamStoreOptions options;
};

struct StoreConfig {
  std::variant<SqliteStoreConfig, PostgresStoreConfig, UpstreamStoreConfig> backend;
};

// Opens (creating and migrating as needed) the store `config` describes. `key_ring` must hold at
// least one KEK and outlive the store. Errors: FAILED_PRECONDITION (no KEK; schema newer than
// this binary; no DSN: dsn and dsn_env are empty, or the variable dsn_env names is unset or
// empty, the message naming it), INVALID_ARGUMENT (a malformed DSN, max_connections < 1, bad
// PostgreSQL options), DATA_LOSS (a damaged SQLite file), UNAVAILABLE (cannot open the file or
// reach the server), INTERNAL; each as SqliteSecretStore::Open or PostgresSecretStore::Open.
// An upstream config is FAILED_PRECONDITION here: it keeps no encrypted secrets (OpenStore).
absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> OpenSecretStore(const StoreConfig& config,
                                                                      const KeyRing* key_ring);

// Opens the store `config` describes for reading, as the sidecar does: the SQLite and PostgreSQL
// stores as OpenSecretStore (`key_ring` as there), the upstream store with
// UpstreamSecretStore::Open (`key_ring` unused and may be null), with that function's errors.
absl::StatusOr<std::unique_ptr<SecretStore>> OpenStore(const StoreConfig& config,
                                                       const KeyRing* key_ring);

// Whether the store `config` describes needs KEKs (every backend but upstream).
bool StoreNeedsKeys(const StoreConfig& config);

// A description of `config` that is safe to print: `sqlite:PATH`, `upstream:ADDRESS`, or
// `postgres:` with the host, port, database, user and sslmode of the DSN but never its password ("postgres:(no DSN)" or
// "postgres:(invalid DSN)" when there is none to describe).
std::string DescribeStoreConfig(const StoreConfig& config);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_STORE_STORE_CONFIG_H_
