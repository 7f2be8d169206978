// SqliteSecretStore: the embedded default SecretStore, one SQLite file in WAL mode
// (contract.md section 6; schema and formats in docs/storage-format.md).
//
// Values are sealed with the envelope in resolver/crypto/envelope.h under a per-stack data key,
// which the active KEK of the KeyRing wraps when the stack's first secret is written. Every Put
// writes a new version in one BEGIN IMMEDIATE transaction, so versions strictly increase and no
// update is lost, also with several processes writing the same file. Delete deactivates the
// newest version and keeps every row; the change_log table records who did what and when.
//
// Other processes' writes are seen through Watch: a store-owned thread polls the change_log
// (skipping idle polls with PRAGMA data_version) every watch_poll_interval.
//
// A file replaced by rename (a backup restored with `mv` over the database) is noticed by that
// poll, which compares the path's device and inode with the open file's: the store folds its
// write-ahead log into the old file and empties it (the -wal and -shm files go by name, so the
// new file would otherwise read the old one's frames as its own), closes every connection,
// opens the new file (owner-only, as Open requires, and migrated) and tells listeners to
// resync. A removed file, or a replacement the store cannot open, is reported as feed_lost; the
// store keeps reading the file it has open, if any, until a usable file is at the path.
//
// Damage: a read that finds the file corrupt or not a database (SQLITE_CORRUPT, SQLITE_NOTADB)
// is latched, and CheckHealth reports DATA_LOSS until PRAGMA quick_check passes again or the
// file is replaced.
//
// Thread safety: all methods are safe to call concurrently. Writes go through one connection
// under a mutex; reads use a pool of at most max_readers connections (WAL readers do not block
// the writer). Every operation holds a shared lock on the set of connections; reopening takes
// it exclusively, and a reopen that waits for it is not overtaken by later reads.
// The change feed and file following live in sqlite_secret_store_watch.cc.
// The KeyRing must outlive the store and must not be modified while the store exists.
#ifndef SECRET_RESOLVER_RESOLVER_SQLITE_SQLITE_SECRET_STORE_H_
#define SECRET_RESOLVER_RESOLVER_SQLITE_SQLITE_SECRET_STORE_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "resolver/clock.h"
#include "resolver/crypto/data_key_cache.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_connection.h"
#include "resolver/sqlite/sqlite_reader_pool.h"
#include "resolver/storage_format/secret_row.h"


namespace secret_resolver {

struct SqliteStoreOptions {
  // How long a write waits for another process's write transaction before UNAVAILABLE.
  absl::Duration busy_timeout = absl::Seconds(10);
  // How often Watch looks for changes.
  absl::Duration watch_poll_interval = absl::Milliseconds(100);
  // Read connections open at once, kept open for reuse (each caches up to 128 KiB of pages);
  // a read that finds them all in use waits for one. At least 1.
  int max_readers = 4;
  // Timestamps of rows and change_log entries. Null: Clock::Real().
  Clock* clock = nullptr;
  // Unwrapped data keys kept for reads (resolver/crypto/data_key_cache.h); 0 unwraps on every
  // read.
  size_t data_key_cache_capacity = kDefaultDataKeyCacheCapacity;
};

class SqliteSecretStore : public EncryptedSecretStore {
 public:
  // Opens or creates the store at `path` (a new file gets mode 0600), switches it to WAL mode
  // and applies any missing schema migrations. Safe when several processes open the same file
  // at once. `key_ring` must hold at least one KEK and outlive the store.
  // Errors, each naming the path: DATA_LOSS (not an SQLite database, or damaged),
  // FAILED_PRECONDITION (no KEK loaded; schema newer than this binary; an existing file whose
  // mode lets group or others in, the message saying `chmod 600 PATH`), UNAVAILABLE (cannot
  // open or lock the file), INTERNAL.
  static absl::StatusOr<std::unique_ptr<SqliteSecretStore>> Open(
      const std::string& path, const KeyRing* key_ring, SqliteStoreOptions options = {});

  SqliteSecretStore(const SqliteSecretStore&) = delete;
  SqliteSecretStore& operator=(const SqliteSecretStore&) = delete;

  // Stops the watch thread (waiting for a running listener to return) and closes the file.
  // Must not be called from a listener.
  ~SqliteSecretStore() override;

  // SecretStore. Besides the interface's errors: DATA_LOSS also for a damaged file or row;
  // FAILED_PRECONDITION from Get and Put when the KEK that wraps the stack's data key is not
  // loaded or is the wrong key (the message names the KEK id).
  absl::StatusOr<StoredSecret> Get(absl::string_view stack, absl::string_view name) override;
  absl::StatusOr<StoredSecret> GetVersion(absl::string_view stack, absl::string_view name,
                                          int64_t version) override;
  absl::StatusOr<SecretMetadata> GetMetadata(absl::string_view stack,
                                             absl::string_view name) override;
  absl::StatusOr<int64_t> Put(const SecretWrite& write) override;
  absl::Status Delete(absl::string_view stack, absl::string_view name,
                      absl::string_view actor) override;
  absl::StatusOr<std::vector<SecretMetadata>> List(absl::string_view stack) override;

  // Calls `listener` on a store-owned thread for each put or delete committed after this call,
  // by any process, within about watch_poll_interval, in commit order; with feed_lost = true
  // when polling starts failing or the file is removed (or replaced by one that cannot be
  // opened); and with resync = true once polling works again or after the file was replaced and
  // reopened. Listeners run one at a time, without store locks
  // held (they may call the store, but must not destroy it). Several listeners may be added;
  // none can be removed. Errors: as Open when the watch connection cannot be opened.
  absl::Status Watch(ChangeListener listener) override;

  // EncryptedSecretStore: each in one BEGIN IMMEDIATE transaction.
  absl::StatusOr<int64_t> RewrapDataKeys(absl::string_view kek_id) override;
  absl::StatusOr<int64_t> ResealValues() override;

  // A trivial read on a pooled connection; while damage is latched (see the file comment),
  // PRAGMA quick_check on a fresh connection first. Errors: DATA_LOSS (damaged, the message
  // saying what was seen), UNAVAILABLE (cannot open or read the file).
  absl::Status CheckHealth() override;

  const std::string& path() const { return path_; }

 private:
  struct DataKey;

  SqliteSecretStore(std::string path, const KeyRing* key_ring, SqliteStoreOptions options,
                    sqlite3* writer, SqliteFileId file);

  // Opens the read-write connection to `path` in WAL mode with the schema brought up to date.
  static absl::StatusOr<sqlite3*> OpenWriter(const std::string& path,
                                             const SqliteStoreOptions& options, Clock* clock);
  // Opens and configures a read-only connection to path_. Errors: UNAVAILABLE also when the
  // path no longer names file_ (the watch thread will reopen).
  absl::StatusOr<sqlite3*> Connect();
  // The kSecretRowSelect row that `where` selects, its parameters bound by `bind`, or nullopt;
  // the connection is back in the pool before the caller opens the row. Errors: as SqliteError.
  absl::StatusOr<std::optional<SecretRow>> ReadSecretRow(
      const std::string& where, const std::function<void(SqliteStatement&)>& bind,
      const char* what);

  // The stack's active data key, created (and wrapped by the active KEK) if it has none.
  // Runs inside a write transaction.
  absl::StatusOr<DataKey> ActiveDataKey(sqlite3* db, absl::string_view stack, int64_t now_us);

  void WatchLoop(sqlite3* db, int64_t last_seq);
  // On the watch thread: if path_ now names another file, reopens every connection on it
  // (`*watch_db` included) and returns what happened; an empty string when nothing changed.
  // Errors: UNAVAILABLE (the file is gone, or the old log cannot be emptied yet),
  // FAILED_PRECONDITION (the new file's mode), or the new file's errors as Open's.
  absl::StatusOr<std::string> FollowFile(sqlite3** watch_db);
  absl::StatusOr<int64_t> NewestSeq(sqlite3* db);
  // UNAVAILABLE while no writer is open (a replacement that could not be opened yet).
  absl::Status WriterReady() const;
  // Latch a read's failure as damage when SQLite said so.
  void NoteIfCorrupt(const absl::Status& status);
  void NoteIfCorrupt(const SqliteStatement& statement, const absl::Status& status);
  void LatchCorruption(const absl::Status& status);
  int64_t NowMicros() const;
  // "sqlite store PATH", naming the store in messages.
  std::string Where() const;

  const std::string path_;
  const KeyRing* const key_ring_;
  const SqliteStoreOptions options_;
  Clock* const clock_;
  DataKeyCache data_keys_;  // what Get and GetVersion unwrap

  // Shared by every operation while it uses connections; exclusive while FollowFile swaps
  // them. Taken before writer_mu_, the pool's lock and watch_mu_. An absl::Mutex because it
  // is fair to a waiting writer: once FollowFile waits, new readers queue behind it, so a
  // steady stream of reads cannot keep the swap out (std::shared_mutex prefers readers).
  absl::Mutex files_mu_;
  SqliteFileId file_;  // the open file; written under files_mu_ exclusive, by the watch thread

  std::mutex writer_mu_;
  sqlite3* writer_;  // guarded by writer_mu_; replaced under files_mu_ exclusive; null while
                     // a replacement cannot be opened

  SqliteReaderPool readers_;  // CloseAll by FollowFile under files_mu_ exclusive

  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool stopping_ = false;                                        // guarded by watch_mu_
  std::vector<ChangeListener> listeners_;  // guarded by watch_mu_
  std::thread watch_thread_;

  std::mutex corruption_mu_;
  absl::Status corruption_;  // the first read that found damage; guarded by corruption_mu_
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_SQLITE_SQLITE_SECRET_STORE_H_
