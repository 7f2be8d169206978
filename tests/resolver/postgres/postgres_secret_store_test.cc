// PostgreSQL-specific behaviour of PostgresSecretStore against a real PostgreSQL 15 server that
// this binary starts once (tests/testing/postgres_environment.h), a fresh database per test: the
// schema's PostgreSQL spelling, bytewise List order under any collation, racing first writers of
// a stack, text PostgreSQL cannot hold, the NOTIFY payload and Watch across a server restart,
// connection failures (retry on a fresh connection, timeouts, an unreachable server), and a
// writer process killed mid-batch. What the SQLite and PostgreSQL stores share is in the
// contract suites (postgres_store_contract_test.cc).
//
// Waits are bounded: condition waits on what listeners recorded, or short polls of
// pg_stat_activity with a deadline; never a fixed sleep.
#include "resolver/postgres/postgres_secret_store.h"

#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "resolver/crypto/envelope.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/postgres/postgres_schema.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_validation.h"
#include "resolver/sqlite/schema.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "resolver/storage_format/migration.h"
#include "tests/resolver/postgres/postgres_storage.h"
#include "tests/resolver/storage_contract/durable_store_fixture.h"
#include "tests/testing/change_recorder.h"
#include "tests/testing/child_process.h"
#include "tests/testing/postgres_environment.h"
#include "tests/testing/status_matchers.h"

namespace secret_resolver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kStack = kTestStack;
constexpr char kMarker[] = "PLAINTEXT-MARKER-7f3a";
constexpr char kPassword[] = "Zq9-not-a-real-password";

absl::Time In(absl::Duration d) { return absl::Now() + d; }

using RawConnection = RawPostgresConnection;

// A thread joined when it goes out of scope, so that a failed ASSERT does not terminate the
// binary with a joinable thread.
class ScopedThread {
 public:
  explicit ScopedThread(std::function<void()> body) : thread_(std::move(body)) {}
  ~ScopedThread() { Join(); }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::thread thread_;
};

// A fresh database per test on the binary's shared server, opened with the typed store for
// PostgreSQL's own options.
class PostgresSecretStoreTest : public ::testing::Test, public DurableStoreFixture {
 protected:
  void SetUp() override {
    absl::StatusOr<PostgresServer*> server = SharedPostgresServer();
    ASSERT_THAT(server, IsOk()) << "could not start PostgreSQL";
    server_ = *server;
    SetUpStorage(&NewPostgresStorage);
    dsn_ = static_cast<PostgresStorage&>(*storage_).dsn();
  }

  absl::StatusOr<std::unique_ptr<PostgresSecretStore>> OpenPostgres(
      const KeyRing* ring = nullptr, PostgresStoreOptions options = {},
      const std::string& dsn = "") {
    PostgresPoolOptions pool;
    pool.dsn = dsn.empty() ? dsn_ : dsn;
    pool.application_name = kStoreApplicationName;
    if (options.watch_initial_backoff == PostgresStoreOptions().watch_initial_backoff) {
      options.watch_initial_backoff = absl::Milliseconds(20);
      options.watch_max_backoff = absl::Milliseconds(200);
    }
    return PostgresSecretStore::Open(std::move(pool), ring != nullptr ? ring : &ring_,
                                     std::move(options));
  }

  std::unique_ptr<PostgresSecretStore> MustOpenPostgres(const KeyRing* ring = nullptr,
                                                        PostgresStoreOptions options = {},
                                                        const std::string& dsn = "") {
    absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store =
        OpenPostgres(ring, std::move(options), dsn);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  // The helper on this test's database, its connections named `application_name`.
  ChildProcess HelperAs(const std::string& application_name,
                        const std::vector<std::string>& command) {
    return Helper(command, absl::StrCat("postgres:", dsn_, " application_name=", application_name));
  }

  // Polls pg_stat_activity until a backend of `application_name` waits for a lock; returns its
  // pid, or "" with a test failure at the deadline.
  std::string WaitForLockWaiter(const std::string& application_name,
                                const std::string& other_than = "") {
    RawConnection admin(dsn_);
    const absl::Time deadline = In(absl::Seconds(10));
    while (absl::Now() < deadline) {
      Rows rows = admin.Query(absl::StrCat(
          "SELECT pid FROM pg_stat_activity WHERE application_name = '", application_name,
          "' AND wait_event_type = 'Lock'", other_than.empty() ? "" : " AND pid <> ", other_than));
      if (!rows.empty()) return rows[0][0];
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "no backend of " << application_name << " waited for a lock";
    return "";
  }

  // Polls until no backend of `application_name` is left (a killed client's backend rolls back
  // and exits once it notices).
  void WaitForBackendsToExit(const std::string& application_name) {
    RawConnection admin(dsn_);
    const absl::Time deadline = In(absl::Seconds(10));
    while (absl::Now() < deadline) {
      if (admin.QueryOne(absl::StrCat("SELECT COUNT(*) FROM pg_stat_activity WHERE"
                                      " application_name = '",
                                      application_name, "'")) == "0") {
        return;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "backends of " << application_name << " did not exit";
  }

  PostgresServer* server_ = nullptr;
  std::string dsn_;
};

TEST_F(PostgresSecretStoreTest, SchemaHasTheSameTablesAndColumnsAsSqlite) {
  std::unique_ptr<PostgresSecretStore> store = MustOpenPostgres();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(PostgresMigrations().back().version, kLatestSchemaVersion);
  EXPECT_EQ(SqliteMigrations().back().version, kLatestSchemaVersion);
  ASSERT_EQ(PostgresMigrations().size(), SqliteMigrations().size());
  for (size_t i = 0; i < PostgresMigrations().size(); ++i) {
    EXPECT_EQ(PostgresMigrations()[i].version, SqliteMigrations()[i].version);
  }

  // The SQLite store's tables and columns, from a fresh file.
  const std::string sqlite_path = dir_ + "/store.db";
  ASSERT_TRUE(SqliteSecretStore::Open(sqlite_path, &ring_).ok());
  std::vector<std::string> sqlite_columns;
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(sqlite_path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db,
                                 "SELECT m.name || '.' || p.name FROM sqlite_master m,"
                                 " pragma_table_info(m.name) p WHERE m.type = 'table' AND"
                                 " m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
                                 -1, &stmt, nullptr),
              SQLITE_OK);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      sqlite_columns.push_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
  }

  RawConnection raw(dsn_);
  std::vector<std::string> postgres_columns;
  for (const auto& row : raw.Query("SELECT table_name || '.' || column_name FROM"
                                   " information_schema.columns WHERE table_schema = 'public'"
                                   " ORDER BY table_name, ordinal_position")) {
    postgres_columns.push_back(row[0]);
  }
  EXPECT_EQ(postgres_columns, sqlite_columns);
  EXPECT_EQ(sqlite_columns.size(), 2u + 8u + 12u + 7u);

  // The PostgreSQL types docs/storage-format.md gives.
  EXPECT_THAT(raw.Query("SELECT table_name, column_name, data_type FROM information_schema.columns"
                        " WHERE table_schema = 'public' AND data_type NOT IN ('text', 'bigint')"
                        " ORDER BY table_name, column_name"),
              ElementsAre(ElementsAre("data_keys", "active", "boolean"),
                          ElementsAre("data_keys", "kek_check", "bytea"),
                          ElementsAre("data_keys", "wrapped_key", "bytea"),
                          ElementsAre("secure_values", "active", "boolean"),
                          ElementsAre("secure_values", "ciphertext", "bytea")));
  EXPECT_EQ(raw.QueryOne("SELECT collation_name FROM information_schema.columns WHERE"
                         " table_name = 'secure_values' AND column_name = 'name'"),
            "C");
  EXPECT_EQ(raw.QueryOne("SELECT is_identity FROM information_schema.columns WHERE"
                         " table_name = 'change_log' AND column_name = 'seq'"),
            "YES");
  EXPECT_THAT(raw.Query("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
                        " AND indexname IN ('data_keys_active', 'secure_values_active')"
                        " ORDER BY indexname"),
              ElementsAre(ElementsAre("data_keys_active"), ElementsAre("secure_values_active")));
  EXPECT_THAT(raw.Query("SELECT version FROM schema_version"), ElementsAre(ElementsAre("1")));
}

TEST_F(PostgresSecretStoreTest, ListSortsBytewiseEvenWhenTheDatabaseCollationDoesNot) {
  // An ICU collation that ignores punctuation: "ab" sorts before "a-c" there, after it in C.
  absl::StatusOr<std::string> icu = CreateTestDatabase(
      "icu", "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'und-u-ka-shifted'");
  ASSERT_THAT(icu, IsOk());
  const std::string dsn = *icu;
  std::unique_ptr<PostgresSecretStore> store = MustOpenPostgres(nullptr, {}, dsn);
  ASSERT_NE(store, nullptr);
  std::vector<std::string> names = {"ab", "a-c", "a.b", "a/b", "a0", "a10", "a9", "b", "a-a"};
  for (const std::string& name : names) ASSERT_TRUE(store->Put(TestWrite(name, "v")).ok()) << name;
  std::sort(names.begin(), names.end());

  absl::StatusOr<std::vector<SecretMetadata>> list = store->List(kStack);
  ASSERT_TRUE(list.ok()) << list.status();
  std::vector<std::string> listed;
  for (const SecretMetadata& meta : *list) listed.push_back(meta.name);
  EXPECT_EQ(listed, names);

  // The database's own collation would have given another order: the test means something.
  std::vector<std::string> by_default;
  for (const auto& row : RawConnection(dsn).Query(
           "SELECT name FROM secure_values ORDER BY name COLLATE \"default\"")) {
    by_default.push_back(row[0]);
  }
  EXPECT_NE(by_default, names);
}

TEST_F(PostgresSecretStoreTest, FirstWritersOfAStackRacingShareOneDataKey) {
  // Deterministic: another writer has inserted the stack's data key but not committed yet. The
  // store's insert waits for it, then uses that key.
  absl::StatusOr<std::string> id = NewDataKeyId();
  absl::StatusOr<SecretBytes> key = GenerateDataKey();
  ASSERT_TRUE(id.ok() && key.ok());
  absl::StatusOr<WrappedDataKey> wrapped = WrapDataKey(ring_, "kek-1", "race-1", *id, *key);
  ASSERT_TRUE(wrapped.ok());
  std::unique_ptr<PostgresSecretStore> store = MustOpenPostgres();
  ASSERT_NE(store, nullptr);
  RawConnection other_writer(dsn_);
  other_writer.Query("BEGIN");
  other_writer.Query(absl::StrCat(
      "INSERT INTO data_keys (stack, id, wrapped_key, kek_id, kek_check, active, created_at_us,"
      " updated_at_us) VALUES ('race-1', '",
      *id, "', decode('", absl::BytesToHexString(wrapped->wrapped), "', 'hex'), 'kek-1', decode('",
      absl::BytesToHexString(wrapped->kek_check), "', 'hex'), TRUE, 1, 1)"));
  absl::StatusOr<int64_t> version;
  ScopedThread put([&] { version = store->Put(TestWrite("first", "v", "race-1")); });
  EXPECT_NE(WaitForLockWaiter(kStoreApplicationName), "");
  other_writer.Query("COMMIT");
  put.Join();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 1);
  RawConnection raw(dsn_);
  EXPECT_EQ(raw.QueryOne("SELECT string_agg(id, ',') FROM data_keys WHERE stack = 'race-1'"), *id);
  EXPECT_EQ(raw.QueryOne("SELECT data_key_id FROM secure_values WHERE stack = 'race-1'"), *id);
  absl::StatusOr<StoredSecret> got = store->Get("race-1", "first");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->value.Equals("v"));

  // Free-running: two stores, eight threads, new stacks.
  std::unique_ptr<PostgresSecretStore> second = MustOpenPostgres();
  ASSERT_NE(second, nullptr);
  constexpr int kStacks = 5;
  constexpr int kThreads = 8;
  for (int s = 0; s < kStacks; ++s) {
    const std::string stack = absl::StrCat("burst-", s);
    std::atomic<int> ready{0};
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        PostgresSecretStore& target = t % 2 == 0 ? *store : *second;
        ready.fetch_add(1);
        while (ready.load() < kThreads) {
        }
        if (!target.Put(TestWrite(absl::StrCat("n-", t), absl::StrCat("v-", t), stack)).ok()) {
          failures.fetch_add(1);
        }
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0) << stack;
    EXPECT_EQ(raw.QueryOne("SELECT COUNT(*) FROM data_keys WHERE stack = '" + stack + "'"), "1");
    for (int t = 0; t < kThreads; ++t) {
      absl::StatusOr<StoredSecret> value = store->Get(stack, absl::StrCat("n-", t));
      ASSERT_TRUE(value.ok()) << value.status();
      EXPECT_TRUE(value->value.Equals(absl::StrCat("v-", t)));
    }
  }
}

// Text columns hold neither NUL bytes nor invalid UTF-8; the store says so, naming the field,
// before PostgreSQL does. (The checks every store makes are in the contract suite.)
TEST_F(PostgresSecretStoreTest, TextPostgresCannotHoldIsInvalidArgumentNamingTheField) {
  std::unique_ptr<PostgresSecretStore> store = MustOpenPostgres();
  ASSERT_NE(store, nullptr);
  SecretWrite nul_description = TestWrite("n", kMarker);
  nul_description.description = std::string("a\0b", 3);
  EXPECT_THAT(store->Put(nul_description),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("description"), Not(HasSubstr(kMarker)))));
  EXPECT_THAT(store->Put(TestWrite("n", kMarker, kStack, "user:\xc3\x28")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("actor")));
  EXPECT_THAT(store->Put(TestWrite("n", kMarker, kStack, std::string("u\0", 2))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("actor")));
  ASSERT_THAT(store->Put(TestWrite("n", "v")), IsOk());
  EXPECT_THAT(store->Delete(kStack, "n", "user:\xc3\x28"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("actor")));
  EXPECT_EQ(RawConnection(dsn_).QueryOne("SELECT COUNT(*) FROM secure_values"), "1");
  // A UTF-8 description and actor are fine.
  SecretWrite utf8 = TestWrite("n", "v", kStack, "user:\xc3\xa9lodie");
  utf8.description = "caf\xc3\xa9 \xf0\x9f\x94\x91";
  ASSERT_THAT(store->Put(utf8), IsOk());
  absl::StatusOr<std::vector<SecretMetadata>> list = store->List(kStack);
  ASSERT_THAT(list, IsOk());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].description, utf8.description);
  EXPECT_EQ((*list)[0].updated_by, utf8.actor);
}

TEST(PostgresSecretStoreUnreachableTest, UnreachableServerIsUnavailableWithoutThePassword) {
  KeyRing ring;
  absl::StatusOr<SecretBytes> kek = KeyRing::GenerateKek();
  ASSERT_TRUE(kek.ok());
  ASSERT_TRUE(ring.Add("kek-1", *std::move(kek)).ok());
  for (const std::string& dsn :
       {absl::StrCat("host=/nonexistent-socket-dir port=5432 user=resolver dbname=secrets"
                     " connect_timeout=5 password=",
                     kPassword),
        absl::StrCat("postgresql://resolver:", kPassword,
                     "@/secrets?host=/nonexistent-socket-dir&sslmode=prefer")}) {
    PostgresPoolOptions pool;
    pool.dsn = dsn;
    absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store =
        PostgresSecretStore::Open(pool, &ring);
    EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable) << store.status();
    EXPECT_THAT(store.status().message(), Not(HasSubstr(kPassword)));
    EXPECT_THAT(store.status().message(), HasSubstr("/nonexistent-socket-dir"));
  }
  PostgresPoolOptions malformed;
  malformed.dsn = absl::StrCat("host=/tmp password=", kPassword, " sslmode=sometimes");
  absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store =
      PostgresSecretStore::Open(malformed, &ring);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(store.status().message(), Not(HasSubstr(kPassword)));
  PostgresStoreOptions bad_channel;
  bad_channel.channel = std::string(64, 'c');
  PostgresPoolOptions pool;
  pool.dsn = "host=/tmp";
  EXPECT_EQ(PostgresSecretStore::Open(pool, &ring, bad_channel).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A store on another machine without a verified certificate is refused before any connection;
// allow_insecure lets it through to the next check (here: the pool's size, so nothing connects).
TEST(PostgresSecretStoreTransportTest, RemoteServerWithoutVerificationNeedsAllowInsecure) {
  const KeyRing ring = RingWith("kek-1");
  PostgresPoolOptions pool;
  pool.dsn = absl::StrCat("host=db.internal sslmode=require password=", kPassword);
  pool.max_connections = 0;
  EXPECT_THAT(PostgresSecretStore::Open(pool, &ring),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::AllOf(HasSubstr("host=db.internal"),
                                        HasSubstr("sslmode=verify-full"),
                                        Not(HasSubstr(kPassword)))));
  PostgresStoreOptions insecure;
  insecure.allow_insecure = true;
  EXPECT_THAT(PostgresSecretStore::Open(pool, &ring, insecure),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_connections")));
}

TEST_F(PostgresSecretStoreTest, MissingDatabaseIsUnavailable) {
  absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store =
      OpenPostgres(nullptr, {}, server_->DsnForDatabase("no_such_database"));
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("no_such_database"));
}

TEST_F(PostgresSecretStoreTest, AConnectionKilledMidStatementIsRetriedOnceOnAFreshOne) {
  std::unique_ptr<PostgresSecretStore> store = MustOpenPostgres();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(TestWrite("retried", "v1")).ok());
  const std::string lock_sql = absl::StrCat("SELECT pg_advisory_xact_lock(", kSecretLockClass,
                                            ", hashtext('", kStack, "/retried'))");
  RawConnection admin(dsn_);
  {
    // The put waits for the secret's lock; its backend is terminated; it runs again on a new
    // connection and succeeds once the lock is free, exactly once.
    RawConnection holder(dsn_);
    holder.Query("BEGIN");
    holder.Query(lock_sql);
    absl::StatusOr<int64_t> version;
    ScopedThread put([&] { version = store->Put(TestWrite("retried", "v2")); });
    const std::string first = WaitForLockWaiter(kStoreApplicationName);
    ASSERT_NE(first, "");
    admin.Query("SELECT pg_terminate_backend(" + first + ")");
    const std::string second = WaitForLockWaiter(kStoreApplicationName, first);
    EXPECT_NE(second, "");
    holder.Query("ROLLBACK");
    put.Join();
    ASSERT_TRUE(version.ok()) << version.status();
    EXPECT_EQ(*version, 2);
  }
  {
    // Only once: a second failure is UNAVAILABLE, and nothing was written.
    RawConnection holder(dsn_);
    holder.Query("BEGIN");
    holder.Query(lock_sql);
    absl::StatusOr<int64_t> version;
    ScopedThread put([&] { version = store->Put(TestWrite("retried", "v3")); });
    const std::string first = WaitForLockWaiter(kStoreApplicationName);
    ASSERT_NE(first, "");
    admin.Query("SELECT pg_terminate_backend(" + first + ")");
    const std::string second = WaitForLockWaiter(kStoreApplicationName, first);
    ASSERT_NE(second, "");
    admin.Query("SELECT pg_terminate_backend(" + second + ")");
    put.Join();
    holder.Query("ROLLBACK");
    EXPECT_EQ(version.status().code(), absl::StatusCode::kUnavailable) << version.status();
  }
  absl::StatusOr<StoredSecret> got = store->Get(kStack, "retried");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->version, 2);
  EXPECT_TRUE(got->value.Equals("v2"));
  EXPECT_EQ(admin.QueryOne("SELECT COUNT(*) FROM secure_values WHERE name = 'retried'"), "2");
  EXPECT_EQ(admin.QueryOne("SELECT COUNT(*) FROM change_log WHERE name = 'retried'"), "2");
}

TEST_F(PostgresSecretStoreTest, AStatementOverTheTimeoutIsAbandonedAndNotRepeated) {
  PostgresStoreOptions options;
  options.timeouts.statement = absl::Milliseconds(300);
  std::unique_ptr<PostgresSecretStore> store = MustOpenPostgres(nullptr, options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(TestWrite("slow", "v1")).ok());
  RawConnection holder(dsn_);
  holder.Query("BEGIN");
  holder.Query(absl::StrCat("SELECT pg_advisory_xact_lock(", kSecretLockClass, ", hashtext('",
                            kStack, "/slow'))"));
  absl::StatusOr<int64_t> version = store->Put(TestWrite("slow", "v2"));
  EXPECT_EQ(version.status().code(), absl::StatusCode::kUnavailable) << version.status();
  EXPECT_THAT(version.status().message(), HasSubstr("no answer within"));
  holder.Query("ROLLBACK");
  WaitForBackendsToExit(kStoreApplicationName);  // the abandoned one exits once it gets the lock
  absl::StatusOr<int64_t> next = store->Put(TestWrite("slow", "v2"));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, 2);
}

TEST_F(PostgresSecretStoreTest, NotifyPayloadIsStackAndNameAsJsonSentOnlyOnCommit) {
  std::unique_ptr<PostgresSecretStore> store = MustOpenPostgres();
  ASSERT_NE(store, nullptr);
  KeyRing other = RingWith("kek-2");
  std::unique_ptr<PostgresSecretStore> other_store = MustOpenPostgres(&other);
  ASSERT_NE(other_store, nullptr);
  RawConnection listener(dsn_);
  listener.Query(absl::StrCat("LISTEN \"", kDefaultChangeChannel, "\""));

  ASSERT_TRUE(store->Put(TestWrite("a", kMarker)).ok());
  EXPECT_EQ(listener.NextNotification(In(absl::Seconds(5))), R"({"stack":"stacks-1","name":"a"})");
  // Fails inside the transaction (the stack's data key needs kek-1): no notification.
  EXPECT_EQ(other_store->Put(TestWrite("b", kMarker)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store->Put(TestWrite("workflows/http/c", kMarker)).ok());
  ASSERT_TRUE(store->Delete(kStack, "a", "user:bob").ok());
  EXPECT_EQ(listener.NextNotification(In(absl::Seconds(5))),
            R"({"stack":"stacks-1","name":"workflows/http/c"})");
  EXPECT_EQ(listener.NextNotification(In(absl::Seconds(5))), R"({"stack":"stacks-1","name":"a"})");
}

TEST_F(PostgresSecretStoreTest, AfterAServerRestartWatchResyncsAndLaterChangesStillArrive) {
  // The password is ignored by the test server (trust authentication); it must never show.
  const std::string dsn = absl::StrCat(dsn_, " password=", kPassword);
  ChangeRecorder recorder;  // outlives the store, whose thread calls it
  std::unique_ptr<PostgresSecretStore> store = MustOpenPostgres(nullptr, {}, dsn);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Watch(recorder.Listener()).ok());
  ChildProcess before = Helper({"put", kStack, "before", "v"});
  ASSERT_EQ(before.Wait(), 0);
  ASSERT_TRUE(recorder.WaitFor(kStack, "before", In(absl::Seconds(1))));

  ASSERT_TRUE(server_->Stop().ok());
  absl::StatusOr<StoredSecret> down = store->Get(kStack, "before");
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  EXPECT_THAT(down.status().message(), Not(HasSubstr(kPassword)));
  absl::StatusOr<int64_t> put_down = store->Put(TestWrite("during", "v"));
  EXPECT_EQ(put_down.status().code(), absl::StatusCode::kUnavailable) << put_down.status();
  EXPECT_THAT(put_down.status().message(), Not(HasSubstr(kPassword)));

  // The loss is told once, however many reconnections fail, before the resync.
  ASSERT_TRUE(recorder.WaitFor(
      [](const std::vector<SecretChange>& changes) {
        for (const SecretChange& c : changes) {
          if (c.feed_lost) return true;
        }
        return false;
      },
      In(absl::Seconds(5))))
      << "no feed_lost after the server stopped";
  absl::SleepFor(absl::Milliseconds(500));  // several reconnections fail meanwhile
  ASSERT_TRUE(server_->Restart().ok());
  ASSERT_TRUE(recorder.WaitForResync(In(absl::Seconds(10)))) << "no resync after the restart";
  int lost = 0;
  bool resynced = false;
  for (const SecretChange& change : recorder.changes()) {
    if (change.feed_lost) {
      ++lost;
      EXPECT_FALSE(resynced) << "feed_lost after the resync";
      EXPECT_THAT(change.detail, Not(HasSubstr(kPassword)));
    }
    if (change.resync || change.feed_lost) {
      EXPECT_EQ(change.stack, "");
      EXPECT_EQ(change.name, "");
    }
    if (change.resync) resynced = true;
  }
  EXPECT_EQ(lost, 1);
  ChildProcess after = Helper({"put", kStack, "after", "v-after"});
  ASSERT_EQ(after.Wait(), 0);
  EXPECT_TRUE(recorder.WaitFor(kStack, "after", In(absl::Seconds(1))))
      << "no change notification within 1 s after reconnecting";
  absl::StatusOr<StoredSecret> got = store->Get(kStack, "after");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->value.Equals("v-after"));
}

TEST_F(PostgresSecretStoreTest, WatchWhileTheServerIsDownIsUnavailableAndALaterWatchWorks) {
  PostgresStoreOptions options;
  options.watch_connect_timeout = absl::Milliseconds(500);
  const std::string dsn = absl::StrCat(dsn_, " password=", kPassword);
  ChangeRecorder lost;  // the recorders outlive the store, whose thread calls them
  ChangeRecorder recorder;
  std::unique_ptr<PostgresSecretStore> store = MustOpenPostgres(nullptr, options, dsn);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(server_->Stop().ok());
  absl::Status watch = store->Watch(lost.Listener());
  ASSERT_TRUE(server_->Restart().ok());
  EXPECT_EQ(watch.code(), absl::StatusCode::kUnavailable) << watch;
  EXPECT_THAT(watch.message(), Not(HasSubstr(kPassword)));

  ASSERT_TRUE(store->Watch(recorder.Listener()).ok());
  ASSERT_TRUE(store->Put(TestWrite("later", "v")).ok());
  EXPECT_TRUE(recorder.WaitFor(kStack, "later", In(absl::Seconds(1))));
  EXPECT_TRUE(lost.changes().empty()) << "a listener whose Watch failed was kept";
}

TEST_F(PostgresSecretStoreTest, WriterKilledMidBatchLeavesEverySecretAtItsOldOrNewVersion) {
  constexpr int kSecrets = 12;
  std::vector<std::string> value(kSecrets);  // the value each s-i has now
  std::vector<int64_t> version(kSecrets, 1);
  std::unique_ptr<PostgresSecretStore> store = MustOpenPostgres();
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < kSecrets; ++i) {
    value[i] = absl::StrCat("old-", i);
    ASSERT_TRUE(store->Put(TestWrite(absl::StrCat("s-", i), value[i])).ok());
  }
  const std::string app = "crash-writer";
  RawConnection blocker(dsn_);

  // Checks every secret after a writer that wrote PREFIX-i died while writing s-<in_progress>.
  auto check = [&](int in_progress, bool in_progress_may_have_committed,
                   const std::string& prefix) {
    for (int i = 0; i < kSecrets; ++i) {
      absl::StatusOr<StoredSecret> got = store->Get(kStack, absl::StrCat("s-", i));
      ASSERT_TRUE(got.ok()) << "s-" << i << ": " << got.status();
      const bool updated = got->version == version[i] + 1;
      if (i < in_progress) {
        EXPECT_TRUE(updated) << "s-" << i << " lost a committed write";
      } else if (i > in_progress || !in_progress_may_have_committed) {
        EXPECT_FALSE(updated) << "s-" << i << " shows a write that never committed";
      }
      if (updated) {
        value[i] = absl::StrCat(prefix, "-", i);
        version[i] = got->version;
      }
      EXPECT_EQ(got->version, version[i]) << "s-" << i;
      EXPECT_TRUE(got->value.Equals(value[i])) << "s-" << i << " is half-written";
    }
  };

  // 1. Killed while its transaction waits, half done: s-k's old version is retired and its new
  //    row is being inserted, but the insert waits for this test's uncommitted row with the same
  //    key. The writer got through s-0 .. s-(k-1) first.
  for (int k : {0, 4, 9, 11}) {
    SCOPED_TRACE(absl::StrCat("killed while writing s-", k));
    const std::string prefix = absl::StrCat("blocked", k);
    blocker.Query("BEGIN");
    blocker.Query(absl::StrCat(
        "INSERT INTO secure_values (stack, name, version, active, decrypters, description,"
        " created_at_us, created_by, updated_at_us, updated_by, ciphertext, data_key_id)"
        " VALUES ('",
        kStack, "', 's-", k, "', ", version[k] + 1,
        ", FALSE, '[]', '', 0, 'blocker', 0, 'blocker', '\\x00', 'none')"));
    ChildProcess writer = HelperAs(app, {"update-all", kStack, absl::StrCat(kSecrets), prefix});
    ASSERT_NE(WaitForLockWaiter(app), "");
    kill(writer.pid(), SIGKILL);
    std::string line;
    int in_progress = -1;
    while (writer.ReadLine(&line)) ASSERT_TRUE(absl::SimpleAtoi(line, &in_progress)) << line;
    ASSERT_EQ(writer.Wait(), 128 + SIGKILL);
    EXPECT_EQ(in_progress, k);
    blocker.Query("ROLLBACK");
    WaitForBackendsToExit(app);
    check(in_progress, /*in_progress_may_have_committed=*/false, prefix);
  }

  // 2. Killed at whatever point it reached when the test read its progress line: before,
  //    during or after sending any statement of a put, COMMIT included.
  for (int kill_after : {0, 3, 7, 11}) {
    SCOPED_TRACE(absl::StrCat("killed after reading line ", kill_after));
    const std::string prefix = absl::StrCat("timed", kill_after);
    ChildProcess writer = HelperAs(app, {"update-all", kStack, absl::StrCat(kSecrets), prefix});
    std::string line;
    int in_progress = -1;
    while (in_progress < kill_after && writer.ReadLine(&line)) {
      ASSERT_TRUE(absl::SimpleAtoi(line, &in_progress)) << line;
    }
    kill(writer.pid(), SIGKILL);
    while (writer.ReadLine(&line)) ASSERT_TRUE(absl::SimpleAtoi(line, &in_progress)) << line;
    writer.Wait();  // it may have finished first
    WaitForBackendsToExit(app);
    check(in_progress, /*in_progress_may_have_committed=*/true, prefix);
  }

  // Every secret: one active row, versions 1..n without gaps, one put in change_log per version.
  RawConnection raw(dsn_);
  EXPECT_EQ(raw.QueryOne("SELECT COUNT(*) FROM (SELECT name FROM secure_values GROUP BY name"
                         " HAVING COUNT(*) FILTER (WHERE active) <> 1 OR MAX(version) <> COUNT(*))"
                         " AS bad"),
            "0");
  EXPECT_EQ(raw.QueryOne("SELECT COUNT(*) FROM secure_values v WHERE NOT EXISTS (SELECT 1 FROM"
                         " change_log c WHERE c.stack = v.stack AND c.name = v.name AND"
                         " c.version = v.version AND c.op = 'put')"),
            "0");
  EXPECT_EQ(raw.QueryOne("SELECT COUNT(*) FROM change_log"),
            raw.QueryOne("SELECT COUNT(*) FROM secure_values"));
}

}  // namespace
}  // namespace secret_resolver
