// Running the SqliteSecretStore's SQL: opening a connection (extended result codes, busy
// timeout, synchronous = FULL), WAL mode, schema migrations, prepared statements bound in order,
// write transactions, and the SQLite-result-code-to-status mapping (CONTRACT.md section 6;
// schema in docs/storage-format.md).
//
// Messages read "sqlite store PATH: WHAT: SQLite's message" and never hold a value: values are
// bound as sealed blobs only.
//
// Thread safety: a connection (opened without SQLite's mutex) and its statements belong to one
// thread at a time; the functions keep no state of their own.
#ifndef SECRET_RESOLVER_RESOLVER_SQLITE_SQLITE_CONNECTION_H_
#define SECRET_RESOLVER_RESOLVER_SQLITE_SQLITE_CONNECTION_H_

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace secret_resolver {

// The status for SQLite result code `rc` of an operation `what` on the store at `path`, with
// the connection's message (or SQLite's text for `rc` when `db` is null): DATA_LOSS for a
// corrupt file or one that is not a database; UNAVAILABLE for busy, locked, I/O, cannot open,
// full, read-only, protocol, out of memory and permission errors; INTERNAL otherwise.
absl::Status SqliteError(const std::string& path, sqlite3* db, int rc, absl::string_view what);

// A prepared statement whose parameters are bound in order (?1, ?2, ...).
class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, const std::string& path, const char* sql) : db_(db), path_(path) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~SqliteStatement() { sqlite3_finalize(stmt_); }
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  SqliteStatement& BindText(absl::string_view text) {
    // A null pointer would bind SQL NULL, so an empty string gets a real one.
    return Bound(sqlite3_bind_text(stmt_, ++index_, text.empty() ? "" : text.data(),
                                   static_cast<int>(text.size()), SQLITE_TRANSIENT));
  }
  SqliteStatement& BindBlob(absl::string_view blob) {
    return Bound(sqlite3_bind_blob(stmt_, ++index_, blob.empty() ? "" : blob.data(),
                                   static_cast<int>(blob.size()), SQLITE_TRANSIENT));
  }
  SqliteStatement& BindInt(int64_t value) {
    return Bound(sqlite3_bind_int64(stmt_, ++index_, value));
  }

  // Returns true when a row is ready, false when the statement is done.
  absl::StatusOr<bool> Step(absl::string_view what) {
    if (rc_ != SQLITE_OK) return SqliteError(path_, db_, rc_, what);
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    rc_ = rc;
    return SqliteError(path_, db_, rc, what);
  }

  // Runs a statement that returns no rows.
  absl::Status Run(absl::string_view what) {
    absl::StatusOr<bool> row = Step(what);
    return row.ok() ? absl::OkStatus() : row.status();
  }

  // Whether preparing or stepping failed because the file is damaged or not a database
  // (SQLITE_CORRUPT, SQLITE_NOTADB), as opposed to a busy file or a failed disk.
  bool corrupt() const {
    return (rc_ & 0xff) == SQLITE_CORRUPT || (rc_ & 0xff) == SQLITE_NOTADB;
  }

  int64_t Int(int column) { return sqlite3_column_int64(stmt_, column); }
  bool IsNull(int column) { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string Text(int column) {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    if (text == nullptr) return std::string();
    return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt_, column));
  }
  std::string Blob(int column) {
    const void* blob = sqlite3_column_blob(stmt_, column);
    if (blob == nullptr) return std::string();
    return std::string(static_cast<const char*>(blob), sqlite3_column_bytes(stmt_, column));
  }

 private:
  SqliteStatement& Bound(int rc) {
    if (rc_ == SQLITE_OK) rc_ = rc;
    return *this;
  }

  sqlite3* const db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
  int index_ = 0;
};

// Which file a path names: its device and inode. A file replaced by rename has another.
struct SqliteFileId {
  uint64_t device = 0;
  uint64_t inode = 0;
  bool operator==(const SqliteFileId& other) const {
    return device == other.device && inode == other.inode;
  }
  bool operator!=(const SqliteFileId& other) const { return !(*this == other); }
};

// The file at `path` now, after checking that only its owner may read or write it (the file
// holds the wrapped keys and sealed values, and its -wal and -shm files inherit its mode).
// Errors, naming the path: NOT_FOUND (no such file), FAILED_PRECONDITION (group or others have
// access; the message says `chmod 600 PATH`), UNAVAILABLE (stat failed otherwise).
absl::StatusOr<SqliteFileId> StatOwnerOnlySqliteFile(const std::string& path);

// Runs `sql` (one or more statements, no parameters). Errors: as SqliteError.
absl::Status SqliteExec(sqlite3* db, const std::string& path, const char* sql,
                        absl::string_view what);

// Runs `body` between BEGIN IMMEDIATE and COMMIT on `db`, so that the whole body holds the
// database's write lock (waiting up to the busy timeout for it); rolls back if anything fails.
// Returns what `body` returned; errors of BEGIN and COMMIT as SqliteError.
absl::Status InSqliteWriteTransaction(sqlite3* db, const std::string& path,
                                      const std::function<absl::Status()>& body);

// Opens the existing file at `path` read-write, with extended result codes, `busy_timeout` and
// synchronous = FULL (a commit survives a power cut). The caller closes it (sqlite3_close_v2).
// With `expected`, the path must still name that file once the connection has it open, checked
// before anything is read: a connection that read a file that replaced ours would take our
// -wal and -shm files (they go by name) for its own, and on closing fold our log's frames into
// it. Errors: UNAVAILABLE (the path names another file, or none); as SqliteError.
absl::StatusOr<sqlite3*> OpenSqliteConnection(const std::string& path, absl::Duration busy_timeout,
                                              const SqliteFileId* expected = nullptr);

// Switches the file to WAL mode. The switch needs a lock that another process opening the file
// at the same moment may hold, so SQLITE_BUSY is retried until `timeout`. Errors: UNAVAILABLE
// when the journal mode stays something else; as SqliteError.
absl::Status EnableSqliteWal(sqlite3* db, const std::string& path, absl::Duration timeout);

// Brings the schema up to kLatestSchemaVersion, recording `now_us` for each migration. All in
// one write transaction, so a second process opening the file at the same time waits and then
// finds nothing to do. Errors: FAILED_PRECONDITION when the file's schema is newer than this
// binary; as SqliteError.
absl::Status MigrateSqliteSchema(sqlite3* db, const std::string& path, int64_t now_us);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_SQLITE_SQLITE_CONNECTION_H_
