// secretctl on PostgreSQL: one smoke test of the `postgres:DSN` store URL, with the real binary
// against a real PostgreSQL server this test binary starts (//tests/testing:postgres_server).
// A binary that cannot start its server fails; it is never skipped. Values are checked through
// PostgresSecretStore::Get and never printed.
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "resolver/crypto/key_ring.h"
#include "resolver/postgres/postgres_pool.h"
#include "resolver/postgres/postgres_secret_store.h"
#include "resolver/secret_bytes.h"
#include "tests/testing/postgres_server.h"
#include "tests/tools/secretctl/secretctl_runner.h"

namespace secret_resolver {
namespace {

using ::secret_resolver::testing::RunSecretctl;
using ::secret_resolver::testing::SecretctlResult;
using ::secret_resolver::testing::SecretctlRun;
using ::testing::HasSubstr;

constexpr char kValue1[] = "PG-VALUE-ONE-0ddba11-5ecret";
constexpr char kValue2[] = "PG-VALUE-TWO-ba5eba11-5ecret";

std::vector<std::string> Hidden() { return {kValue1, kValue2}; }

class SecretctlPostgresTest : public ::testing::Test {
 protected:
  // On the main thread, which outlives the server (see postgres_server.h).
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<PostgresServer>> started = PostgresServer::Start();
    if (started.ok()) {
      server_ = started->release();
    } else {
      start_error_ = new absl::Status(started.status());
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "could not start PostgreSQL: " << *start_error_;
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/secretctl-pg-XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }

  SecretctlResult Run(std::vector<std::string> args, std::string stdin_data = "") {
    SecretctlRun run;
    run.args = std::move(args);
    run.stdin_data = std::move(stdin_data);
    return RunSecretctl(run);
  }

  // Whether the store holds `expected` as the value of (stack, name); never prints either.
  void ExpectValue(const std::string& kek_file, const std::string& stack, const std::string& name,
                   absl::string_view expected, int64_t version) {
    absl::StatusOr<KeyRing> ring = KeyRing::LoadFromFile(kek_file);
    ASSERT_TRUE(ring.ok()) << ring.status();
    PostgresPoolOptions pool;
    pool.dsn = server_->dsn();
    pool.max_connections = 1;
    absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store =
        PostgresSecretStore::Open(pool, &*ring);
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<StoredSecret> secret = (*store)->Get(stack, name);
    ASSERT_TRUE(secret.ok()) << secret.status();
    EXPECT_TRUE(secret->value.Equals(expected)) << "stored value differs for " << name;
    EXPECT_EQ(secret->version, version);
  }

  static PostgresServer* server_;
  static absl::Status* start_error_;
  std::string dir_;
};

PostgresServer* SecretctlPostgresTest::server_ = nullptr;
absl::Status* SecretctlPostgresTest::start_error_ = nullptr;

TEST_F(SecretctlPostgresTest, EveryCommandWorksOnAPostgresStore) {
  const std::string store = "postgres:" + server_->dsn();
  const std::string kek = dir_ + "/kek";
  const std::string kek2 = dir_ + "/kek-2";
  auto with_store = [&](std::vector<std::string> args, const std::string& kek_file) {
    args.insert(args.begin() + 1, {"--store", store, "--kek-file", kek_file});
    return args;
  };

  SecretctlResult r = Run({"init", "--store", store, "--kek-file", kek, "--kek-id", "kek-1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("initialized store postgres:"));

  r = Run(with_store({"create", "--stack", "stack-9", "--name", "workflows/http/auth-token",
                      "--decrypter", "grafana-workflows"},
                     kek),
          kValue1);
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  ExpectValue(kek, "stacks-9", "workflows/http/auth-token", kValue1, 1);

  r = Run(with_store({"create", "--stack", "stacks-9", "--name", "workflows/http/auth-token"}, kek),
          kValue2);
  EXPECT_EQ(r.exit_code, 4) << r.Describe(Hidden());

  // PostgreSQL text cannot hold invalid UTF-8: a rule of the store's, still named by flag.
  r = Run(with_store({"update", "--stack", "stacks-9", "--name", "workflows/http/auth-token",
                      "--description", "bad \xff byte"},
                     kek),
          kValue2);
  EXPECT_EQ(r.exit_code, 5) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("secretctl update: --description"));

  r = Run(with_store({"update", "--stack", "stacks-9", "--name", "workflows/http/auth-token"}, kek),
          kValue2);
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  ExpectValue(kek, "stacks-9", "workflows/http/auth-token", kValue2, 2);

  r = Run(with_store({"list", "--stack", "stacks-9", "--json"}, kek));
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  const nlohmann::json listed = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(listed.is_object()) << "stdout is not JSON";
  ASSERT_EQ(listed["secrets"].size(), 1u);
  EXPECT_EQ(listed["secrets"][0]["version"], 2);
  EXPECT_EQ(listed["secrets"][0]["decrypters"], nlohmann::json::array({"grafana-workflows"}));

  r = Run(with_store(
      {"versions", "--stack", "stacks-9", "--name", "workflows/http/auth-token", "--json"}, kek));
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  EXPECT_EQ(nlohmann::json::parse(r.out, nullptr, false)["versions"].size(), 2u);

  ASSERT_EQ(Run({"gen-kek", "--kek-file", kek2, "--kek-id", "kek-2"}).exit_code, 0);
  r = Run(with_store({"rotate-kek", "--new-kek-file", kek2}, kek));
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("rewrapped 1 data key with KEK \"kek-2\""));
  ExpectValue(kek2, "stacks-9", "workflows/http/auth-token", kValue2, 2);

  r = Run(with_store({"migrate"}, kek2));
  EXPECT_EQ(r.exit_code, 0) << r.Describe();

  r = Run(
      with_store({"delete", "--stack", "stacks-9", "--name", "workflows/http/auth-token"}, kek2));
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  r = Run(with_store({"get", "--stack", "stacks-9", "--name", "workflows/http/auth-token"}, kek2));
  EXPECT_EQ(r.exit_code, 3) << r.Describe();

  // The value never reached any output (the runs above kept their outputs only briefly, so
  // check a fresh round of the read commands too).
  for (const char* command : {"get", "versions", "list"}) {
    std::vector<std::string> args = {command, "--stack", "stacks-9", "--json"};
    if (std::string(command) != "list") {
      args.insert(args.end(), {"--name", "workflows/http/auth-token"});
    }
    r = Run(with_store(args, kek2));
    for (const std::string& value : Hidden()) {
      EXPECT_FALSE(absl::StrContains(r.out, value)) << command;
      EXPECT_FALSE(absl::StrContains(r.err, value)) << command;
    }
  }
}

}  // namespace
}  // namespace secret_resolver
