// The SecretStore contract suite, run against SqliteSecretStore: a fresh file per test.
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "tests/resolver/storage_contract/store_contract.h"

namespace secret_resolver {
namespace {

const KeyRing* ContractKeyRing() {
  static const KeyRing* ring = [] {
    auto* ring = new KeyRing;
    absl::StatusOr<SecretBytes> kek = KeyRing::GenerateKek();
    if (!kek.ok() || !ring->Add("contract-kek", *std::move(kek)).ok()) std::abort();
    return ring;
  }();
  return ring;
}

std::unique_ptr<SecretStore> NewSqliteStore() {
  static int counter = 0;
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/contract-", ++counter,
                                        "-", getpid(), ".db");
  for (const char* suffix : {"", "-wal", "-shm"}) unlink((path + suffix).c_str());
  absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
      SqliteSecretStore::Open(path, ContractKeyRing());
  if (!store.ok()) {
    ADD_FAILURE() << store.status();
    return nullptr;
  }
  return *std::move(store);
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContractTest,
                         ::testing::Values(StoreContractParam{"Sqlite", &NewSqliteStore}),
                         StoreContractParamName);

}  // namespace
}  // namespace secret_resolver
