// PostgreSQL-specific behaviour of PostgresSecretStore against a real PostgreSQL 15 server that
// this binary starts (//tests/testing:postgres_server), a fresh database per test: the schema
// (the same as SQLite's), migrations, encryption at rest and KEKs, auditing, the NOTIFY change
// feed and Watch (also across a server restart), connection failures (retry on a fresh
// connection, timeouts, an unreachable server), and other processes (a writer killed mid-batch,
// concurrent writers, concurrent migrations). Other processes run postgres_store_helper.
//
// Waits are bounded: condition waits on what listeners recorded, or short polls of
// pg_stat_activity with a deadline; never a fixed sleep.
#include "resolver/postgres/postgres_secret_store.h"

#include <fcntl.h>
#include <poll.h>
#include <postgresql/libpq-fe.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
#include "tests/testing/postgres_server.h"

extern char** environ;

namespace secret_resolver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kStack[] = "stacks-1";
constexpr char kMarker[] = "PLAINTEXT-MARKER-7f3a";
constexpr char kPassword[] = "Zq9-not-a-real-password";
// The pool's application_name, to find the store's backends in pg_stat_activity.
constexpr char kStoreApp[] = "store-under-test";

absl::Time In(absl::Duration d) { return absl::Now() + d; }

SecretWrite Write(absl::string_view name, absl::string_view value,
                  absl::string_view stack = kStack, absl::string_view actor = "user:alice") {
  SecretWrite write;
  write.stack = std::string(stack);
  write.name = std::string(name);
  write.decrypters = {"grafana-workflows"};
  write.description = "test secret";
  write.actor = std::string(actor);
  write.value = SecretBytes(value);
  return write;
}

// --- raw SQL, to check the format, damage it and hold locks ---

using Rows = std::vector<std::vector<std::string>>;

// A plain libpq connection; results in text format. Failures fail the test.
class RawConnection {
 public:
  explicit RawConnection(const std::string& dsn) : conn_(PQconnectdb(dsn.c_str())) {
    EXPECT_EQ(PQstatus(conn_), CONNECTION_OK) << PQerrorMessage(conn_);
  }
  ~RawConnection() { PQfinish(conn_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  Rows Query(const std::string& sql) {
    Rows rows;
    PGresult* result = PQexec(conn_, sql.c_str());
    const ExecStatusType status = PQresultStatus(result);
    EXPECT_TRUE(status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        << sql << ": " << PQresultErrorMessage(result);
    if (status == PGRES_TUPLES_OK) {
      for (int r = 0; r < PQntuples(result); ++r) {
        std::vector<std::string> row;
        for (int c = 0; c < PQnfields(result); ++c) {
          row.push_back(PQgetisnull(result, r, c) ? "NULL" : PQgetvalue(result, r, c));
        }
        rows.push_back(std::move(row));
      }
    }
    PQclear(result);
    return rows;
  }

  std::string QueryOne(const std::string& sql) {
    Rows rows = Query(sql);
    if (rows.size() != 1 || rows[0].size() != 1) {
      ADD_FAILURE() << sql << ": expected one value, got " << rows.size() << " rows";
      return "";
    }
    return rows[0][0];
  }

  // Waits for a notification on a channel this connection LISTENs on; "" with a test failure
  // when none arrives by `deadline`.
  std::string NextNotification(absl::Time deadline) {
    while (true) {
      PQconsumeInput(conn_);
      if (PGnotify* notify = PQnotifies(conn_)) {
        std::string payload = notify->extra;
        PQfreemem(notify);
        return payload;
      }
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        ADD_FAILURE() << "no notification before the deadline";
        return "";
      }
      struct pollfd fd = {PQsocket(conn_), POLLIN, 0};
      poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    }
  }

 private:
  PGconn* const conn_;
};

// --- other processes ---

std::string HelperPath() {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/", std::getenv("TEST_WORKSPACE"),
                      "/tests/resolver/postgres/postgres_store_helper");
}

// A running postgres_store_helper with its stdout on a pipe.
struct Child {
  pid_t pid = -1;
  int out = -1;  // read end of the child's stdout
};

Child Spawn(const std::vector<std::string>& args) {
  Child child;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe failed";
    return child;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<std::string> strings = args;
  strings.insert(strings.begin(), HelperPath());
  std::vector<char*> argv;
  for (std::string& arg : strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  if (posix_spawn(&child.pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) {
    ADD_FAILURE() << "cannot run " << argv[0];
    child.pid = -1;
  }
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  child.out = fds[0];
  return child;
}

// Reads one line of the child's output; false at the end of its output.
bool ReadLine(const Child& child, std::string* line) {
  line->clear();
  char c;
  while (true) {
    const ssize_t n = read(child.out, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return !line->empty();
    if (c == '\n') return true;
    line->push_back(c);
  }
}

// Waits for the child; returns its exit status, or 128 + the signal number.
int Wait(Child& child) {
  int status = 0;
  while (waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (child.out >= 0) close(child.out);
  child.out = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<int64_t> ReadVersions(const Child& child) {
  std::vector<int64_t> versions;
  std::string line;
  while (ReadLine(child, &line)) {
    int64_t version = 0;
    EXPECT_TRUE(absl::SimpleAtoi(line, &version)) << line;
    versions.push_back(version);
  }
  return versions;
}

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

// Collects Watch notifications for a test to wait on.
class ChangeRecorder {
 public:
  ChangeListener Listener() {
    return [this](const SecretChange& change) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        changes_.push_back(change);
      }
      cv_.notify_all();
    };
  }

  bool WaitFor(const std::function<bool(const std::vector<SecretChange>&)>& done,
               absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    while (!done(changes_)) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      cv_.wait_for(lock, absl::ToChronoNanoseconds(left));
    }
    return true;
  }

  // Waits until a change of (stack, name) arrives.
  bool WaitFor(absl::string_view stack, absl::string_view name, absl::Time deadline) {
    return WaitFor(
        [&](const std::vector<SecretChange>& changes) {
          for (const SecretChange& c : changes) {
            if (!c.resync && c.stack == stack && c.name == name) return true;
          }
          return false;
        },
        deadline);
  }

  bool WaitForResync(absl::Time deadline) {
    return WaitFor(
        [](const std::vector<SecretChange>& changes) {
          for (const SecretChange& c : changes) {
            if (c.resync) return true;
          }
          return false;
        },
        deadline);
  }

  std::vector<SecretChange> changes() {
    std::lock_guard<std::mutex> lock(mu_);
    return changes_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<SecretChange> changes_;
};

// --- the fixture: one server per binary; a database, a KEK file and a ring per test ---

class PostgresSecretStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
    if (server.ok()) {
      server_ = server->release();
    } else {
      *start_error_ = server.status();
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "could not start PostgreSQL: " << *start_error_;
    if (!server_->running()) {  // an earlier test failed while the server was stopped
      ASSERT_TRUE(server_->Restart().ok());
    }
    static int counter = 0;
    database_ = absl::StrCat("store_test_", ++counter);
    CreateDatabase(database_);
    dsn_ = server_->DsnForDatabase(database_);

    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    mkdir(dir_.c_str(), 0700);
    kek_path_ = dir_ + "/keks";
    WriteKekFile(kek_path_, {"kek-1"});
    absl::StatusOr<KeyRing> ring = KeyRing::LoadFromFile(kek_path_);
    ASSERT_TRUE(ring.ok()) << ring.status();
    ring_ = *std::move(ring);
  }

  static void CreateDatabase(const std::string& name, const std::string& options = "") {
    RawConnection admin(server_->DsnForDatabase("postgres"));
    admin.Query(absl::StrCat("CREATE DATABASE ", name, " ", options));
  }

  // Writes a KEK file with fresh random KEKs under `ids` (the first active) and mode 0600.
  void WriteKekFile(const std::string& path, const std::vector<std::string>& ids) {
    std::string text;
    for (const std::string& id : ids) {
      absl::StatusOr<SecretBytes> kek = KeyRing::GenerateKek();
      ASSERT_TRUE(kek.ok());
      absl::StatusOr<SecretBytes> line = KeyRing::FormatEntry(id, *kek);
      ASSERT_TRUE(line.ok());
      text.append(line->reveal().data(), line->size());
    }
    unlink(path.c_str());
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
  }

  KeyRing RingWith(const std::string& id) {
    KeyRing ring;
    absl::StatusOr<SecretBytes> kek = KeyRing::GenerateKek();
    EXPECT_TRUE(kek.ok());
    EXPECT_TRUE(ring.Add(id, *std::move(kek)).ok());
    return ring;
  }

  absl::StatusOr<std::unique_ptr<PostgresSecretStore>> Open(const KeyRing* ring = nullptr,
                                                             PostgresStoreOptions options = {},
                                                             const std::string& dsn = "") {
    PostgresPoolOptions pool;
    pool.dsn = dsn.empty() ? dsn_ : dsn;
    pool.application_name = kStoreApp;
    if (options.watch_initial_backoff == PostgresStoreOptions().watch_initial_backoff) {
      options.watch_initial_backoff = absl::Milliseconds(20);
      options.watch_max_backoff = absl::Milliseconds(200);
    }
    return PostgresSecretStore::Open(std::move(pool), ring != nullptr ? ring : &ring_,
                                     std::move(options));
  }

  std::unique_ptr<PostgresSecretStore> MustOpen(const KeyRing* ring = nullptr,
                                                PostgresStoreOptions options = {},
                                                const std::string& dsn = "") {
    absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store =
        Open(ring, std::move(options), dsn);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::vector<std::string> HelperArgs(std::vector<std::string> command,
                                      const std::string& extra_dsn = "") {
    command.insert(command.begin(), {dsn_ + extra_dsn, kek_path_});
    return command;
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
          "' AND wait_event_type = 'Lock'", other_than.empty() ? "" : " AND pid <> ",
          other_than));
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

  static PostgresServer* server_;
  static absl::Status* start_error_;

  std::string database_;
  std::string dsn_;
  std::string dir_;
  std::string kek_path_;
  KeyRing ring_;
};

PostgresServer* PostgresSecretStoreTest::server_ = nullptr;
absl::Status* PostgresSecretStoreTest::start_error_ = new absl::Status();

// --- the schema and migrations ---

TEST_F(PostgresSecretStoreTest, SchemaHasTheSameTablesAndColumnsAsSqlite) {
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(LatestPostgresSchemaVersion(), LatestSchemaVersion());
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

TEST_F(PostgresSecretStoreTest, ReopeningKeepsDataAndMigratesOnce) {
  {
    std::unique_ptr<PostgresSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(Write("kept", "value-1")).ok());
  }
  for (int i = 0; i < 3; ++i) {
    std::unique_ptr<PostgresSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    absl::StatusOr<StoredSecret> got = store->Get(kStack, "kept");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(got->value.Equals("value-1"));
  }
  EXPECT_EQ(RawConnection(dsn_).QueryOne("SELECT COUNT(*) FROM schema_version"), "1");
}

TEST_F(PostgresSecretStoreTest, ProcessesOpeningAnEmptyDatabaseAtOnceMigrateItOnce) {
  std::vector<Child> children;
  for (int i = 0; i < 4; ++i) children.push_back(Spawn(HelperArgs({"open"})));
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  EXPECT_NE(store, nullptr);
  for (Child& child : children) EXPECT_EQ(Wait(child), 0);
  RawConnection raw(dsn_);
  EXPECT_EQ(raw.QueryOne("SELECT COUNT(*) FROM schema_version"), "1");
  EXPECT_EQ(raw.QueryOne("SELECT COUNT(*) FROM information_schema.tables WHERE"
                         " table_schema = 'public'"),
            "4");
}

TEST_F(PostgresSecretStoreTest, SchemaNewerThanTheBinaryIsFailedPrecondition) {
  ASSERT_NE(MustOpen(), nullptr);
  RawConnection(dsn_).Query("INSERT INTO schema_version (version, applied_at_us) VALUES (99, 0)");
  absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store = Open();
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 99"));
}

TEST_F(PostgresSecretStoreTest, OpeningWithoutAKekIsFailedPrecondition) {
  KeyRing empty;
  PostgresPoolOptions pool;
  pool.dsn = dsn_;
  EXPECT_EQ(PostgresSecretStore::Open(pool, &empty).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(PostgresSecretStore::Open(pool, nullptr).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(PostgresSecretStoreTest, ListSortsBytewiseEvenWhenTheDatabaseCollationDoesNot) {
  // An ICU collation that ignores punctuation: "ab" sorts before "a-c" there, after it in C.
  const std::string database = database_ + "_icu";
  CreateDatabase(database, "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'und-u-ka-shifted'");
  const std::string dsn = server_->DsnForDatabase(database);
  std::unique_ptr<PostgresSecretStore> store = MustOpen(nullptr, {}, dsn);
  ASSERT_NE(store, nullptr);
  std::vector<std::string> names = {"ab", "a-c", "a.b", "a/b", "a0", "a10", "a9", "b", "a-a"};
  for (const std::string& name : names) ASSERT_TRUE(store->Put(Write(name, "v")).ok()) << name;
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

// --- encryption at rest and keys ---

TEST_F(PostgresSecretStoreTest, ValuesAreEncryptedAtRestUnderOneDataKeyPerStack) {
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("a", kMarker, "stacks-1")).ok());
  ASSERT_TRUE(store->Put(Write("b", kMarker, "stacks-1")).ok());
  ASSERT_TRUE(store->Put(Write("a", kMarker, "stacks-2")).ok());
  RawConnection raw(dsn_);
  EXPECT_EQ(raw.QueryOne(absl::StrCat("SELECT COUNT(*) FROM secure_values WHERE"
                                      " position(convert_to('",
                                      kMarker, "', 'UTF8') in ciphertext) > 0")),
            "0");
  EXPECT_THAT(raw.Query("SELECT stack, kek_id, active, length(wrapped_key), length(kek_check)"
                        " FROM data_keys ORDER BY stack"),
              ElementsAre(ElementsAre("stacks-1", "kek-1", "t", "61", "16"),
                          ElementsAre("stacks-2", "kek-1", "t", "61", "16")));
  // format byte + nonce + ciphertext + tag
  EXPECT_EQ(raw.QueryOne("SELECT DISTINCT length(ciphertext) FROM secure_values"),
            absl::StrCat(1 + 12 + std::string(kMarker).size() + 16));
  EXPECT_EQ(raw.QueryOne("SELECT COUNT(DISTINCT data_key_id) FROM secure_values"), "2");
}

TEST_F(PostgresSecretStoreTest, CiphertextMovedToAnotherRowOrDamagedIsDataLoss) {
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("source", kMarker)).ok());
  ASSERT_TRUE(store->Put(Write("target", "target-value")).ok());
  ASSERT_TRUE(store->Put(Write("versioned", "v1")).ok());
  ASSERT_TRUE(store->Put(Write("versioned", "v2")).ok());
  ASSERT_TRUE(store->Put(Write("flipped", "intact")).ok());
  RawConnection raw(dsn_);
  raw.Query("UPDATE secure_values SET ciphertext = (SELECT ciphertext FROM secure_values"
            " WHERE name = 'source') WHERE name = 'target'");
  raw.Query("UPDATE secure_values SET ciphertext = (SELECT ciphertext FROM secure_values"
            " WHERE name = 'versioned' AND version = 1) WHERE name = 'versioned' AND version = 2");
  raw.Query("UPDATE secure_values SET ciphertext = set_byte(ciphertext, length(ciphertext) - 1,"
            " get_byte(ciphertext, length(ciphertext) - 1) # 1) WHERE name = 'flipped'");
  for (const char* name : {"target", "versioned", "flipped"}) {
    absl::StatusOr<StoredSecret> got = store->Get(kStack, name);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << name << ": " << got.status();
    EXPECT_THAT(got.status().message(), Not(HasSubstr(kMarker)));
  }
  EXPECT_TRUE(store->Get(kStack, "source").ok());
}

TEST_F(PostgresSecretStoreTest, DamagedRowsAreDataLoss) {
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("json", "v")).ok());
  ASSERT_TRUE(store->Put(Write("key", "v", "stacks-2")).ok());
  RawConnection raw(dsn_);
  raw.Query("UPDATE secure_values SET decrypters = '[\"unterminated' WHERE name = 'json'");
  raw.Query("UPDATE data_keys SET wrapped_key = decode(repeat('00', 61), 'hex')"
            " WHERE stack = 'stacks-2'");
  EXPECT_EQ(store->Get(kStack, "json").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store->List(kStack).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store->Get("stacks-2", "key").status().code(), absl::StatusCode::kDataLoss);
  raw.Query("DELETE FROM data_keys WHERE stack = 'stacks-2'");
  EXPECT_EQ(store->Get("stacks-2", "key").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(PostgresSecretStoreTest, MissingOrWrongKekIsFailedPreconditionNamingItsId) {
  {
    std::unique_ptr<PostgresSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(Write("api-token", kMarker)).ok());
  }
  KeyRing other = RingWith("kek-2");
  std::unique_ptr<PostgresSecretStore> store = MustOpen(&other);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<StoredSecret> got = store->Get(kStack, "api-token");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(got.status().message(), HasSubstr("\"kek-1\""));
  absl::StatusOr<int64_t> put = store->Put(Write("api-token", "v2"));
  EXPECT_EQ(put.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(put.status().message(), HasSubstr("\"kek-1\""));
  // Another stack gets a data key wrapped by the KEK this process has.
  EXPECT_TRUE(store->Put(Write("api-token", "v", "stacks-2")).ok());

  KeyRing wrong = RingWith("kek-1");  // the right id, other bytes
  store = MustOpen(&wrong);
  ASSERT_NE(store, nullptr);
  got = store->Get(kStack, "api-token");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(got.status().message(), HasSubstr("\"kek-1\""));
  EXPECT_THAT(got.status().message(), Not(HasSubstr(kMarker)));
  // Nothing was written by the failed puts.
  EXPECT_EQ(RawConnection(dsn_).QueryOne("SELECT COUNT(*) FROM secure_values WHERE stack = '" +
                                         std::string(kStack) + "'"),
            "1");
}

TEST_F(PostgresSecretStoreTest, RewrapDataKeysMovesKeysToTheNewKekWithoutTouchingValues) {
  {
    std::unique_ptr<PostgresSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(Write("a", "value-a", "stacks-1")).ok());
    ASSERT_TRUE(store->Put(Write("b", "value-b", "stacks-2")).ok());
  }
  RawConnection raw(dsn_);
  const std::string ciphertexts_before = raw.QueryOne(
      "SELECT string_agg(encode(ciphertext, 'hex'), ',' ORDER BY stack, name) FROM secure_values");

  KeyRing rotated;
  absl::StatusOr<SecretBytes> new_kek = KeyRing::GenerateKek();
  ASSERT_TRUE(new_kek.ok());
  SecretBytes new_kek_copy = new_kek->Clone();
  ASSERT_TRUE(rotated.Add("kek-2", *std::move(new_kek)).ok());
  ASSERT_TRUE(rotated.Add("kek-1", (*ring_.Find("kek-1"))->Clone()).ok());
  {
    std::unique_ptr<PostgresSecretStore> store = MustOpen(&rotated);
    ASSERT_NE(store, nullptr);
    absl::StatusOr<int64_t> rewrapped = store->RewrapDataKeys("kek-9");
    EXPECT_EQ(rewrapped.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(rewrapped.status().message(), HasSubstr("\"kek-9\""));
    rewrapped = store->RewrapDataKeys(rotated.active_id());
    ASSERT_TRUE(rewrapped.ok()) << rewrapped.status();
    EXPECT_EQ(*rewrapped, 2);
    rewrapped = store->RewrapDataKeys(rotated.active_id());
    ASSERT_TRUE(rewrapped.ok());
    EXPECT_EQ(*rewrapped, 0);  // already done
  }
  EXPECT_EQ(raw.QueryOne("SELECT string_agg(encode(ciphertext, 'hex'), ',' ORDER BY stack, name)"
                         " FROM secure_values"),
            ciphertexts_before);
  EXPECT_EQ(raw.QueryOne("SELECT string_agg(DISTINCT kek_id, ',') FROM data_keys"), "kek-2");

  // The old KEK can go: the new one alone opens everything.
  KeyRing new_only;
  ASSERT_TRUE(new_only.Add("kek-2", std::move(new_kek_copy)).ok());
  std::unique_ptr<PostgresSecretStore> store = MustOpen(&new_only);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<StoredSecret> a = store->Get("stacks-1", "a");
  absl::StatusOr<StoredSecret> b = store->Get("stacks-2", "b");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(a->value.Equals("value-a"));
  EXPECT_TRUE(b->value.Equals("value-b"));
}

TEST_F(PostgresSecretStoreTest, RewrapWithAnOldKekMissingChangesNothing) {
  {
    std::unique_ptr<PostgresSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(Write("a", "value-a")).ok());
  }
  RawConnection raw(dsn_);
  const std::string keys_before =
      raw.QueryOne("SELECT string_agg(kek_id || encode(wrapped_key, 'hex'), ',') FROM data_keys");
  KeyRing new_only = RingWith("kek-2");
  std::unique_ptr<PostgresSecretStore> store = MustOpen(&new_only);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<int64_t> rewrapped = store->RewrapDataKeys("kek-2");
  EXPECT_EQ(rewrapped.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(rewrapped.status().message(), HasSubstr("\"kek-1\""));
  EXPECT_EQ(
      raw.QueryOne("SELECT string_agg(kek_id || encode(wrapped_key, 'hex'), ',') FROM data_keys"),
      keys_before);
}

TEST_F(PostgresSecretStoreTest, FirstWritersOfAStackRacingShareOneDataKey) {
  // Deterministic: another writer has inserted the stack's data key but not committed yet. The
  // store's insert waits for it, then uses that key.
  absl::StatusOr<std::string> id = NewDataKeyId();
  absl::StatusOr<SecretBytes> key = GenerateDataKey();
  ASSERT_TRUE(id.ok() && key.ok());
  absl::StatusOr<WrappedDataKey> wrapped = WrapDataKey(ring_, "kek-1", "race-1", *id, *key);
  ASSERT_TRUE(wrapped.ok());
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  RawConnection other_writer(dsn_);
  other_writer.Query("BEGIN");
  other_writer.Query(absl::StrCat(
      "INSERT INTO data_keys (stack, id, wrapped_key, kek_id, kek_check, active, created_at_us,"
      " updated_at_us) VALUES ('race-1', '",
      *id, "', decode('", absl::BytesToHexString(wrapped->wrapped), "', 'hex'), 'kek-1', decode('",
      absl::BytesToHexString(wrapped->kek_check), "', 'hex'), TRUE, 1, 1)"));
  absl::StatusOr<int64_t> version;
  ScopedThread put([&] { version = store->Put(Write("first", "v", "race-1")); });
  EXPECT_NE(WaitForLockWaiter(kStoreApp), "");
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
  std::unique_ptr<PostgresSecretStore> second = MustOpen();
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
        if (!target.Put(Write(absl::StrCat("n-", t), absl::StrCat("v-", t), stack)).ok()) {
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

// --- auditing ---

TEST_F(PostgresSecretStoreTest, DeleteKeepsEveryVersionAndRecordsWhoAndWhen) {
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("audited", "v1", kStack, "user:alice")).ok());
  ASSERT_TRUE(store->Put(Write("audited", "v2", kStack, "user:bob")).ok());
  ASSERT_TRUE(store->Delete(kStack, "audited", "user:carol").ok());
  EXPECT_EQ(store->Get(kStack, "audited").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Delete(kStack, "audited", "user:carol").code(), absl::StatusCode::kNotFound);

  RawConnection raw(dsn_);
  EXPECT_THAT(raw.Query("SELECT version, active, created_by, updated_by FROM secure_values"
                        " WHERE name = 'audited' ORDER BY version"),
              ElementsAre(ElementsAre("1", "f", "user:alice", "user:bob"),
                          ElementsAre("2", "f", "user:bob", "user:carol")));
  EXPECT_THAT(raw.Query("SELECT version, op, actor FROM change_log WHERE name = 'audited'"
                        " ORDER BY seq"),
              ElementsAre(ElementsAre("1", "put", "user:alice"),
                          ElementsAre("2", "put", "user:bob"),
                          ElementsAre("2", "delete", "user:carol")));
  EXPECT_EQ(raw.QueryOne("SELECT COUNT(*) FROM change_log WHERE at_us <= 0"), "0");
}

// --- bad input ---

TEST_F(PostgresSecretStoreTest, BadInputIsInvalidArgumentNamingTheFieldAndStoresNothing) {
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  struct Case {
    std::string label;
    SecretWrite write;
    std::string field;
  };
  std::vector<Case> cases;
  cases.push_back({"oversize value",
                   Write("n", absl::StrCat(kMarker, std::string(kMaxValueBytes, 'v'))), "value"});
  cases.push_back({"upper-case name", Write("Api-token", kMarker), "name"});
  cases.push_back({"empty segment", Write("a//b", kMarker), "name"});
  cases.push_back({"name too long", Write(std::string(254, 'a'), kMarker), "name"});
  cases.push_back({"bad stack", Write("n", kMarker, "Stacks_1"), "stack"});
  SecretWrite nul_description = Write("n", kMarker);
  nul_description.description = std::string("a\0b", 3);
  cases.push_back({"NUL in description", std::move(nul_description), "description"});
  cases.push_back({"actor not UTF-8", Write("n", kMarker, kStack, "user:\xc3\x28"), "actor"});
  cases.push_back({"actor with NUL", Write("n", kMarker, kStack, std::string("u\0", 2)), "actor"});
  for (const Case& c : cases) {
    absl::StatusOr<int64_t> version = store->Put(c.write);
    EXPECT_EQ(version.status().code(), absl::StatusCode::kInvalidArgument) << c.label;
    EXPECT_THAT(version.status().message(), HasSubstr(c.field)) << c.label;
    EXPECT_THAT(version.status().message(), Not(HasSubstr(kMarker))) << c.label;
  }
  EXPECT_EQ(store->Get(kStack, "/leading-slash").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Get("", "n").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Delete(kStack, std::string("a\0b", 3), "user:bob").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->List("UPPER").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RawConnection(dsn_).QueryOne("SELECT COUNT(*) FROM secure_values"), "0");
  // A UTF-8 description and actor are fine.
  SecretWrite utf8 = Write("n", "v", kStack, "user:\xc3\xa9lodie");
  utf8.description = "caf\xc3\xa9 \xf0\x9f\x94\x91";
  ASSERT_TRUE(store->Put(utf8).ok());
  absl::StatusOr<std::vector<SecretMetadata>> list = store->List(kStack);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].description, utf8.description);
  EXPECT_EQ((*list)[0].updated_by, utf8.actor);
}

// --- connections ---

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

TEST_F(PostgresSecretStoreTest, MissingDatabaseIsUnavailable) {
  absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store =
      Open(nullptr, {}, server_->DsnForDatabase("no_such_database"));
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("no_such_database"));
}

TEST_F(PostgresSecretStoreTest, AConnectionKilledMidStatementIsRetriedOnceOnAFreshOne) {
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("retried", "v1")).ok());
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
    ScopedThread put([&] { version = store->Put(Write("retried", "v2")); });
    const std::string first = WaitForLockWaiter(kStoreApp);
    ASSERT_NE(first, "");
    admin.Query("SELECT pg_terminate_backend(" + first + ")");
    const std::string second = WaitForLockWaiter(kStoreApp, first);
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
    ScopedThread put([&] { version = store->Put(Write("retried", "v3")); });
    const std::string first = WaitForLockWaiter(kStoreApp);
    ASSERT_NE(first, "");
    admin.Query("SELECT pg_terminate_backend(" + first + ")");
    const std::string second = WaitForLockWaiter(kStoreApp, first);
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
  options.operation_timeout = absl::Milliseconds(300);
  std::unique_ptr<PostgresSecretStore> store = MustOpen(nullptr, options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("slow", "v1")).ok());
  RawConnection holder(dsn_);
  holder.Query("BEGIN");
  holder.Query(absl::StrCat("SELECT pg_advisory_xact_lock(", kSecretLockClass, ", hashtext('",
                            kStack, "/slow'))"));
  absl::StatusOr<int64_t> version = store->Put(Write("slow", "v2"));
  EXPECT_EQ(version.status().code(), absl::StatusCode::kUnavailable) << version.status();
  EXPECT_THAT(version.status().message(), HasSubstr("no answer within"));
  holder.Query("ROLLBACK");
  WaitForBackendsToExit(kStoreApp);  // the abandoned one exits once it gets the lock
  absl::StatusOr<int64_t> next = store->Put(Write("slow", "v2"));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, 2);
}

// --- change notification ---

TEST_F(PostgresSecretStoreTest, NotifyPayloadIsStackAndNameAsJsonSentOnlyOnCommit) {
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  KeyRing other = RingWith("kek-2");
  std::unique_ptr<PostgresSecretStore> other_store = MustOpen(&other);
  ASSERT_NE(other_store, nullptr);
  RawConnection listener(dsn_);
  listener.Query(absl::StrCat("LISTEN \"", kDefaultChangeChannel, "\""));

  ASSERT_TRUE(store->Put(Write("a", kMarker)).ok());
  EXPECT_EQ(listener.NextNotification(In(absl::Seconds(5))),
            R"({"stack":"stacks-1","name":"a"})");
  // Fails inside the transaction (the stack's data key needs kek-1): no notification.
  EXPECT_EQ(other_store->Put(Write("b", kMarker)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store->Put(Write("workflows/http/c", kMarker)).ok());
  ASSERT_TRUE(store->Delete(kStack, "a", "user:bob").ok());
  EXPECT_EQ(listener.NextNotification(In(absl::Seconds(5))),
            R"({"stack":"stacks-1","name":"workflows/http/c"})");
  EXPECT_EQ(listener.NextNotification(In(absl::Seconds(5))),
            R"({"stack":"stacks-1","name":"a"})");
}

TEST_F(PostgresSecretStoreTest, AnotherProcessesWritesAreSeenThroughWatchWithinOneSecond) {
  ChangeRecorder recorder;  // outlives the store, whose thread calls it
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("before-watch", "v")).ok());
  ASSERT_TRUE(store->Watch(recorder.Listener()).ok());

  Child put = Spawn(HelperArgs({"put", kStack, "watched", "new-value"}));
  ASSERT_EQ(Wait(put), 0);
  EXPECT_TRUE(recorder.WaitFor(kStack, "watched", In(absl::Seconds(1))))
      << "no change notification within 1 s of the other process's commit";
  absl::StatusOr<StoredSecret> got = store->Get(kStack, "watched");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->value.Equals("new-value"));

  Child del = Spawn(HelperArgs({"delete", kStack, "before-watch"}));
  ASSERT_EQ(Wait(del), 0);
  EXPECT_TRUE(recorder.WaitFor(kStack, "before-watch", In(absl::Seconds(1))));
  for (const SecretChange& change : recorder.changes()) EXPECT_FALSE(change.resync);
}

TEST_F(PostgresSecretStoreTest, WatchReportsEveryCommitToEveryListenerInOrder) {
  ChangeRecorder first;  // the recorders outlive the store, whose thread calls them
  ChangeRecorder second;
  std::unique_ptr<PostgresSecretStore> watcher = MustOpen();
  std::unique_ptr<PostgresSecretStore> writer = MustOpen();
  ASSERT_NE(watcher, nullptr);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(watcher->Watch(first.Listener()).ok());
  ASSERT_TRUE(watcher->Watch(second.Listener()).ok());
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(writer->Put(Write(absl::StrCat("s-", i), "v")).ok());
  }
  ASSERT_TRUE(writer->Delete(kStack, "s-3", "user:bob").ok());
  ASSERT_TRUE(watcher->Put(Write("own-write", "v")).ok());
  EXPECT_TRUE(first.WaitFor(kStack, "own-write", In(absl::Seconds(5))));
  EXPECT_TRUE(second.WaitFor(kStack, "own-write", In(absl::Seconds(5))));
  std::vector<std::string> names;
  for (const SecretChange& change : first.changes()) names.push_back(change.name);
  ASSERT_EQ(names.size(), 32u);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(names[i], absl::StrCat("s-", i));
  EXPECT_EQ(names[30], "s-3");
  EXPECT_EQ(names[31], "own-write");
  EXPECT_EQ(second.changes().size(), 32u);
}

TEST_F(PostgresSecretStoreTest, AfterAServerRestartWatchResyncsAndLaterChangesStillArrive) {
  // The password is ignored by the test server (trust authentication); it must never show.
  const std::string dsn = absl::StrCat(dsn_, " password=", kPassword);
  ChangeRecorder recorder;  // outlives the store, whose thread calls it
  std::unique_ptr<PostgresSecretStore> store = MustOpen(nullptr, {}, dsn);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Watch(recorder.Listener()).ok());
  Child before = Spawn(HelperArgs({"put", kStack, "before", "v"}));
  ASSERT_EQ(Wait(before), 0);
  ASSERT_TRUE(recorder.WaitFor(kStack, "before", In(absl::Seconds(1))));

  ASSERT_TRUE(server_->Stop().ok());
  absl::StatusOr<StoredSecret> down = store->Get(kStack, "before");
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  EXPECT_THAT(down.status().message(), Not(HasSubstr(kPassword)));
  absl::StatusOr<int64_t> put_down = store->Put(Write("during", "v"));
  EXPECT_EQ(put_down.status().code(), absl::StatusCode::kUnavailable) << put_down.status();
  EXPECT_THAT(put_down.status().message(), Not(HasSubstr(kPassword)));

  ASSERT_TRUE(server_->Restart().ok());
  ASSERT_TRUE(recorder.WaitForResync(In(absl::Seconds(10)))) << "no resync after the restart";
  for (const SecretChange& change : recorder.changes()) {
    if (change.resync) {
      EXPECT_EQ(change.stack, "");
      EXPECT_EQ(change.name, "");
    }
  }
  Child after = Spawn(HelperArgs({"put", kStack, "after", "v-after"}));
  ASSERT_EQ(Wait(after), 0);
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
  std::unique_ptr<PostgresSecretStore> store = MustOpen(nullptr, options, dsn);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(server_->Stop().ok());
  absl::Status watch = store->Watch(lost.Listener());
  ASSERT_TRUE(server_->Restart().ok());
  EXPECT_EQ(watch.code(), absl::StatusCode::kUnavailable) << watch;
  EXPECT_THAT(watch.message(), Not(HasSubstr(kPassword)));

  ASSERT_TRUE(store->Watch(recorder.Listener()).ok());
  ASSERT_TRUE(store->Put(Write("later", "v")).ok());
  EXPECT_TRUE(recorder.WaitFor(kStack, "later", In(absl::Seconds(1))));
  EXPECT_TRUE(lost.changes().empty()) << "a listener whose Watch failed was kept";
}

// --- other processes ---

TEST_F(PostgresSecretStoreTest, WriterKilledMidBatchLeavesEverySecretAtItsOldOrNewVersion) {
  constexpr int kSecrets = 12;
  std::vector<std::string> value(kSecrets);  // the value each s-i has now
  std::vector<int64_t> version(kSecrets, 1);
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < kSecrets; ++i) {
    value[i] = absl::StrCat("old-", i);
    ASSERT_TRUE(store->Put(Write(absl::StrCat("s-", i), value[i])).ok());
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
    Child writer = Spawn(HelperArgs({"update-all", kStack, absl::StrCat(kSecrets), prefix},
                                    " application_name=" + app));
    ASSERT_NE(WaitForLockWaiter(app), "");
    kill(writer.pid, SIGKILL);
    std::string line;
    int in_progress = -1;
    while (ReadLine(writer, &line)) ASSERT_TRUE(absl::SimpleAtoi(line, &in_progress)) << line;
    ASSERT_EQ(Wait(writer), 128 + SIGKILL);
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
    Child writer = Spawn(HelperArgs({"update-all", kStack, absl::StrCat(kSecrets), prefix},
                                    " application_name=" + app));
    std::string line;
    int in_progress = -1;
    while (in_progress < kill_after && ReadLine(writer, &line)) {
      ASSERT_TRUE(absl::SimpleAtoi(line, &in_progress)) << line;
    }
    kill(writer.pid, SIGKILL);
    while (ReadLine(writer, &line)) ASSERT_TRUE(absl::SimpleAtoi(line, &in_progress)) << line;
    Wait(writer);  // it may have finished first
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

TEST_F(PostgresSecretStoreTest, TwoWriterProcessesAndReadersLoseNoUpdate) {
  constexpr int kPuts = 25;
  std::unique_ptr<PostgresSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("contended", "initial")).ok());

  std::atomic<bool> done{false};
  std::mutex observed_mu;
  std::vector<std::pair<int64_t, std::string>> observed;  // (version, value) seen by readers
  std::atomic<int> reader_errors{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      int64_t last = 0;
      while (!done.load()) {
        absl::StatusOr<StoredSecret> got = store->Get(kStack, "contended");
        if (!got.ok() || got->version < last) {
          reader_errors.fetch_add(1);
          return;
        }
        last = got->version;
        std::lock_guard<std::mutex> lock(observed_mu);
        if (observed.size() < 10000) {
          observed.emplace_back(got->version, std::string(got->value.reveal()));
        }
      }
    });
  }
  Child a = Spawn(HelperArgs({"put-many", kStack, "contended", absl::StrCat(kPuts), "a"}));
  Child b = Spawn(HelperArgs({"put-many", kStack, "contended", absl::StrCat(kPuts), "b"}));
  const std::vector<int64_t> versions_a = ReadVersions(a);
  const std::vector<int64_t> versions_b = ReadVersions(b);
  EXPECT_EQ(Wait(a), 0);
  EXPECT_EQ(Wait(b), 0);
  done = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(reader_errors.load(), 0);

  ASSERT_EQ(versions_a.size(), static_cast<size_t>(kPuts));
  ASSERT_EQ(versions_b.size(), static_cast<size_t>(kPuts));
  std::map<int64_t, std::string> value_of{{1, "initial"}};
  for (int i = 0; i < kPuts; ++i) {
    if (i > 0) {
      EXPECT_LT(versions_a[i - 1], versions_a[i]);
      EXPECT_LT(versions_b[i - 1], versions_b[i]);
    }
    EXPECT_TRUE(value_of.emplace(versions_a[i], absl::StrCat("a-", i)).second);
    EXPECT_TRUE(value_of.emplace(versions_b[i], absl::StrCat("b-", i)).second);
  }
  ASSERT_EQ(value_of.size(), static_cast<size_t>(2 * kPuts + 1));
  EXPECT_EQ(value_of.begin()->first, 1);
  EXPECT_EQ(value_of.rbegin()->first, 2 * kPuts + 1);
  for (const auto& [version, value] : observed) EXPECT_EQ(value_of[version], value) << version;
  absl::StatusOr<StoredSecret> final_value = store->Get(kStack, "contended");
  ASSERT_TRUE(final_value.ok());
  EXPECT_EQ(final_value->version, 2 * kPuts + 1);
  EXPECT_TRUE(final_value->value.Equals(value_of[2 * kPuts + 1]));
}

}  // namespace
}  // namespace secret_resolver
