#include "resolver/sqlite/sqlite_connection.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "resolver/sqlite/schema.h"
#include "resolver/storage_format/migration.h"

namespace secret_resolver {
namespace {

absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
    case SQLITE_NOMEM:
    case SQLITE_PERM:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

absl::Status SqliteError(const std::string& path, sqlite3* db, int rc, absl::string_view what) {
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return absl::Status(CodeFor(rc), absl::StrCat("sqlite store ", path, ": ", what, ": ", detail));
}

absl::StatusOr<SqliteFileId> StatOwnerOnlySqliteFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    const int error = errno;
    const std::string message =
        absl::StrCat("sqlite store ", path, ": cannot stat: ", std::strerror(error));
    if (error == ENOENT) return absl::NotFoundError(message);
    return absl::UnavailableError(message);
  }
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sqlite store ", path, ": mode ", absl::StrFormat("%04o", st.st_mode & 0777),
        " lets group or others read or write the secrets file; make it owner-only with `chmod 600 ",
        path, "`"));
  }
  return SqliteFileId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

absl::Status SqliteExec(sqlite3* db, const std::string& path, const char* sql,
                        absl::string_view what) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(path, db, rc, what);
  return absl::OkStatus();
}

absl::Status InSqliteWriteTransaction(sqlite3* db, const std::string& path,
                                      const std::function<absl::Status()>& body) {
  if (absl::Status s = SqliteExec(db, path, "BEGIN IMMEDIATE", "starting a write transaction");
      !s.ok()) {
    return s;
  }
  absl::Status status = body();
  if (status.ok()) status = SqliteExec(db, path, "COMMIT", "committing");
  if (!status.ok() && !sqlite3_get_autocommit(db)) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return status;
}

absl::StatusOr<sqlite3*> OpenSqliteConnection(const std::string& path,
                                              absl::Duration busy_timeout,
                                              const SqliteFileId* expected) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteError(path, db, rc, "opening");
    sqlite3_close_v2(db);
    return status;
  }
  if (expected != nullptr) {
    // sqlite3_open_v2 has opened the file and read nothing; the pragmas below read the schema.
    // If the path still names `expected` now, the descriptor it opened is that file.
    struct stat st;
    if (stat(path.c_str(), &st) != 0 ||
        SqliteFileId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)} !=
            *expected) {
      sqlite3_close_v2(db);
      return absl::UnavailableError(absl::StrCat(
          "sqlite store ", path, ": the file was replaced or removed; reopening"));
    }
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, static_cast<int>(absl::ToInt64Milliseconds(busy_timeout)));
  // FULL: a commit survives a power cut, not only a crash of this process. Writes are rare.
  if (absl::Status s = SqliteExec(db, path, "PRAGMA synchronous = FULL", "configuring"); !s.ok()) {
    sqlite3_close_v2(db);
    return s;
  }
  return db;
}

absl::Status EnableSqliteWal(sqlite3* db, const std::string& path, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    SqliteStatement pragma(db, path, "PRAGMA journal_mode = WAL");
    absl::StatusOr<bool> row = pragma.Step("switching to WAL mode");
    if (row.ok()) {
      const std::string mode = *row ? pragma.Text(0) : std::string();
      if (mode == "wal") return absl::OkStatus();
      return absl::UnavailableError(absl::StrCat(
          "sqlite store ", path, ": cannot use WAL mode (journal mode stays \"", mode, "\")"));
    }
    const bool busy = (sqlite3_extended_errcode(db) & 0xff) == SQLITE_BUSY;
    if (!busy || absl::Now() >= deadline) return row.status();
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::Status MigrateSqliteSchema(sqlite3* db, const std::string& path, int64_t now_us) {
  return InSqliteWriteTransaction(db, path, [&]() -> absl::Status {
    if (absl::Status s = SqliteExec(db, path, kSchemaVersionTableDdl, "creating schema_version");
        !s.ok()) {
      return s;
    }
    SqliteStatement current_query(db, path, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
    absl::StatusOr<bool> row = current_query.Step("reading the schema version");
    if (!row.ok()) return row.status();
    const int64_t current = current_query.Int(0);
    if (current > kLatestSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sqlite store ", path, ": schema version ", current,
          " is newer than this binary supports (", kLatestSchemaVersion, "); upgrade it"));
    }
    for (const Migration& migration : SqliteMigrations()) {
      if (migration.version <= current) continue;
      const std::string what = absl::StrCat("applying schema migration ", migration.version);
      for (const char* sql : migration.statements) {
        if (absl::Status s = SqliteExec(db, path, sql, what); !s.ok()) return s;
      }
      SqliteStatement record(db, path,
                             "INSERT INTO schema_version (version, applied_at_us) VALUES (?1, ?2)");
      record.BindInt(migration.version).BindInt(now_us);
      if (absl::Status s = record.Run(what); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

}  // namespace secret_resolver
