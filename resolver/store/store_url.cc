#include "resolver/store/store_url.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "resolver/postgres/postgres_connection.h"
#include "resolver/postgres/postgres_pool.h"

namespace secret_resolver {
namespace {

constexpr absl::string_view kUrlForms = "want sqlite:PATH or postgres:DSN";

}  // namespace

absl::StatusOr<StoreUrl> ParseStoreUrl(absl::string_view url) {
  // libpq URIs name PostgreSQL themselves; pass them on whole.
  if (absl::StartsWith(url, "postgresql://") || absl::StartsWith(url, "postgres://")) {
    return StoreUrl{StoreKind::kPostgres, std::string(url)};
  }
  const size_t colon = url.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("store URL has no scheme; ", kUrlForms));
  }
  const absl::string_view scheme = url.substr(0, colon);
  const absl::string_view rest = url.substr(colon + 1);
  if (scheme == "sqlite") {
    if (rest.empty()) {
      return absl::InvalidArgumentError("store URL sqlite: needs a file path (sqlite:PATH)");
    }
    return StoreUrl{StoreKind::kSqlite, std::string(rest)};
  }
  if (scheme == "postgres" || scheme == "postgresql") {
    return StoreUrl{StoreKind::kPostgres, std::string(rest)};
  }
  // The scheme is printed only when it is short plain text: a mistyped URL may hold a password.
  bool plain = !scheme.empty() && scheme.size() <= 16;
  for (const char c : scheme) {
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
  }
  return absl::InvalidArgumentError(absl::StrCat("store URL has an unknown scheme",
                                                 plain ? absl::StrCat(" \"", scheme, "\"") : "",
                                                 "; ", kUrlForms));
}

absl::StatusOr<std::unique_ptr<SecretStore>> OpenSecretStore(absl::string_view url,
                                                             const KeyRing* key_ring,
                                                             StoreOpenOptions options) {
  absl::StatusOr<StoreUrl> parsed = ParseStoreUrl(url);
  if (!parsed.ok()) return parsed.status();
  switch (parsed->kind) {
    case StoreKind::kSqlite: {
      absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
          SqliteSecretStore::Open(parsed->location, key_ring, std::move(options.sqlite));
      if (!store.ok()) return store.status();
      return std::unique_ptr<SecretStore>(*std::move(store));
    }
    case StoreKind::kPostgres: {
      absl::StatusOr<std::string> dsn = PostgresDsnFromConfigOrEnv(parsed->location);
      if (!dsn.ok()) return dsn.status();
      PostgresPoolOptions pool;
      pool.dsn = *std::move(dsn);
      pool.max_connections = options.postgres_max_connections;
      pool.application_name = options.postgres_application_name;
      absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store =
          PostgresSecretStore::Open(std::move(pool), key_ring, std::move(options.postgres));
      if (!store.ok()) return store.status();
      return std::unique_ptr<SecretStore>(*std::move(store));
    }
  }
  return absl::InternalError("store URL: unhandled store kind");
}

std::string DescribeStoreUrl(absl::string_view url) {
  absl::StatusOr<StoreUrl> parsed = ParseStoreUrl(url);
  if (!parsed.ok()) return "(invalid store URL)";
  switch (parsed->kind) {
    case StoreKind::kSqlite:
      return absl::StrCat("sqlite:", parsed->location);
    case StoreKind::kPostgres: {
      absl::StatusOr<std::string> text = PostgresDsnFromConfigOrEnv(parsed->location);
      if (!text.ok()) return "postgres:(no DSN)";
      absl::StatusOr<PostgresDsn> dsn = PostgresDsn::Parse(*text);
      if (!dsn.ok()) return "postgres:(invalid DSN)";
      return absl::StrCat("postgres:", dsn->description());
    }
  }
  return "(invalid store URL)";
}

absl::StatusOr<int64_t> RewrapDataKeys(SecretStore& store, absl::string_view kek_id) {
  // RewrapDataKeys is an operator's action, not part of the SecretStore interface the resolver
  // uses, so it is reached through the concrete types this file creates.
  if (auto* sqlite = dynamic_cast<SqliteSecretStore*>(&store); sqlite != nullptr) {
    return sqlite->RewrapDataKeys(kek_id);
  }
  if (auto* postgres = dynamic_cast<PostgresSecretStore*>(&store); postgres != nullptr) {
    return postgres->RewrapDataKeys(kek_id);
  }
  return absl::UnimplementedError("this store cannot rewrap data keys");
}

}  // namespace secret_resolver
