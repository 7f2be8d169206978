// What a PostgresSecretStore is opened with besides the pool: the NOTIFY channel, the timeouts
// and backoffs, the clock, and whether an unverified connection to another machine is allowed;
// and the checks Open makes of them before it connects.
//
// Thread safety: PostgresStoreOptions is a value; the functions keep no state.
#ifndef SECRET_RESOLVER_RESOLVER_POSTGRES_POSTGRES_STORE_OPTIONS_H_
#define SECRET_RESOLVER_RESOLVER_POSTGRES_POSTGRES_STORE_OPTIONS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "resolver/clock.h"
#include "resolver/crypto/data_key_cache.h"
#include "resolver/postgres/postgres_connection.h"
#include "resolver/postgres/postgres_session.h"

namespace secret_resolver {

// The channel the store NOTIFYs and LISTENs on, unless options say otherwise.
inline constexpr char kDefaultChangeChannel[] = "secret_resolver_changes";

struct PostgresStoreOptions {
  // The NOTIFY channel (1-63 bytes, case-sensitive). Every process sharing the database must use
  // the same one; stores in separate schemas of one database should use separate channels.
  std::string channel = kDefaultChangeChannel;
  // Bounds on one operation's wait for a connection (connect) and for each statement's answer
  // (statement). The defaults stay well below callers' usual 5 s deadline, so that a hung
  // server is reported as UNAVAILABLE while callers still wait.
  PostgresTimeouts timeouts;
  // Bound on Watch's first LISTEN (connecting included).
  absl::Duration watch_connect_timeout = absl::Seconds(10);
  // The listener's reconnection backoff: starts at the first, doubles up to the second.
  absl::Duration watch_initial_backoff = absl::Milliseconds(100);
  absl::Duration watch_max_backoff = absl::Seconds(10);
  // Heartbeats on the listening connection; see PostgresListenerOptions.
  absl::Duration watch_heartbeat_interval = absl::Seconds(30);
  absl::Duration watch_heartbeat_timeout = absl::Seconds(10);
  // Timestamps of rows and change_log entries. Null: Clock::Real().
  Clock* clock = nullptr;
  // Allow a connection to another machine that does not verify the server's certificate
  // (CheckPostgresTransport); off, such a DSN is refused.
  bool allow_insecure = false;
  // Unwrapped data keys kept for reads (resolver/crypto/data_key_cache.h); 0 unwraps on every
  // read.
  size_t data_key_cache_capacity = kDefaultDataKeyCacheCapacity;
};

// Returns OK if `options` can be used. Errors: INVALID_ARGUMENT naming the field, when the
// channel is empty, longer than 63 bytes or holds a NUL, a timeout or backoff is not positive,
// or the heartbeat interval is negative.
absl::Status ValidatePostgresStoreOptions(const PostgresStoreOptions& options);

// Returns OK if the store may connect to `dsn`: options.allow_insecure is set, or
// CheckPostgresTransport accepts it. Errors: FAILED_PRECONDITION, naming the store by the DSN's
// description and saying how to fix it.
absl::Status CheckPostgresStoreTransport(const PostgresDsn& dsn,
                                         const PostgresStoreOptions& options);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_POSTGRES_POSTGRES_STORE_OPTIONS_H_
