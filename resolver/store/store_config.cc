#include "resolver/store/store_config.h"

#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "resolver/postgres/postgres_connection.h"
#include "resolver/postgres/postgres_pool.h"

namespace secret_resolver {
namespace {

// The connection string `config` names: its dsn, or the value of the variable dsn_env names.
absl::StatusOr<std::string> DsnText(const PostgresStoreConfig& config) {
  if (!config.dsn.empty()) return config.dsn;
  if (config.dsn_env.empty()) {
    return absl::FailedPreconditionError("postgres store: no DSN and no DSN variable given");
  }
  const char* from_env = std::getenv(config.dsn_env.c_str());
  if (from_env == nullptr || from_env[0] == '\0') {
    return absl::FailedPreconditionError(absl::StrCat(
        "postgres store: no DSN: environment variable ", config.dsn_env, " is unset or empty"));
  }
  return std::string(from_env);
}

absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> Open(const SqliteStoreConfig& config,
                                                           const KeyRing* key_ring) {
  absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
      SqliteSecretStore::Open(config.path, key_ring, config.options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<EncryptedSecretStore>(*std::move(store));
}

absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> Open(const PostgresStoreConfig& config,
                                                           const KeyRing* key_ring) {
  absl::StatusOr<std::string> dsn = DsnText(config);
  if (!dsn.ok()) return dsn.status();
  PostgresPoolOptions pool;
  pool.dsn = *std::move(dsn);
  pool.max_connections = config.max_connections;
  pool.application_name = config.application_name;
  absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store =
      PostgresSecretStore::Open(std::move(pool), key_ring, config.options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<EncryptedSecretStore>(*std::move(store));
}

absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> Open(const UpstreamStoreConfig&,
                                                           const KeyRing*) {
  return absl::FailedPreconditionError(
      "store.upstream keeps no encrypted secrets: it cannot be opened as an encrypted store");
}

std::string Describe(const UpstreamStoreConfig& config) {
  return absl::StrCat("upstream:", config.options.address);
}

std::string Describe(const SqliteStoreConfig& config) {
  return absl::StrCat("sqlite:", config.path);
}

std::string Describe(const PostgresStoreConfig& config) {
  absl::StatusOr<std::string> text = DsnText(config);
  if (!text.ok()) return "postgres:(no DSN)";
  absl::StatusOr<PostgresDsn> dsn = PostgresDsn::Parse(*text);
  if (!dsn.ok()) return "postgres:(invalid DSN)";
  return absl::StrCat("postgres:", dsn->description());
}

}  // namespace

absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> OpenSecretStore(const StoreConfig& config,
                                                                      const KeyRing* key_ring) {
  return std::visit([key_ring](const auto& backend) { return Open(backend, key_ring); },
                    config.backend);
}

absl::StatusOr<std::unique_ptr<SecretStore>> OpenStore(const StoreConfig& config,
                                                       const KeyRing* key_ring) {
  if (const auto* upstream = std::get_if<UpstreamStoreConfig>(&config.backend)) {
    absl::StatusOr<std::unique_ptr<UpstreamSecretStore>> store =
        UpstreamSecretStore::Open(upstream->options);
    if (!store.ok()) return store.status();
    return std::unique_ptr<SecretStore>(*std::move(store));
  }
  absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> store = OpenSecretStore(config, key_ring);
  if (!store.ok()) return store.status();
  return std::unique_ptr<SecretStore>(*std::move(store));
}

bool StoreNeedsKeys(const StoreConfig& config) {
  return !std::holds_alternative<UpstreamStoreConfig>(config.backend);
}

std::string DescribeStoreConfig(const StoreConfig& config) {
  return std::visit([](const auto& backend) { return Describe(backend); }, config.backend);
}

}  // namespace secret_resolver
