#include "resolver/postgres/postgres_secret_store.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "resolver/postgres/change_payload.h"
#include "resolver/postgres/postgres_key_admin.h"
#include "resolver/postgres/postgres_schema.h"
#include "resolver/postgres/postgres_secret_row.h"
#include "resolver/postgres/postgres_secret_writes.h"
#include "resolver/secret_validation.h"
#include "resolver/storage_format/decrypter_list.h"
#include "resolver/storage_format/migration.h"
#include "resolver/storage_format/secret_row.h"
#include "resolver/storage_format/secret_write_validation.h"

namespace secret_resolver {

absl::StatusOr<std::unique_ptr<PostgresSecretStore>> PostgresSecretStore::Open(
    PostgresPoolOptions pool_options, const KeyRing* key_ring, PostgresStoreOptions options) {
  if (key_ring == nullptr || key_ring->empty()) {
    return absl::FailedPreconditionError("postgres store: no KEK loaded");
  }
  if (absl::Status s = ValidatePostgresStoreOptions(options); !s.ok()) return s;
  absl::StatusOr<PostgresDsn> dsn = PostgresDsn::Parse(pool_options.dsn);
  if (!dsn.ok()) return dsn.status();
  if (absl::Status s = CheckPostgresStoreTransport(*dsn, options); !s.ok()) return s;
  std::string dsn_text = pool_options.dsn;
  absl::StatusOr<std::unique_ptr<PostgresPool>> pool =
      PostgresPool::Create(std::move(pool_options));
  if (!pool.ok()) return pool.status();
  std::unique_ptr<PostgresSecretStore> store(
      new PostgresSecretStore(*std::move(dsn), std::move(dsn_text), *std::move(pool), key_ring,
                              std::move(options)));

  // Bring the schema up to date. The advisory lock makes a second process that opens the
  // database at the same moment wait, then find nothing to do.
  const int64_t latest = kLatestSchemaVersion;
  absl::Status migrated = store->InTransaction([&](PostgresSession& session) -> absl::Status {
    if (absl::StatusOr<PostgresResult> r =
            session.Exec("taking the migration lock", "SELECT pg_advisory_xact_lock($1, 0)",
                         PostgresParams().Int4(kMigrationLockClass));
        !r.ok()) {
      return r.status();
    }
    if (absl::StatusOr<PostgresResult> r =
            session.Exec("creating schema_version", kSchemaVersionTableDdl);
        !r.ok()) {
      return r.status();
    }
    absl::StatusOr<PostgresResult> current_row =
        session.Exec("reading the schema version",
                     "SELECT COALESCE(MAX(version), 0)::bigint FROM schema_version");
    if (!current_row.ok()) return current_row.status();
    const int64_t current = current_row->Int(0, 0);
    if (current > latest) {
      return absl::FailedPreconditionError(
          store->Message("opening", absl::StrCat("schema version ", current,
                                                 " is newer than this binary supports (", latest,
                                                 "); upgrade it")));
    }
    for (const Migration& migration : PostgresMigrations()) {
      if (migration.version <= current) continue;
      const std::string what = absl::StrCat("applying schema migration ", migration.version);
      for (const char* sql : migration.statements) {
        if (absl::StatusOr<PostgresResult> r = session.Exec(what, sql); !r.ok()) {
          return r.status();
        }
      }
      absl::StatusOr<PostgresResult> recorded = session.Exec(
          what, "INSERT INTO schema_version (version, applied_at_us) VALUES ($1, $2)",
          PostgresParams().Int8(migration.version).Int8(store->NowMicros()));
      if (!recorded.ok()) return recorded.status();
    }
    return absl::OkStatus();
  });
  if (!migrated.ok()) return migrated;
  return store;
}

PostgresSecretStore::PostgresSecretStore(PostgresDsn dsn, std::string dsn_text,
                                         std::unique_ptr<PostgresPool> pool,
                                         const KeyRing* key_ring, PostgresStoreOptions options)
    : dsn_(std::move(dsn)),
      dsn_text_(std::move(dsn_text)),
      pool_(std::move(pool)),
      key_ring_(key_ring),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      data_keys_(key_ring, options_.data_key_cache_capacity),
      listeners_(std::make_shared<const std::vector<ChangeListener>>()) {}

PostgresSecretStore::~PostgresSecretStore() {
  std::unique_ptr<PostgresListener> listener;
  {
    std::lock_guard<std::mutex> lock(watch_start_mu_);
    listener = std::move(listener_);
  }
  if (listener != nullptr) listener->Stop();
}

int64_t PostgresSecretStore::NowMicros() const { return absl::ToUnixMicros(clock_->Now()); }

std::string PostgresSecretStore::Where() const { return PostgresStoreName(dsn_); }

std::string PostgresSecretStore::Message(absl::string_view what, absl::string_view detail) const {
  return PostgresStoreMessage(dsn_, what, detail);
}

absl::Status PostgresSecretStore::WithSession(
    const std::function<absl::Status(PostgresSession&)>& body) {
  return WithPostgresSession(*pool_, dsn_, options_.timeouts, body);
}

absl::Status PostgresSecretStore::InTransaction(
    const std::function<absl::Status(PostgresSession&)>& body) {
  return InPostgresTransaction(*pool_, dsn_, options_.timeouts, body);
}

absl::StatusOr<StoredSecret> PostgresSecretStore::Get(absl::string_view stack,
                                                      absl::string_view name) {
  if (absl::Status s = ValidateSecretKey(stack, name); !s.ok()) return s;
  std::optional<SecretRow> row;
  absl::Status status = WithSession([&](PostgresSession& session) -> absl::Status {
    const std::string sql =
        absl::StrCat(kSecretRowSelect, " WHERE v.stack = $1 AND v.name = $2 AND v.active");
    absl::StatusOr<PostgresResult> result =
        session.Exec("reading a secret", sql.c_str(), PostgresParams().Text(stack).Text(name));
    if (!result.ok()) return result.status();
    row.reset();
    if (result->rows() > 0) row = SecretRowAt(*result, 0);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (!row.has_value()) {
    return absl::NotFoundError(absl::StrCat(QuotedSecret(stack, name), " not found"));
  }
  // Decrypted after the connection went back to the pool.
  return OpenSecretRow(data_keys_, *row, Where());
}

absl::StatusOr<StoredSecret> PostgresSecretStore::GetVersion(absl::string_view stack,
                                                             absl::string_view name,
                                                             int64_t version) {
  if (absl::Status s = ValidateSecretKey(stack, name); !s.ok()) return s;
  if (absl::Status s = ValidateSecretVersion(version); !s.ok()) return s;
  std::optional<SecretRow> row;
  absl::Status status = WithSession([&](PostgresSession& session) -> absl::Status {
    const std::string sql = absl::StrCat(kSecretRowSelect, StoredVersionWhere("$"));
    absl::StatusOr<PostgresResult> result =
        session.Exec("reading a secret version", sql.c_str(),
                     PostgresParams().Text(stack).Text(name).Int8(version));
    if (!result.ok()) return result.status();
    row.reset();
    if (result->rows() > 0) row = SecretRowAt(*result, 0);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (!row.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("version ", version, " of ", QuotedSecret(stack, name), " not found"));
  }
  return OpenSecretRow(data_keys_, *row, Where());
}

absl::StatusOr<SecretMetadata> PostgresSecretStore::GetMetadata(absl::string_view stack,
                                                                absl::string_view name) {
  if (absl::Status s = ValidateSecretKey(stack, name); !s.ok()) return s;
  std::vector<MetadataRow> rows;
  absl::Status status = WithSession([&](PostgresSession& session) -> absl::Status {
    const std::string sql =
        absl::StrCat(kSecretMetadataSelect, " WHERE stack = $1 AND name = $2 AND active");
    absl::StatusOr<PostgresResult> result = session.Exec(
        "reading a secret's metadata", sql.c_str(), PostgresParams().Text(stack).Text(name));
    if (!result.ok()) return result.status();
    rows = MetadataRows(*result);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (rows.empty()) {
    return absl::NotFoundError(absl::StrCat(QuotedSecret(stack, name), " not found"));
  }
  return MetadataOf(stack, std::move(rows.front()));
}

absl::StatusOr<int64_t> PostgresSecretStore::Put(const SecretWrite& write) {
  if (absl::Status s = ValidateSecretWrite(write); !s.ok()) return s;
  if (absl::Status s = ValidatePostgresText("description", write.description); !s.ok()) return s;
  if (absl::Status s = ValidatePostgresText("actor", write.actor); !s.ok()) return s;
  int64_t version = 0;
  absl::Status status = InTransaction([&](PostgresSession& session) -> absl::Status {
    absl::StatusOr<int64_t> written =
        WriteSecretVersion(session, *key_ring_, write, options_.channel, NowMicros());
    if (!written.ok()) return written.status();
    version = *written;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return version;
}

absl::Status PostgresSecretStore::Delete(absl::string_view stack, absl::string_view name,
                                         absl::string_view actor) {
  if (absl::Status s = ValidateSecretKey(stack, name); !s.ok()) return s;
  if (absl::Status s = ValidatePostgresText("actor", actor); !s.ok()) return s;
  return InTransaction([&](PostgresSession& session) -> absl::Status {
    return DeactivateSecret(session, stack, name, actor, options_.channel, NowMicros());
  });
}

absl::StatusOr<std::vector<SecretMetadata>> PostgresSecretStore::List(absl::string_view stack) {
  if (absl::Status s = ValidateStack(stack); !s.ok()) return s;
  std::vector<MetadataRow> rows;
  absl::Status status = WithSession([&](PostgresSession& session) -> absl::Status {
    // secure_values.name is COLLATE "C": bytewise order, as in SQLite.
    const std::string sql =
        absl::StrCat(kSecretMetadataSelect, " WHERE stack = $1 AND active ORDER BY name");
    absl::StatusOr<PostgresResult> result =
        session.Exec("listing secrets", sql.c_str(), PostgresParams().Text(stack));
    if (!result.ok()) return result.status();
    rows = MetadataRows(*result);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  std::vector<SecretMetadata> out;
  out.reserve(rows.size());
  for (MetadataRow& row : rows) {
    absl::StatusOr<SecretMetadata> meta = MetadataOf(stack, std::move(row));
    if (!meta.ok()) return meta.status();
    out.push_back(*std::move(meta));
  }
  return out;
}

absl::StatusOr<SecretMetadata> PostgresSecretStore::MetadataOf(absl::string_view stack,
                                                               MetadataRow row) const {
  SecretMetadata meta;
  meta.stack = std::string(stack);
  meta.name = std::move(row.name);
  meta.version = row.version;
  absl::StatusOr<std::vector<std::string>> decrypters = DecodeDecrypterList(row.decrypters);
  if (!decrypters.ok()) {
    return absl::DataLossError(
        Message(QuotedSecret(stack, meta.name), decrypters.status().message()));
  }
  meta.decrypters = *std::move(decrypters);
  meta.description = std::move(row.description);
  // The active version is unchanged since it was written.
  meta.updated_at = absl::FromUnixMicros(row.created_at_us);
  meta.updated_by = std::move(row.created_by);
  return meta;
}

std::vector<PostgresSecretStore::MetadataRow> PostgresSecretStore::MetadataRows(
    const PostgresResult& result) {
  std::vector<MetadataRow> rows;
  for (int i = 0; i < result.rows(); ++i) {
    rows.push_back(MetadataRow{result.Bytes(i, 0), result.Int(i, 1), result.Bytes(i, 2),
                               result.Bytes(i, 3), result.Int(i, 4), result.Bytes(i, 5)});
  }
  return rows;
}

absl::StatusOr<int64_t> PostgresSecretStore::RewrapDataKeys(absl::string_view kek_id) {
  if (absl::StatusOr<const SecretBytes*> kek = key_ring_->Find(kek_id); !kek.ok()) {
    return kek.status();
  }
  int64_t rewrapped = 0;
  absl::Status status = InTransaction([&](PostgresSession& session) -> absl::Status {
    absl::StatusOr<int64_t> count = RewrapAllDataKeys(session, *key_ring_, kek_id, NowMicros());
    if (!count.ok()) return count.status();
    rewrapped = *count;
    return absl::OkStatus();
  });
  data_keys_.Clear();  // wipes the keys as unwrapped from their old KEK
  if (!status.ok()) return status;
  return rewrapped;
}

absl::StatusOr<int64_t> PostgresSecretStore::ResealValues() {
  int64_t resealed = 0;
  absl::Status status = InTransaction([&](PostgresSession& session) -> absl::Status {
    absl::StatusOr<int64_t> count = ResealAllValues(session, *key_ring_, Where());
    if (!count.ok()) return count.status();
    resealed = *count;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return resealed;
}

absl::Status PostgresSecretStore::CheckHealth() {
  return WithSession([](PostgresSession& session) -> absl::Status {
    absl::StatusOr<PostgresResult> result = session.Exec("checking health", "SELECT 1");
    return result.ok() ? absl::OkStatus() : result.status();
  });
}

absl::Status PostgresSecretStore::Watch(ChangeListener listener) {
  std::lock_guard<std::mutex> start_lock(watch_start_mu_);
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    auto listeners = std::make_shared<std::vector<ChangeListener>>(*listeners_);
    listeners->push_back(std::move(listener));
    listeners_ = std::move(listeners);
    if (listener_ != nullptr) return absl::OkStatus();
    first_listen_seen_ = false;
    feed_lost_ = false;
    last_listener_error_ = absl::OkStatus();
  }

  PostgresListenerOptions listener_options;
  listener_options.dsn = dsn_text_;
  listener_options.channel = options_.channel;
  listener_options.on_notification = [this](absl::string_view payload) {
    DispatchPayload(payload);
  };
  listener_options.on_resync = [this] { DispatchResync(); };
  listener_options.on_connection_error = [this](const absl::Status& error) {
    DispatchFeedLost(error);
  };
  listener_options.connect_timeout = options_.watch_connect_timeout;
  listener_options.initial_backoff = options_.watch_initial_backoff;
  listener_options.max_backoff = options_.watch_max_backoff;
  listener_options.heartbeat_interval = options_.watch_heartbeat_interval;
  listener_options.heartbeat_timeout = options_.watch_heartbeat_timeout;

  absl::Status status;
  absl::StatusOr<std::unique_ptr<PostgresListener>> started =
      PostgresListener::Start(std::move(listener_options));
  if (started.ok()) {
    status = (*started)->WaitUntilListening(absl::Now() + options_.watch_connect_timeout);
    if (status.ok()) {
      listener_ = *std::move(started);
      return absl::OkStatus();
    }
    (*started)->Stop();
  } else {
    status = started.status();
  }

  // Not listening: take the listener back out, so that a later Watch starts over.
  std::lock_guard<std::mutex> lock(listeners_mu_);
  auto listeners = std::make_shared<std::vector<ChangeListener>>(*listeners_);
  listeners->pop_back();
  listeners_ = std::move(listeners);
  std::string detail = absl::StrCat("LISTEN did not take effect within ",
                                    absl::FormatDuration(options_.watch_connect_timeout));
  if (!last_listener_error_.ok()) {
    absl::StrAppend(&detail, ": ", last_listener_error_.message());
  } else if (!status.ok()) {
    absl::StrAppend(&detail, ": ", status.message());
  }
  return absl::UnavailableError(Message("watching for changes", detail));
}

void PostgresSecretStore::DispatchPayload(absl::string_view payload) {
  absl::StatusOr<SecretChange> change = DecodeChangePayload(payload);
  // Something changed, but not something we can name: everything may be stale.
  Dispatch(change.ok() ? *change
                       : SecretChange::Resync(Message("watching for changes",
                                                      "a notification that cannot be parsed")));
}

void PostgresSecretStore::DispatchResync() {
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    // The first LISTEN happens inside Watch, before it returns: nothing was missed yet.
    if (!first_listen_seen_) {
      first_listen_seen_ = true;
      return;
    }
    feed_lost_ = false;
  }
  Dispatch(SecretChange::Resync(
      Message("watching for changes",
              "LISTEN is in effect again; changes made meanwhile may have been missed")));
}

void PostgresSecretStore::DispatchFeedLost(const absl::Status& error) {
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    last_listener_error_ = error;
    // Before the first LISTEN, Watch has not returned and reports the failure itself; after a
    // loss, each failed reconnection is the same outage.
    if (!first_listen_seen_ || feed_lost_) return;
    feed_lost_ = true;
  }
  Dispatch(SecretChange::FeedLost(std::string(error.message())));
}

void PostgresSecretStore::Dispatch(const SecretChange& change) {
  std::shared_ptr<const std::vector<ChangeListener>> listeners;
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    listeners = listeners_;
  }
  for (const ChangeListener& listener : *listeners) listener(change);
}

}  // namespace secret_resolver
