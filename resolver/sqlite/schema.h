// The storage schema as SQLite DDL, one migration per schema version
// (docs/storage-format.md describes it, and its PostgreSQL spelling, column by column).
//
// Tables: schema_version (applied migrations), data_keys (per-stack data keys wrapped by a KEK),
// secure_values (one row per secret version, the value sealed), change_log (every put and
// delete, in commit order: the audit trail and the feed other processes poll for changes).
// The SQLite store applies the migrations in one BEGIN IMMEDIATE transaction.
//
// Thread safety: immutable data.
#ifndef SECRET_RESOLVER_RESOLVER_SQLITE_SCHEMA_H_
#define SECRET_RESOLVER_RESOLVER_SQLITE_SCHEMA_H_

#include <cstdint>
#include <vector>

namespace secret_resolver {

// Created before any migration runs, so that the current version can be read.
inline constexpr char kSchemaVersionTableDdl[] =
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version BIGINT NOT NULL PRIMARY KEY,"
    " applied_at_us BIGINT NOT NULL)";

struct Migration {
  int64_t version;
  // Statements run in order; each is idempotent (IF NOT EXISTS).
  std::vector<const char*> statements;
};

// Every migration, oldest first; versions are 1, 2, ... without gaps.
const std::vector<Migration>& SqliteMigrations();

// The newest schema version this binary knows: the last migration's version.
int64_t LatestSchemaVersion();

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_SQLITE_SCHEMA_H_
