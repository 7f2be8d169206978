// SqliteSecretStore's change feed and file following: the watch thread that polls the
// change_log for other processes' writes, and notices when the path names another file (a
// backup restored by rename) and reopens every connection on it. See sqlite_secret_store.h.
#include "resolver/sqlite/sqlite_secret_store.h"

#include <sqlite3.h>

#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "resolver/sqlite/sqlite_connection.h"

namespace secret_resolver {
namespace {

// Rows read per change_log query; more are read in further queries of the same poll.
constexpr int kWatchBatch = 500;

// Reads new change_log entries into `out`. Skips the query when PRAGMA data_version says no
// other connection has committed since the last successful poll.
absl::Status PollChanges(sqlite3* db, const std::string& path, int64_t& data_version,
                         int64_t& last_seq, std::vector<SecretChange>& out) {
  SqliteStatement version_query(db, path, "PRAGMA data_version");
  absl::StatusOr<bool> row = version_query.Step("polling for changes");
  if (!row.ok()) return row.status();
  const int64_t version = version_query.Int(0);
  if (version == data_version) return absl::OkStatus();

  int rows = kWatchBatch;
  while (rows == kWatchBatch) {
    SqliteStatement changes(db, path,
                      "SELECT seq, stack, name FROM change_log WHERE seq > ?1 ORDER BY seq"
                      " LIMIT ?2");
    changes.BindInt(last_seq).BindInt(kWatchBatch);
    rows = 0;
    while (true) {
      absl::StatusOr<bool> next = changes.Step("reading the change log");
      if (!next.ok()) return next.status();
      if (!*next) break;
      out.push_back(SecretChange::Of(changes.Text(1), changes.Text(2)));
      last_seq = changes.Int(0);
      ++rows;
    }
  }
  if (out.empty()) {
    // The log never shrinks; if it did, the file was rebuilt and anything may have changed.
    SqliteStatement max_query(db, path, "SELECT COALESCE(MAX(seq), 0) FROM change_log");
    absl::StatusOr<bool> max_row = max_query.Step("reading the change log");
    if (!max_row.ok()) return max_row.status();
    if (max_query.Int(0) < last_seq) {
      out.push_back(SecretChange::Resync(
          absl::StrCat("sqlite store ", path, ": the change log shrank (the file was rebuilt)")));
      last_seq = max_query.Int(0);
    }
  }
  data_version = version;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> SqliteSecretStore::NewestSeq(sqlite3* db) {
  SqliteStatement max_query(db, path_, "SELECT COALESCE(MAX(seq), 0) FROM change_log");
  absl::StatusOr<bool> row = max_query.Step("reading the change log");
  if (!row.ok()) {
    NoteIfCorrupt(max_query, row.status());
    return row.status();
  }
  return max_query.Int(0);
}

absl::Status SqliteSecretStore::Watch(ChangeListener listener) {
  absl::ReaderMutexLock files(&files_mu_);
  std::lock_guard<std::mutex> lock(watch_mu_);
  if (!watch_thread_.joinable()) {
    absl::StatusOr<sqlite3*> db = Connect();
    if (!db.ok()) return db.status();
    // Start after the newest committed change: only later ones are reported.
    absl::StatusOr<int64_t> last_seq = NewestSeq(*db);
    if (!last_seq.ok()) {
      sqlite3_close_v2(*db);
      return last_seq.status();
    }
    watch_thread_ = std::thread(&SqliteSecretStore::WatchLoop, this, *db, *last_seq);
  }
  listeners_.push_back(std::move(listener));
  return absl::OkStatus();
}

absl::StatusOr<std::string> SqliteSecretStore::FollowFile(sqlite3** watch_db) {
  absl::StatusOr<SqliteFileId> now = StatOwnerOnlySqliteFile(path_);
  if (absl::IsNotFound(now.status())) {
    return absl::UnavailableError(absl::StrCat(
        Where(), ": the file no longer exists; still reading the deleted copy until a file is "
                 "put back at the path"));
  }
  if (!now.ok() && absl::IsFailedPrecondition(now.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        now.status().message(), "; the file at the path was replaced, and until it is "
                                "owner-only the store keeps reading the one it has open"));
  }
  if (!now.ok()) return now.status();
  if (*now == file_ && writer_ != nullptr && *watch_db != nullptr) return std::string();

  absl::WriterMutexLock files(&files_mu_);
  if (writer_ != nullptr) {
    // Our -wal and -shm files go by name, so the new file would take them for its own and read
    // the old file's frames as its pages. Fold the log into the old file and empty it first.
    const int rc = sqlite3_wal_checkpoint_v2(writer_, nullptr, SQLITE_CHECKPOINT_TRUNCATE,
                                             nullptr, nullptr);
    if (rc != SQLITE_OK) {
      return SqliteError(path_, writer_, rc,
                         "emptying the replaced file's write-ahead log before reopening");
    }
  }
  if (*watch_db != nullptr) sqlite3_close_v2(*watch_db);
  *watch_db = nullptr;
  readers_.CloseAll();
  {
    std::lock_guard<std::mutex> lock(writer_mu_);
    if (writer_ != nullptr) sqlite3_close_v2(writer_);
    writer_ = nullptr;
    absl::StatusOr<sqlite3*> writer = OpenWriter(path_, options_, clock_);
    if (!writer.ok()) {
      NoteIfCorrupt(writer.status());
      return writer.status();
    }
    writer_ = *writer;
  }
  const SqliteFileId old = file_;
  file_ = *now;
  {
    // Damage seen in the old file says nothing about the new one.
    std::lock_guard<std::mutex> lock(corruption_mu_);
    corruption_ = absl::OkStatus();
  }
  absl::StatusOr<sqlite3*> db = Connect();
  if (!db.ok()) return db.status();
  *watch_db = *db;
  return absl::StrCat(Where(), ": the file was replaced (inode ", old.inode, " -> ", now->inode,
                      "); reopened it, changes made meanwhile are not known");
}

void SqliteSecretStore::WatchLoop(sqlite3* db, int64_t last_seq) {
  int64_t data_version = -1;  // PRAGMA data_version is never negative: the first poll queries
  bool lost = false;          // feed_lost sent; listeners are owed a resync once polling works
  std::string resync_detail;  // why the owed resync
  std::unique_lock<std::mutex> lock(watch_mu_);
  while (true) {
    watch_cv_.wait_for(lock, absl::ToChronoMilliseconds(options_.watch_poll_interval),
                       [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    std::vector<SecretChange> changes;
    absl::StatusOr<std::string> reopened = FollowFile(&db);
    absl::Status status = reopened.status();
    const bool replaced = reopened.ok() && !reopened->empty();
    if (replaced) {
      // Another file: its change log has its own numbers, and anything may differ.
      resync_detail = *reopened;
      data_version = -1;
      absl::StatusOr<int64_t> newest = NewestSeq(db);
      status = newest.status();
      if (newest.ok()) last_seq = *newest;
    }
    if (status.ok()) {
      absl::ReaderMutexLock files(&files_mu_);
      status = PollChanges(db, path_, data_version, last_seq, changes);
      if (absl::IsDataLoss(status)) LatchCorruption(status);
    }
    if (status.ok()) {
      if (lost || replaced) {
        changes.insert(changes.begin(), SecretChange::Resync(resync_detail));
      }
      lost = false;
    } else if (!lost) {
      lost = true;
      if (!replaced) {
        resync_detail = absl::StrCat(Where(), ": polling for changes works again; changes made "
                                              "meanwhile are not known");
      }
      changes = {SecretChange::FeedLost(std::string(status.message()))};
    } else {
      changes.clear();
    }
    lock.lock();
    if (changes.empty()) continue;
    std::vector<ChangeListener> listeners = listeners_;
    lock.unlock();
    for (const SecretChange& change : changes) {
      for (const auto& listener : listeners) listener(change);
    }
    lock.lock();
  }
  lock.unlock();
  if (db != nullptr) sqlite3_close_v2(db);
}

}  // namespace secret_resolver
