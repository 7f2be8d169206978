// A second process for the PostgreSQL store tests: opens the store at DSN with the KEK file
// KEKS and runs one command, so that tests can write from another process and connection, kill
// a writer mid-batch and race migrations. Values come from argv: they are test data, not
// secrets. The DSN names a throwaway test database and holds no password.
//
//   postgres_store_helper DSN KEKS open
//   postgres_store_helper DSN KEKS put STACK NAME VALUE          prints the new version
//   postgres_store_helper DSN KEKS delete STACK NAME
//   postgres_store_helper DSN KEKS put-many STACK NAME COUNT TAG  puts TAG-0 .. TAG-(COUNT-1),
//                                                                printing each version on a line
//   postgres_store_helper DSN KEKS update-all STACK COUNT PREFIX
//       for i in 0..COUNT-1: prints i, then puts s-i = PREFIX-i (the test kills it somewhere).
//
// Exit status: 0 success, 1 usage, 2 a store error (message on stderr).
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/postgres/postgres_secret_store.h"
#include "resolver/secret_bytes.h"

namespace secret_resolver {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "postgres_store_helper: %s\n", status.ToString().c_str());
  return 2;
}

int Usage() {
  std::fprintf(stderr, "usage: postgres_store_helper DSN KEKS COMMAND ARGS... (see the source)\n");
  return 1;
}

SecretWrite Write(const std::string& stack, const std::string& name, const std::string& value) {
  SecretWrite write;
  write.stack = stack;
  write.name = name;
  write.decrypters = {"grafana-workflows"};
  write.actor = "helper";
  write.value = SecretBytes(value);
  return write;
}

// Prints a line and flushes it at once, so the parent sees progress as it happens.
void PrintLine(const std::string& line) {
  const std::string text = line + "\n";
  (void)!write(STDOUT_FILENO, text.data(), text.size());
}

int Run(int argc, char** argv) {
  if (argc < 4) return Usage();
  const std::string command = argv[3];
  absl::StatusOr<KeyRing> ring = KeyRing::LoadFromFile(argv[2]);
  if (!ring.ok()) return Fail(ring.status());
  PostgresPoolOptions pool;
  pool.dsn = argv[1];
  pool.max_connections = 2;
  absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store =
      PostgresSecretStore::Open(std::move(pool), &*ring);
  if (!store.ok()) return Fail(store.status());

  if (command == "open" && argc == 4) return 0;
  if (command == "put" && argc == 7) {
    absl::StatusOr<int64_t> version = (*store)->Put(Write(argv[4], argv[5], argv[6]));
    if (!version.ok()) return Fail(version.status());
    PrintLine(absl::StrCat(*version));
    return 0;
  }
  if (command == "delete" && argc == 6) {
    absl::Status status = (*store)->Delete(argv[4], argv[5], "helper");
    return status.ok() ? 0 : Fail(status);
  }
  int count = 0;
  if (command == "put-many" && argc == 8 && absl::SimpleAtoi(argv[6], &count)) {
    for (int i = 0; i < count; ++i) {
      absl::StatusOr<int64_t> version =
          (*store)->Put(Write(argv[4], argv[5], absl::StrCat(argv[7], "-", i)));
      if (!version.ok()) return Fail(version.status());
      PrintLine(absl::StrCat(*version));
    }
    return 0;
  }
  if (command == "update-all" && argc == 7 && absl::SimpleAtoi(argv[5], &count)) {
    for (int i = 0; i < count; ++i) {
      PrintLine(absl::StrCat(i));
      absl::StatusOr<int64_t> version =
          (*store)->Put(Write(argv[4], absl::StrCat("s-", i), absl::StrCat(argv[6], "-", i)));
      if (!version.ok()) return Fail(version.status());
    }
    return 0;
  }
  return Usage();
}

}  // namespace
}  // namespace secret_resolver

int main(int argc, char** argv) { return secret_resolver::Run(argc, argv); }
