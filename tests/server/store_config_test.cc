// The configuration file's store section reaches the store: StoreConfigFromProto maps every
// field, and a store opened from it has the configured file, database, DSN variable and pool
// size (against a real PostgreSQL server this binary starts once).
#include "server/store_config.h"

#include <sys/stat.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/secretresolver/config/v1/config.pb.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/postgres/postgres_schema.h"
#include "resolver/secret_bytes.h"
#include "resolver/store/store_config.h"
#include "tests/resolver/postgres/postgres_storage.h"
#include "tests/resolver/storage_contract/durable_store_fixture.h"
#include "tests/testing/postgres_environment.h"
#include "tests/testing/status_matchers.h"

namespace secret_resolver {
namespace {

using secretresolver::config::v1::Store;
using ::testing::HasSubstr;

SecretWrite Write(absl::string_view name) {
  SecretWrite write;
  write.stack = "stacks-1";
  write.name = std::string(name);
  write.decrypters = {"grafana-workflows"};
  write.actor = "test";
  write.value = SecretBytes("v");
  return write;
}

TEST(StoreConfigFromProtoTest, MapsEveryField) {
  Store sqlite;
  sqlite.mutable_sqlite()->set_path("/var/lib/secret-resolver/secrets.db");
  sqlite.mutable_sqlite()->mutable_busy_timeout()->set_seconds(3);
  StoreConfig config = StoreConfigFromProto(sqlite);
  ASSERT_TRUE(std::holds_alternative<SqliteStoreConfig>(config.backend));
  EXPECT_EQ(std::get<SqliteStoreConfig>(config.backend).path,
            "/var/lib/secret-resolver/secrets.db");
  EXPECT_EQ(std::get<SqliteStoreConfig>(config.backend).options.busy_timeout, absl::Seconds(3));

  Store postgres;
  postgres.mutable_postgres()->set_dsn("host=db dbname=secrets");
  postgres.mutable_postgres()->set_max_connections(4);
  postgres.mutable_postgres()->set_allow_insecure(true);
  postgres.mutable_postgres()->mutable_connect_timeout()->set_seconds(1);
  postgres.mutable_postgres()->mutable_statement_timeout()->set_nanos(700000000);
  config = StoreConfigFromProto(postgres);
  ASSERT_TRUE(std::holds_alternative<PostgresStoreConfig>(config.backend));
  const PostgresStoreConfig& mapped = std::get<PostgresStoreConfig>(config.backend);
  EXPECT_EQ(mapped.dsn, "host=db dbname=secrets");
  EXPECT_EQ(mapped.dsn_env, "");
  EXPECT_EQ(mapped.max_connections, 4);
  EXPECT_TRUE(mapped.options.allow_insecure);
  EXPECT_EQ(mapped.options.timeouts.connect, absl::Seconds(1));
  EXPECT_EQ(mapped.options.timeouts.statement, absl::Milliseconds(700));

  Store from_env;
  from_env.mutable_postgres()->set_dsn_env("SECRET_RESOLVER_DSN");
  config = StoreConfigFromProto(from_env);
  const PostgresStoreConfig& env_mapped = std::get<PostgresStoreConfig>(config.backend);
  EXPECT_EQ(env_mapped.dsn, "");
  EXPECT_EQ(env_mapped.dsn_env, "SECRET_RESOLVER_DSN");
  EXPECT_EQ(env_mapped.max_connections, PostgresStoreConfig().max_connections);
  EXPECT_FALSE(env_mapped.options.allow_insecure);
  EXPECT_EQ(env_mapped.options.timeouts.statement, PostgresTimeouts().statement);
}

TEST(StoreConfigFromProtoTest, MapsEveryUpstreamField) {
  Store proto;
  auto* up = proto.mutable_upstream();
  up->set_address("central.secrets.svc:8443");
  up->set_ca_file("/etc/ca.pem");
  up->set_cert_file("/etc/client.pem");
  up->set_key_file("/etc/client.key");
  up->set_server_name("central");
  up->mutable_reload_interval()->set_seconds(30);
  up->mutable_timeout()->set_nanos(500000000);
  up->set_allow_insecure(true);
  StoreConfig config = StoreConfigFromProto(proto);
  ASSERT_TRUE(std::holds_alternative<UpstreamStoreConfig>(config.backend));
  const UpstreamStoreOptions& mapped = std::get<UpstreamStoreConfig>(config.backend).options;
  EXPECT_EQ(mapped.address, "central.secrets.svc:8443");
  EXPECT_EQ(mapped.ca_file, "/etc/ca.pem");
  EXPECT_EQ(mapped.cert_file, "/etc/client.pem");
  EXPECT_EQ(mapped.key_file, "/etc/client.key");
  EXPECT_EQ(mapped.server_name, "central");
  EXPECT_EQ(mapped.reload_interval, absl::Seconds(30));
  EXPECT_EQ(mapped.timeout, absl::Milliseconds(500));
  EXPECT_TRUE(mapped.allow_insecure);
  EXPECT_FALSE(StoreNeedsKeys(config));
  EXPECT_EQ(DescribeStoreConfig(config), "upstream:central.secrets.svc:8443");

  // Opened without any KEK; as an encrypted store (secretctl), refused.
  Store loopback;
  loopback.mutable_upstream()->set_address("127.0.0.1:1");
  loopback.mutable_upstream()->set_allow_insecure(true);
  const StoreConfig plain = StoreConfigFromProto(loopback);
  absl::StatusOr<std::unique_ptr<SecretStore>> store = OpenStore(plain, nullptr);
  ASSERT_THAT(store.status(), IsOk());
  EXPECT_NE((*store)->caller_scoped_reads(), nullptr);
  EXPECT_THAT(OpenSecretStore(plain, nullptr).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("store.upstream")));
}

TEST(StoreConfigFromProtoTest, TheSqliteStoreIsOpenedAtTheConfiguredPath) {
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/configured.db");
  Store proto;
  proto.mutable_sqlite()->set_path(path);
  const KeyRing ring = RingWith("kek-1");
  absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> store =
      OpenSecretStore(StoreConfigFromProto(proto), &ring);
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT((*store)->Put(Write("a")), IsOk());
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << "no store file at " << path;
}

TEST(StoreConfigFromProtoTest, ThePostgresStoreReadsTheConfiguredDsnVariable) {
  absl::StatusOr<std::string> dsn = CreateTestDatabase("from_env");
  ASSERT_THAT(dsn, IsOk());
  ASSERT_EQ(setenv("STORE_CONFIG_TEST_DSN", dsn->c_str(), 1), 0);
  Store proto;
  proto.mutable_postgres()->set_dsn_env("STORE_CONFIG_TEST_DSN");
  const KeyRing ring = RingWith("kek-1");
  absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> store =
      OpenSecretStore(StoreConfigFromProto(proto), &ring);
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT((*store)->Put(Write("a")), IsOk());
  EXPECT_EQ(RawPostgresConnection(*dsn).QueryOne("SELECT COUNT(*) FROM secure_values"), "1");
  unsetenv("STORE_CONFIG_TEST_DSN");
}

// max_connections bounds the store's pool: while every configured connection waits on a lock
// this test holds, one more operation waits for a connection (with a larger pool it would open
// a new one and be done at once).
TEST(StoreConfigFromProtoTest, ThePostgresPoolHasTheConfiguredMaxConnections) {
  absl::StatusOr<std::string> dsn = CreateTestDatabase("pool_size");
  ASSERT_THAT(dsn, IsOk());
  Store proto;
  proto.mutable_postgres()->set_dsn(*dsn);
  proto.mutable_postgres()->set_max_connections(2);
  const KeyRing ring = RingWith("kek-1");
  absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> store =
      OpenSecretStore(StoreConfigFromProto(proto), &ring);
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT((*store)->Put(Write("held")), IsOk());

  RawPostgresConnection holder(*dsn);
  holder.Query("BEGIN");
  holder.Query(absl::StrCat("SELECT pg_advisory_xact_lock(", kSecretLockClass,
                            ", hashtext('stacks-1/held'))"));
  std::vector<absl::StatusOr<int64_t>> puts(2);
  std::vector<std::thread> threads;
  for (auto& put : puts) {
    threads.emplace_back([&store, &put] { put = (*store)->Put(Write("held")); });
  }
  // Both writers hold a pooled connection, waiting for the lock.
  RawPostgresConnection admin(*dsn);
  const std::string waiting =
      "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND "
      "application_name = 'secret-resolver' AND wait_event_type = 'Lock'";
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (admin.QueryOne(waiting) != "2" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(admin.QueryOne(waiting), "2");

  absl::Notification read_done;
  absl::StatusOr<StoredSecret> read;
  threads.emplace_back([&] {
    read = (*store)->Get("stacks-1", "held");
    read_done.Notify();
  });
  EXPECT_FALSE(read_done.WaitForNotificationWithTimeout(absl::Milliseconds(500)))
      << "a third operation got a connection while the 2 configured ones were in use";
  EXPECT_EQ(admin.QueryOne("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND application_name = 'secret-resolver'"),
            "2");
  holder.Query("ROLLBACK");
  for (std::thread& thread : threads) thread.join();
  for (const auto& put : puts) EXPECT_THAT(put, IsOk());
  EXPECT_THAT(read, IsOk());
}

}  // namespace
}  // namespace secret_resolver
