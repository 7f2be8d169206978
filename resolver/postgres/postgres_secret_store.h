// PostgresSecretStore: the SecretStore shared by every sidecar of a cluster, in one PostgreSQL
// database (contract.md section 6; schema, formats, locks and notifications in
// docs/storage-format.md).
//
// Same tables and crypto as the SQLite store: values sealed with resolver/crypto/envelope.h
// under a per-stack data key, which the active KEK of the KeyRing wraps when the stack's first
// secret is written. Connections come from a bounded PostgresPool; the DSN, TLS included, is
// passed to libpq as it is.
//
// Writes. Every Put and Delete is one READ COMMITTED transaction that first takes
// pg_advisory_xact_lock(kSecretLockClass, hashtext(stack || '/' || name)), so the writers of one
// secret, in any process, run one at a time: versions strictly increase and no update is lost.
// A stack's data key is created in the first Put's transaction; concurrent creators meet on the
// unique index of active keys (INSERT ... ON CONFLICT DO NOTHING, then read the winner's key).
// The transaction ends with pg_notify(channel, {"stack":...,"name":...}), so listeners hear of a
// change exactly when it commits. Delete deactivates the newest version and keeps every row;
// change_log records who did what and when.
//
// Failures. A statement that fails because the connection broke (server restart, network
// failure, terminated backend) is retried once, on a fresh connection, when that is safe: always
// for reads, and for writes unless the connection broke while committing (the outcome is then
// unknown and the write returns UNAVAILABLE saying so). Waiting for a connection is bounded by
// options.timeouts.connect and every statement by options.timeouts.statement; after the latter
// its connection is closed (which rolls the transaction back) and the operation fails without a
// retry.
//
// Watch: a PostgresListener on a dedicated connection LISTENs on options.channel. Each
// notification becomes a SecretChange. When the listening connection is lost (or a reconnection
// fails) listeners get one SecretChange with feed_lost = true; once the listener has reconnected
// and LISTEN is in effect again (changes may have been missed meanwhile) they get one with
// resync = true.
//
// Thread safety: all methods are safe to call concurrently. The KeyRing must outlive the store
// and must not be modified while the store exists.
#ifndef SECRET_RESOLVER_RESOLVER_POSTGRES_POSTGRES_SECRET_STORE_H_
#define SECRET_RESOLVER_RESOLVER_POSTGRES_POSTGRES_SECRET_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/clock.h"
#include "resolver/crypto/data_key_cache.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/postgres/postgres_connection.h"
#include "resolver/postgres/postgres_listener.h"
#include "resolver/postgres/postgres_pool.h"
#include "resolver/postgres/postgres_session.h"
#include "resolver/postgres/postgres_store_options.h"
#include "resolver/secret_store.h"

namespace secret_resolver {

class PostgresSecretStore : public EncryptedSecretStore {
 public:
  // Creates the pool for `pool_options`, connects, and applies any missing schema migrations
  // in one transaction under an advisory lock, so several processes may open the same database
  // at once. `key_ring` must hold at least one KEK and outlive the store.
  // Errors: INVALID_ARGUMENT (malformed DSN, max_connections < 1, bad channel or timeouts),
  // FAILED_PRECONDITION (no KEK loaded; a non-local server without a verified certificate and
  // without options.allow_insecure, see CheckPostgresTransport; schema newer than this binary;
  // the database refuses the DDL), UNAVAILABLE (the server cannot be reached or rejects us; the message never holds the
  // password), INTERNAL.
  static absl::StatusOr<std::unique_ptr<PostgresSecretStore>> Open(
      PostgresPoolOptions pool_options, const KeyRing* key_ring,
      PostgresStoreOptions options = {});

  PostgresSecretStore(const PostgresSecretStore&) = delete;
  PostgresSecretStore& operator=(const PostgresSecretStore&) = delete;

  // Stops the listener (waiting for a running listener callback to return) and closes the
  // pool's idle connections. Must not be called from a listener.
  ~PostgresSecretStore() override;

  // SecretStore. Besides the interface's errors:
  //   - INVALID_ARGUMENT from Put and Delete also for an actor or description that PostgreSQL
  //     text cannot hold (a NUL byte, invalid UTF-8), naming the field;
  //   - DATA_LOSS for a damaged row (ciphertext, wrapped key, decrypter list, missing data key);
  //   - FAILED_PRECONDITION from Get and Put when the KEK that wraps the stack's data key is not
  //     loaded or is the wrong key (the message names the KEK id);
  //   - UNAVAILABLE when the server is unreachable, a connection broke twice, a statement
  //     outlived timeouts.statement, or no connection came (free or new) within
  //     timeouts.connect;
  //   - ABORTED when PostgreSQL gave up on the transaction (deadlock, serialization failure,
  //     a constraint violated by a writer that does not follow the locking protocol): retry.
  absl::StatusOr<StoredSecret> Get(absl::string_view stack, absl::string_view name) override;
  absl::StatusOr<StoredSecret> GetVersion(absl::string_view stack, absl::string_view name,
                                          int64_t version) override;
  absl::StatusOr<SecretMetadata> GetMetadata(absl::string_view stack,
                                             absl::string_view name) override;
  absl::StatusOr<int64_t> Put(const SecretWrite& write) override;
  absl::Status Delete(absl::string_view stack, absl::string_view name,
                      absl::string_view actor) override;
  absl::StatusOr<std::vector<SecretMetadata>> List(absl::string_view stack) override;

  // Adds `listener`. The first call starts the listener and returns once LISTEN is in effect,
  // so every change committed after Watch returns is reported (within about a second, by any
  // process), in commit order. When the listening connection is lost, listeners get one
  // SecretChange with feed_lost = true (its detail says why; a peer that vanished without
  // closing the connection is noticed only by the heartbeat); after it is re-established, one
  // with resync = true. A payload that cannot be parsed is
  // reported as resync = true too. Listeners run one at a time on the listener's thread without
  // store locks held (they may call the store, but must not destroy it). Errors: UNAVAILABLE
  // (the first LISTEN did not take effect within watch_connect_timeout; the listener is then
  // not added, and a later Watch tries again).
  absl::Status Watch(ChangeListener listener) override;

  // SELECT 1 on a pooled connection, bounded by the store's connect and statement timeouts. Errors: UNAVAILABLE (as Get).
  absl::Status CheckHealth() override;

  // EncryptedSecretStore: each in one transaction; the rows it rewrites are locked (SELECT ...
  // FOR UPDATE) until the commit.
  absl::StatusOr<int64_t> RewrapDataKeys(absl::string_view kek_id) override;
  absl::StatusOr<int64_t> ResealValues() override;

  // What the store connects to, without secrets (PostgresDsn::description()).
  const std::string& description() const { return dsn_.description(); }

 private:
  PostgresSecretStore(PostgresDsn dsn, std::string dsn_text, std::unique_ptr<PostgresPool> pool,
                      const KeyRing* key_ring, PostgresStoreOptions options);

  // WithPostgresSession and InPostgresTransaction on this store's pool.
  absl::Status WithSession(const std::function<absl::Status(PostgresSession&)>& body);
  absl::Status InTransaction(const std::function<absl::Status(PostgresSession&)>& body);

  // A kSecretMetadataSelect row, as read inside a session (decoded once the connection is
  // back in the pool).
  struct MetadataRow {
    std::string name;
    int64_t version;
    std::string decrypters;
    std::string description;
    int64_t created_at_us;
    std::string created_by;
  };
  static std::vector<MetadataRow> MetadataRows(const PostgresResult& result);
  // The metadata of `row` of `stack`. Errors: DATA_LOSS (a damaged decrypter list).
  absl::StatusOr<SecretMetadata> MetadataOf(absl::string_view stack, MetadataRow row) const;

  void DispatchPayload(absl::string_view payload);
  void DispatchResync();
  void DispatchFeedLost(const absl::Status& error);
  void Dispatch(const SecretChange& change);

  int64_t NowMicros() const;
  // PostgresStoreName and PostgresStoreMessage for this store's DSN.
  std::string Where() const;
  std::string Message(absl::string_view what, absl::string_view detail) const;

  const PostgresDsn dsn_;
  const std::string dsn_text_;  // holds the password, if any: never printed
  const std::unique_ptr<PostgresPool> pool_;
  const KeyRing* const key_ring_;
  const PostgresStoreOptions options_;
  Clock* const clock_;
  DataKeyCache data_keys_;  // what Get and GetVersion unwrap

  std::mutex watch_start_mu_;                  // serializes Watch calls
  std::unique_ptr<PostgresListener> listener_;  // guarded by watch_start_mu_

  std::mutex listeners_mu_;
  // Replaced, never changed in place, so the listener thread can iterate a snapshot.
  std::shared_ptr<const std::vector<ChangeListener>> listeners_;  // guarded by listeners_mu_
  bool first_listen_seen_ = false;                                // guarded by listeners_mu_
  bool feed_lost_ = false;  // feed_lost sent, resync not yet; guarded by listeners_mu_
  absl::Status last_listener_error_;                              // guarded by listeners_mu_
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_POSTGRES_POSTGRES_SECRET_STORE_H_
