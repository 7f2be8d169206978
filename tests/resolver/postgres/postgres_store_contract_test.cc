// The SecretStore contract suite, run against PostgresSecretStore on a real PostgreSQL 15 server
// that this binary starts (//tests/testing:postgres_server): a fresh database per test. A binary
// that cannot start its server fails every case; none is skipped.
#include <postgresql/libpq-fe.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/postgres/postgres_secret_store.h"
#include "tests/resolver/storage_contract/store_contract.h"
#include "tests/testing/postgres_server.h"

namespace secret_resolver {
namespace {

PostgresServer* server = nullptr;
absl::Status* start_error = new absl::Status();

// Starts the server on the main thread (RUN_ALL_TESTS runs environments there), as the fixture
// requires, and stops it after the last test.
class PostgresEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PostgresServer>> started = PostgresServer::Start();
    if (started.ok()) {
      server = started->release();
    } else {
      *start_error = started.status();
    }
  }
  void TearDown() override {
    delete server;
    server = nullptr;
  }
};

::testing::Environment* const environment =
    ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

const KeyRing* ContractKeyRing() {
  static const KeyRing* ring = [] {
    auto* ring = new KeyRing;
    absl::StatusOr<SecretBytes> kek = KeyRing::GenerateKek();
    if (!kek.ok() || !ring->Add("contract-kek", *std::move(kek)).ok()) std::abort();
    return ring;
  }();
  return ring;
}

absl::Status CreateDatabase(const std::string& name) {
  PGconn* conn = PQconnectdb(server->DsnForDatabase("postgres").c_str());
  absl::Status status;
  if (PQstatus(conn) != CONNECTION_OK) {
    status = absl::UnavailableError(PQerrorMessage(conn));
  } else {
    PGresult* result = PQexec(conn, absl::StrCat("CREATE DATABASE ", name).c_str());
    if (PQresultStatus(result) != PGRES_COMMAND_OK) {
      status = absl::InternalError(PQresultErrorMessage(result));
    }
    PQclear(result);
  }
  PQfinish(conn);
  return status;
}

std::unique_ptr<SecretStore> NewPostgresStore() {
  if (server == nullptr) {
    ADD_FAILURE() << "could not start PostgreSQL: " << *start_error;
    return nullptr;
  }
  static int counter = 0;
  const std::string database = absl::StrCat("contract_", ++counter);
  if (absl::Status created = CreateDatabase(database); !created.ok()) {
    ADD_FAILURE() << created;
    return nullptr;
  }
  PostgresPoolOptions pool;
  pool.dsn = server->DsnForDatabase(database);
  absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store =
      PostgresSecretStore::Open(std::move(pool), ContractKeyRing());
  if (!store.ok()) {
    ADD_FAILURE() << store.status();
    return nullptr;
  }
  return *std::move(store);
}

INSTANTIATE_TEST_SUITE_P(Postgres, StoreContractTest,
                         ::testing::Values(StoreContractParam{"Postgres", &NewPostgresStore}),
                         StoreContractParamName);

}  // namespace
}  // namespace secret_resolver
