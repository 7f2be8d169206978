// Opening the configured SecretStore from a store URL (CONTRACT.md section 6):
//
//   sqlite:PATH     the embedded SQLite store in file PATH (created if missing)
//   postgres:DSN    the shared PostgreSQL store; DSN is a libpq connection string (key=value
//                   pairs or a postgresql:// URI). `postgres:` alone takes the DSN from
//                   $SECRET_RESOLVER_POSTGRES_DSN, which keeps a password off command lines.
//
// The backend is chosen here, in one switch over the URL scheme; the sidecar and secretctl both
// open their store through OpenSecretStore. No message returned from here quotes a DSN (it may
// hold a password).
//
// Thread safety: pure functions; the stores they return are safe for concurrent use.
#ifndef SECRET_RESOLVER_RESOLVER_STORE_STORE_URL_H_
#define SECRET_RESOLVER_RESOLVER_STORE_STORE_URL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/postgres/postgres_secret_store.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"

namespace secret_resolver {

enum class StoreKind { kSqlite, kPostgres };

// A store URL split into its scheme and the rest.
struct StoreUrl {
  StoreKind kind = StoreKind::kSqlite;
  std::string location;  // the SQLite path, or the DSN (may hold a password: never print it)
};

// Per-backend settings; each store reads only its own.
struct StoreOpenOptions {
  SqliteStoreOptions sqlite;
  PostgresStoreOptions postgres;
  // Most PostgreSQL connections the store holds at once.
  int postgres_max_connections = 8;
  // Shown in pg_stat_activity unless the DSN sets application_name.
  std::string postgres_application_name = "secret-resolver";
};

// Splits `url`. Errors: INVALID_ARGUMENT when it has no scheme, an unknown scheme (the message
// names the scheme, never the rest), or an empty SQLite path.
absl::StatusOr<StoreUrl> ParseStoreUrl(absl::string_view url);

// Opens (creating and migrating as needed) the store `url` names. `key_ring` must hold at least
// one KEK and outlive the store. Errors: INVALID_ARGUMENT (bad URL or DSN), and those of
// SqliteSecretStore::Open or PostgresSecretStore::Open: FAILED_PRECONDITION (no KEK; schema newer
// than this binary; no DSN in the URL nor in $SECRET_RESOLVER_POSTGRES_DSN), DATA_LOSS (a damaged
// SQLite file), UNAVAILABLE (cannot open the file or reach the server), INTERNAL.
absl::StatusOr<std::unique_ptr<SecretStore>> OpenSecretStore(absl::string_view url,
                                                             const KeyRing* key_ring,
                                                             StoreOpenOptions options = {});

// A description of `url` that is safe to print: `sqlite:PATH`, or `postgres:` with the host,
// port, database, user and sslmode of the DSN but never its password. An unparsable URL yields
// "(invalid store URL)".
std::string DescribeStoreUrl(absl::string_view url);

// Rewraps every data key of `store` (one that OpenSecretStore returned) with KEK `kek_id`,
// without touching any value, and returns how many keys were rewrapped. Errors: as
// SqliteSecretStore::RewrapDataKeys and PostgresSecretStore::RewrapDataKeys (FAILED_PRECONDITION
// naming a KEK id that is missing or wrong, DATA_LOSS, UNAVAILABLE); UNIMPLEMENTED for any other
// SecretStore.
absl::StatusOr<int64_t> RewrapDataKeys(SecretStore& store, absl::string_view kek_id);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_STORE_STORE_URL_H_
