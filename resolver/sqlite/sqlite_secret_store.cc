#include "resolver/sqlite/sqlite_secret_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "resolver/crypto/envelope.h"
#include "resolver/secret_validation.h"
#include "resolver/sqlite/sqlite_connection.h"
#include "resolver/storage_format/decrypter_list.h"
#include "resolver/storage_format/secret_row.h"
#include "resolver/storage_format/secret_write_validation.h"

namespace secret_resolver {
namespace {

// A kSecretRowSelect row: read by Get and ResealValues.
SecretRow RowAt(SqliteStatement& query) {
  SecretRow row;
  row.stack = query.Text(0);
  row.name = query.Text(1);
  row.version = query.Int(2);
  row.decrypters = query.Text(3);
  row.ciphertext = query.Blob(4);
  row.data_key_id = query.Text(5);
  if (!query.IsNull(6)) row.data_key = WrappedDataKey{query.Text(6), query.Blob(7), query.Blob(8)};
  return row;
}

// A kSecretMetadataSelect row of `stack`. `where` names the store in messages.
absl::StatusOr<SecretMetadata> MetadataRowAt(SqliteStatement& query, absl::string_view stack,
                                             absl::string_view where) {
  SecretMetadata meta;
  meta.stack = std::string(stack);
  meta.name = query.Text(0);
  meta.version = query.Int(1);
  absl::StatusOr<std::vector<std::string>> decrypters = DecodeDecrypterList(query.Text(2));
  if (!decrypters.ok()) {
    return absl::DataLossError(absl::StrCat(where, ": ", QuotedSecret(stack, meta.name), ": ",
                                            decrypters.status().message()));
  }
  meta.decrypters = *std::move(decrypters);
  meta.description = query.Text(3);
  // The active version is unchanged since it was written.
  meta.updated_at = absl::FromUnixMicros(query.Int(4));
  meta.updated_by = query.Text(5);
  return meta;
}

}  // namespace

absl::StatusOr<sqlite3*> SqliteSecretStore::OpenWriter(const std::string& path,
                                                      const SqliteStoreOptions& options,
                                                      Clock* clock) {
  absl::StatusOr<sqlite3*> writer = OpenSqliteConnection(path, options.busy_timeout);
  if (!writer.ok()) return writer.status();
  absl::Status status = EnableSqliteWal(*writer, path, options.busy_timeout);
  if (status.ok()) status = MigrateSqliteSchema(*writer, path, absl::ToUnixMicros(clock->Now()));
  if (!status.ok()) {
    sqlite3_close_v2(*writer);
    return status;
  }
  return writer;
}

struct SqliteSecretStore::DataKey {
  std::string id;
  SecretBytes key;
};

absl::StatusOr<std::unique_ptr<SqliteSecretStore>> SqliteSecretStore::Open(
    const std::string& path, const KeyRing* key_ring, SqliteStoreOptions options) {
  if (key_ring == nullptr || key_ring->empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("sqlite store ", path, ": no KEK loaded"));
  }
  // Create a new file owner-only; SQLite gives its -wal and -shm files the same mode. An
  // existing file that others may read is refused: it holds the wrapped keys and sealed values,
  // and its -wal and -shm files would inherit the mode.
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("sqlite store ", path, ": cannot open: ", std::strerror(errno)));
  }
  struct stat st;
  const bool stat_ok = fstat(fd, &st) == 0;
  const int stat_errno = errno;
  close(fd);
  if (!stat_ok) {
    return absl::UnavailableError(
        absl::StrCat("sqlite store ", path, ": cannot stat: ", std::strerror(stat_errno)));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sqlite store ", path, ": mode ", absl::StrFormat("%04o", st.st_mode & 0777),
        " lets group or others read or write the secrets file; make it owner-only with `chmod 600 ",
        path, "`"));
  }

  const SqliteFileId file{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  Clock* clock = options.clock != nullptr ? options.clock : Clock::Real();
  absl::StatusOr<sqlite3*> writer = OpenWriter(path, options, clock);
  if (!writer.ok()) return writer.status();
  return std::unique_ptr<SqliteSecretStore>(
      new SqliteSecretStore(path, key_ring, std::move(options), *writer, file));
}

SqliteSecretStore::SqliteSecretStore(std::string path, const KeyRing* key_ring,
                                     SqliteStoreOptions options, sqlite3* writer,
                                     SqliteFileId file)
    : path_(std::move(path)),
      key_ring_(key_ring),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      data_keys_(key_ring, options_.data_key_cache_capacity),
      file_(file),
      writer_(writer),
      readers_(options_.max_readers, [this] { return Connect(); }) {}

SqliteSecretStore::~SqliteSecretStore() {
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    stopping_ = true;
  }
  watch_cv_.notify_all();
  if (watch_thread_.joinable()) watch_thread_.join();
  if (writer_ != nullptr) sqlite3_close_v2(writer_);
}

std::string SqliteSecretStore::Where() const { return absl::StrCat("sqlite store ", path_); }

int64_t SqliteSecretStore::NowMicros() const { return absl::ToUnixMicros(clock_->Now()); }

absl::StatusOr<sqlite3*> SqliteSecretStore::Connect() {
  absl::StatusOr<sqlite3*> db = OpenSqliteConnection(path_, options_.busy_timeout, &file_);
  if (!db.ok()) {
    NoteIfCorrupt(db.status());
    return db.status();
  }
  // Readers never write; make that a guarantee. Their page cache is kept small (128 KiB
  // instead of SQLite's 2 MiB): they look rows up by key, the root and upper interior pages
  // that every lookup shares fit, and the kernel caches the file anyway. The pool's readers are
  // all in use when a call's misses are fetched in parallel, and at 512 KiB each they held
  // 1.6 MiB more than one reader did (docs/BENCHMARKS.md, RSS with 100k cached).
  for (const char* pragma : {"PRAGMA query_only = 1", "PRAGMA cache_size = -128"}) {
    if (absl::Status s = SqliteExec(*db, path_, pragma, "configuring"); !s.ok()) {
      sqlite3_close_v2(*db);
      NoteIfCorrupt(s);
      return s;
    }
  }
  return db;
}

void SqliteSecretStore::NoteIfCorrupt(const absl::Status& status) {
  // Nothing but SQLite reports DATA_LOSS while connecting; callers pass no other statuses.
  if (absl::IsDataLoss(status)) LatchCorruption(status);
}

void SqliteSecretStore::NoteIfCorrupt(const SqliteStatement& statement,
                                      const absl::Status& status) {
  if (statement.corrupt()) LatchCorruption(status);
}

void SqliteSecretStore::LatchCorruption(const absl::Status& status) {
  std::lock_guard<std::mutex> lock(corruption_mu_);
  if (corruption_.ok()) corruption_ = status;
}

absl::Status SqliteSecretStore::CheckHealth() {
  absl::ReaderMutexLock files(&files_mu_);
  absl::Status latched;
  {
    std::lock_guard<std::mutex> lock(corruption_mu_);
    latched = corruption_;
  }
  if (!latched.ok()) {
    // Damage seen once stays reported until the file checks out whole: a fresh connection (no
    // pages cached from before) runs PRAGMA quick_check, which reads every page once. Only
    // while damage is latched, so a healthy store never pays for it.
    absl::StatusOr<sqlite3*> db = Connect();
    if (!db.ok()) return db.status();
    SqliteStatement check(*db, path_, "PRAGMA quick_check(1)");
    absl::StatusOr<bool> row = check.Step("checking the file's integrity");
    const bool whole = row.ok() && *row && check.Text(0) == "ok";
    sqlite3_close_v2(*db);
    if (!whole) {
      return absl::DataLossError(absl::StrCat(
          Where(), ": the file is damaged (", latched.message(),
          "); restore it from a backup (replacing the file by rename is picked up)"));
    }
    std::lock_guard<std::mutex> lock(corruption_mu_);
    corruption_ = absl::OkStatus();
  }
  absl::StatusOr<SqliteReaderPool::Lease> lease = readers_.Acquire();
  if (!lease.ok()) return lease.status();
  sqlite3* const db = lease->db();
  SqliteStatement query(db, path_, "SELECT 1 FROM secure_values LIMIT 1");
  absl::StatusOr<bool> row = query.Step("checking health");
  if (!row.ok()) {
    NoteIfCorrupt(query, row.status());
    return row.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<SecretRow>> SqliteSecretStore::ReadSecretRow(
    const std::string& where, const std::function<void(SqliteStatement&)>& bind,
    const char* what) {
  absl::ReaderMutexLock files(&files_mu_);
  absl::StatusOr<SqliteReaderPool::Lease> lease = readers_.Acquire();
  if (!lease.ok()) return lease.status();
  SqliteStatement query(lease->db(), path_, absl::StrCat(kSecretRowSelect, where).c_str());
  bind(query);
  absl::StatusOr<bool> row = query.Step(what);
  if (!row.ok()) {
    NoteIfCorrupt(query, row.status());
    return row.status();
  }
  if (!*row) return std::nullopt;
  return RowAt(query);
}

absl::StatusOr<StoredSecret> SqliteSecretStore::Get(absl::string_view stack,
                                                    absl::string_view name) {
  if (absl::Status s = ValidateSecretKey(stack, name); !s.ok()) return s;
  absl::StatusOr<std::optional<SecretRow>> row = ReadSecretRow(
      " WHERE v.stack = ?1 AND v.name = ?2 AND v.active",
      [&](SqliteStatement& query) { query.BindText(stack).BindText(name); }, "reading a secret");
  if (!row.ok()) return row.status();
  if (!row->has_value()) {
    return absl::NotFoundError(absl::StrCat(QuotedSecret(stack, name), " not found"));
  }
  return OpenSecretRow(data_keys_, **row, Where());
}

absl::StatusOr<StoredSecret> SqliteSecretStore::GetVersion(absl::string_view stack,
                                                           absl::string_view name,
                                                           int64_t version) {
  if (absl::Status s = ValidateSecretKey(stack, name); !s.ok()) return s;
  if (absl::Status s = ValidateSecretVersion(version); !s.ok()) return s;
  absl::StatusOr<std::optional<SecretRow>> row = ReadSecretRow(
      StoredVersionWhere("?"),
      [&](SqliteStatement& query) { query.BindText(stack).BindText(name).BindInt(version); },
      "reading a secret version");
  if (!row.ok()) return row.status();
  if (!row->has_value()) {
    return absl::NotFoundError(
        absl::StrCat("version ", version, " of ", QuotedSecret(stack, name), " not found"));
  }
  return OpenSecretRow(data_keys_, **row, Where());
}

absl::StatusOr<SecretMetadata> SqliteSecretStore::GetMetadata(absl::string_view stack,
                                                              absl::string_view name) {
  if (absl::Status s = ValidateSecretKey(stack, name); !s.ok()) return s;
  absl::ReaderMutexLock files(&files_mu_);
  absl::StatusOr<SqliteReaderPool::Lease> lease = readers_.Acquire();
  if (!lease.ok()) return lease.status();
  sqlite3* const db = lease->db();
  SqliteStatement query(
      db, path_,
      absl::StrCat(kSecretMetadataSelect, " WHERE stack = ?1 AND name = ?2 AND active").c_str());
  query.BindText(stack).BindText(name);
  absl::StatusOr<bool> row = query.Step("reading a secret's metadata");
  if (!row.ok()) {
    NoteIfCorrupt(query, row.status());
    return row.status();
  }
  if (!*row) return absl::NotFoundError(absl::StrCat(QuotedSecret(stack, name), " not found"));
  return MetadataRowAt(query, stack, Where());
}

absl::StatusOr<SqliteSecretStore::DataKey> SqliteSecretStore::ActiveDataKey(
    sqlite3* db, absl::string_view stack, int64_t now_us) {
  SqliteStatement query(db, path_,
                  "SELECT id, kek_id, kek_check, wrapped_key FROM data_keys"
                  " WHERE stack = ?1 AND active");
  query.BindText(stack);
  absl::StatusOr<bool> row = query.Step("reading the data key");
  if (!row.ok()) return row.status();
  DataKey out;
  if (*row) {
    out.id = query.Text(0);
    WrappedDataKey wrapped{query.Text(1), query.Blob(2), query.Blob(3)};
    absl::StatusOr<SecretBytes> key = UnwrapDataKey(*key_ring_, wrapped, stack, out.id);
    if (!key.ok()) return key.status();
    out.key = *std::move(key);
    return out;
  }

  // The stack's first secret: a new data key, wrapped by the active KEK.
  absl::StatusOr<std::string> id = NewDataKeyId();
  if (!id.ok()) return id.status();
  absl::StatusOr<SecretBytes> key = GenerateDataKey();
  if (!key.ok()) return key.status();
  absl::StatusOr<WrappedDataKey> wrapped =
      WrapDataKey(*key_ring_, key_ring_->active_id(), stack, *id, *key);
  if (!wrapped.ok()) return wrapped.status();
  SqliteStatement insert(db, path_,
                   "INSERT INTO data_keys (stack, id, wrapped_key, kek_id, kek_check, active,"
                   " created_at_us, updated_at_us) VALUES (?1, ?2, ?3, ?4, ?5, TRUE, ?6, ?6)");
  insert.BindText(stack)
      .BindText(*id)
      .BindBlob(wrapped->wrapped)
      .BindText(wrapped->kek_id)
      .BindBlob(wrapped->kek_check)
      .BindInt(now_us);
  if (absl::Status s = insert.Run("storing a new data key"); !s.ok()) return s;
  out.id = *std::move(id);
  out.key = *std::move(key);
  return out;
}

absl::StatusOr<int64_t> SqliteSecretStore::Put(const SecretWrite& write) {
  if (absl::Status s = ValidateSecretWrite(write); !s.ok()) return s;
  int64_t version = 0;
  absl::ReaderMutexLock files(&files_mu_);
  if (absl::Status s = WriterReady(); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(writer_mu_);
  absl::Status status = InSqliteWriteTransaction(writer_, path_, [&]() -> absl::Status {
    const int64_t now_us = NowMicros();
    absl::StatusOr<DataKey> data_key = ActiveDataKey(writer_, write.stack, now_us);
    if (!data_key.ok()) return data_key.status();

    // Under the write lock: nobody else can take the same number.
    SqliteStatement newest(writer_, path_,
                     "SELECT COALESCE(MAX(version), 0) FROM secure_values"
                     " WHERE stack = ?1 AND name = ?2");
    newest.BindText(write.stack).BindText(write.name);
    absl::StatusOr<bool> row = newest.Step("reading the newest version");
    if (!row.ok()) return row.status();
    version = newest.Int(0) + 1;

    absl::StatusOr<std::string> sealed =
        SealValue(data_key->key, write.stack, write.name, version, write.decrypters, write.value);
    if (!sealed.ok()) return sealed.status();

    SqliteStatement retire(writer_, path_,
                     "UPDATE secure_values SET active = FALSE, updated_at_us = ?1,"
                     " updated_by = ?2 WHERE stack = ?3 AND name = ?4 AND active");
    retire.BindInt(now_us).BindText(write.actor).BindText(write.stack).BindText(write.name);
    if (absl::Status s = retire.Run("retiring the previous version"); !s.ok()) return s;

    SqliteStatement insert(writer_, path_,
                     "INSERT INTO secure_values (stack, name, version, active, decrypters,"
                     " description, created_at_us, created_by, updated_at_us, updated_by,"
                     " ciphertext, data_key_id)"
                     " VALUES (?1, ?2, ?3, TRUE, ?4, ?5, ?6, ?7, ?6, ?7, ?8, ?9)");
    insert.BindText(write.stack)
        .BindText(write.name)
        .BindInt(version)
        .BindText(EncodeDecrypterList(write.decrypters))
        .BindText(write.description)
        .BindInt(now_us)
        .BindText(write.actor)
        .BindBlob(*sealed)
        .BindText(data_key->id);
    if (absl::Status s = insert.Run("storing the new version"); !s.ok()) return s;

    SqliteStatement log(writer_, path_,
                  "INSERT INTO change_log (stack, name, version, op, actor, at_us)"
                  " VALUES (?1, ?2, ?3, 'put', ?4, ?5)");
    log.BindText(write.stack).BindText(write.name).BindInt(version).BindText(write.actor).BindInt(
        now_us);
    return log.Run("logging the change");
  });
  if (!status.ok()) return status;
  return version;
}

absl::Status SqliteSecretStore::Delete(absl::string_view stack, absl::string_view name,
                                       absl::string_view actor) {
  if (absl::Status s = ValidateSecretKey(stack, name); !s.ok()) return s;
  absl::ReaderMutexLock files(&files_mu_);
  if (absl::Status s = WriterReady(); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(writer_mu_);
  return InSqliteWriteTransaction(writer_, path_, [&]() -> absl::Status {
    const int64_t now_us = NowMicros();
    SqliteStatement active(writer_, path_,
                     "SELECT version FROM secure_values WHERE stack = ?1 AND name = ?2"
                     " AND active");
    active.BindText(stack).BindText(name);
    absl::StatusOr<bool> row = active.Step("reading a secret");
    if (!row.ok()) return row.status();
    if (!*row) return absl::NotFoundError(absl::StrCat(QuotedSecret(stack, name), " not found"));
    const int64_t version = active.Int(0);

    // The rows stay: updated_at_us and updated_by say who deactivated the version and when.
    SqliteStatement retire(writer_, path_,
                     "UPDATE secure_values SET active = FALSE, updated_at_us = ?1,"
                     " updated_by = ?2 WHERE stack = ?3 AND name = ?4 AND active");
    retire.BindInt(now_us).BindText(actor).BindText(stack).BindText(name);
    if (absl::Status s = retire.Run("deleting a secret"); !s.ok()) return s;

    SqliteStatement log(writer_, path_,
                  "INSERT INTO change_log (stack, name, version, op, actor, at_us)"
                  " VALUES (?1, ?2, ?3, 'delete', ?4, ?5)");
    log.BindText(stack).BindText(name).BindInt(version).BindText(actor).BindInt(now_us);
    return log.Run("logging the change");
  });
}

absl::StatusOr<std::vector<SecretMetadata>> SqliteSecretStore::List(absl::string_view stack) {
  if (absl::Status s = ValidateStack(stack); !s.ok()) return s;
  absl::ReaderMutexLock files(&files_mu_);
  absl::StatusOr<SqliteReaderPool::Lease> lease = readers_.Acquire();
  if (!lease.ok()) return lease.status();
  sqlite3* const db = lease->db();
  SqliteStatement query(
      db, path_, absl::StrCat(kSecretMetadataSelect, " WHERE stack = ?1 AND active ORDER BY name")
                      .c_str());
  query.BindText(stack);
  std::vector<SecretMetadata> out;
  while (true) {
    absl::StatusOr<bool> row = query.Step("listing secrets");
    if (!row.ok()) {
      NoteIfCorrupt(query, row.status());
      return row.status();
    }
    if (!*row) break;
    absl::StatusOr<SecretMetadata> meta = MetadataRowAt(query, stack, Where());
    if (!meta.ok()) return meta.status();
    out.push_back(*std::move(meta));
  }
  return out;
}

absl::StatusOr<int64_t> SqliteSecretStore::RewrapDataKeys(absl::string_view kek_id) {
  if (absl::StatusOr<const SecretBytes*> kek = key_ring_->Find(kek_id); !kek.ok()) {
    return kek.status();
  }
  int64_t rewrapped = 0;
  absl::ReaderMutexLock files(&files_mu_);
  if (absl::Status s = WriterReady(); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(writer_mu_);
  absl::Status status = InSqliteWriteTransaction(writer_, path_, [&]() -> absl::Status {
    struct Row {
      std::string stack;
      std::string id;
      WrappedDataKey wrapped;
    };
    std::vector<Row> rows;
    {
      SqliteStatement query(writer_, path_,
                      "SELECT stack, id, kek_id, kek_check, wrapped_key FROM data_keys"
                      " ORDER BY stack, id");
      while (true) {
        absl::StatusOr<bool> row = query.Step("reading data keys");
        if (!row.ok()) return row.status();
        if (!*row) break;
        rows.push_back(
            Row{query.Text(0), query.Text(1), {query.Text(2), query.Blob(3), query.Blob(4)}});
      }
    }
    const int64_t now_us = NowMicros();
    for (const Row& row : rows) {
      if (row.wrapped.kek_id == kek_id) continue;
      absl::StatusOr<WrappedDataKey> wrapped =
          RewrapDataKey(*key_ring_, row.wrapped, row.stack, row.id, kek_id);
      if (!wrapped.ok()) return wrapped.status();
      SqliteStatement update(writer_, path_,
                       "UPDATE data_keys SET wrapped_key = ?1, kek_id = ?2, kek_check = ?3,"
                       " updated_at_us = ?4 WHERE stack = ?5 AND id = ?6");
      update.BindBlob(wrapped->wrapped)
          .BindText(wrapped->kek_id)
          .BindBlob(wrapped->kek_check)
          .BindInt(now_us)
          .BindText(row.stack)
          .BindText(row.id);
      if (absl::Status s = update.Run("rewrapping a data key"); !s.ok()) return s;
      ++rewrapped;
    }
    return absl::OkStatus();
  });
  data_keys_.Clear();  // wipes the keys as unwrapped from their old KEK
  if (!status.ok()) return status;
  return rewrapped;
}

absl::StatusOr<int64_t> SqliteSecretStore::ResealValues() {
  int64_t resealed = 0;
  absl::ReaderMutexLock files(&files_mu_);
  if (absl::Status s = WriterReady(); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(writer_mu_);
  absl::Status status = InSqliteWriteTransaction(writer_, path_, [&]() -> absl::Status {
    std::vector<SecretRow> rows;
    {
      const std::string sql =
          absl::StrCat(kSecretRowSelect, " ORDER BY v.stack, v.name, v.version");
      SqliteStatement query(writer_, path_, sql.c_str());
      while (true) {
        absl::StatusOr<bool> row = query.Step("reading values");
        if (!row.ok()) return row.status();
        if (!*row) break;
        rows.push_back(RowAt(query));
      }
    }
    for (const SecretRow& row : rows) {
      absl::StatusOr<std::optional<std::string>> sealed = ResealSecretRow(*key_ring_, row, Where());
      if (!sealed.ok()) return sealed.status();
      if (!sealed->has_value()) continue;
      SqliteStatement update(writer_, path_,
                       "UPDATE secure_values SET ciphertext = ?1"
                       " WHERE stack = ?2 AND name = ?3 AND version = ?4");
      update.BindBlob(**sealed).BindText(row.stack).BindText(row.name).BindInt(row.version);
      if (absl::Status s = update.Run("resealing a value"); !s.ok()) return s;
      ++resealed;
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return resealed;
}

absl::Status SqliteSecretStore::WriterReady() const {
  if (writer_ != nullptr) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat(Where(), ": the file was replaced and cannot be opened yet"));
}

}  // namespace secret_resolver
