// SQLite-specific behaviour of SqliteSecretStore: the file (mode, WAL, schema, migrations,
// corruption), encryption at rest and the KEK, auditing, and other processes (change detection,
// a writer killed mid-batch, concurrent writers). Other processes run sqlite_store_helper.
#include "resolver/sqlite/sqlite_secret_store.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/secret_bytes.h"

extern char** environ;

namespace secret_resolver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kStack[] = "stacks-1";
constexpr char kMarker[] = "PLAINTEXT-MARKER-7f3a";

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

// --- raw access to the file, to check the format and to damage it ---

using Rows = std::vector<std::vector<std::string>>;

Rows Query(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  Rows rows;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << path;
    sqlite3_close(db);
    return rows;
  }
  sqlite3_busy_timeout(db, 10000);
  char* error = nullptr;
  auto callback = [](void* out, int n, char** values, char**) {
    std::vector<std::string> row;
    for (int i = 0; i < n; ++i) row.push_back(values[i] == nullptr ? "NULL" : values[i]);
    static_cast<Rows*>(out)->push_back(std::move(row));
    return 0;
  };
  if (sqlite3_exec(db, sql.c_str(), callback, &rows, &error) != SQLITE_OK) {
    ADD_FAILURE() << sql << ": " << (error != nullptr ? error : "?");
  }
  sqlite3_free(error);
  sqlite3_close(db);
  return rows;
}

std::string QueryOne(const std::string& path, const std::string& sql) {
  Rows rows = Query(path, sql);
  if (rows.size() != 1 || rows[0].size() != 1) {
    ADD_FAILURE() << sql << ": expected one value";
    return "";
  }
  return rows[0][0];
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// --- other processes ---

std::string HelperPath() {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/", std::getenv("TEST_WORKSPACE"),
                      "/tests/resolver/sqlite/sqlite_store_helper");
}

// A running sqlite_store_helper with its stdout on a pipe.
struct Child {
  pid_t pid = -1;
  int out = -1;  // read end of the child's stdout
};

Child Spawn(const std::vector<std::string>& args) {
  Child child;
  int fds[2];
  if (pipe(fds) != 0) {
    ADD_FAILURE() << "pipe failed";
    return child;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  std::vector<std::string> argv_strings = args;
  argv_strings.insert(argv_strings.begin(), HelperPath());
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
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

// Reads one line of the child's output; false at end of output.
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

// Waits for the child; returns its exit status, or 128 + signal number.
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

// --- the fixture: a directory, a KEK file and a store path per test ---

class SqliteSecretStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    mkdir(dir_.c_str(), 0700);
    db_path_ = dir_ + "/store.db";
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((db_path_ + suffix).c_str());
    kek_path_ = dir_ + "/keks";
    WriteKekFile(kek_path_, {"kek-1"});
    absl::StatusOr<KeyRing> ring = KeyRing::LoadFromFile(kek_path_);
    ASSERT_TRUE(ring.ok()) << ring.status();
    ring_ = *std::move(ring);
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

  std::unique_ptr<SqliteSecretStore> MustOpen(const KeyRing* ring = nullptr,
                                              SqliteStoreOptions options = {}) {
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(db_path_, ring != nullptr ? ring : &ring_, std::move(options));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::vector<std::string> HelperArgs(std::vector<std::string> command) {
    command.insert(command.begin(), {db_path_, kek_path_});
    return command;
  }

  std::string dir_;
  std::string db_path_;
  std::string kek_path_;
  KeyRing ring_;
};

// --- the file ---

TEST_F(SqliteSecretStoreTest, NewFileIsOwnerOnlyInWalModeWithTheDocumentedSchema) {
  std::unique_ptr<SqliteSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("api-token", "v")).ok());
  struct stat st;
  ASSERT_EQ(stat(db_path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((db_path_ + "-wal").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u);
  EXPECT_EQ(QueryOne(db_path_, "PRAGMA journal_mode"), "wal");
  EXPECT_THAT(Query(db_path_, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
                              "LIKE 'sqlite_%' ORDER BY name"),
              ElementsAre(ElementsAre("change_log"), ElementsAre("data_keys"),
                          ElementsAre("schema_version"), ElementsAre("secure_values")));
  EXPECT_THAT(Query(db_path_, "SELECT version FROM schema_version"),
              ElementsAre(ElementsAre("1")));
}

TEST_F(SqliteSecretStoreTest, ReopeningKeepsDataAndMigratesOnce) {
  {
    std::unique_ptr<SqliteSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(Write("kept", "value-1")).ok());
  }
  for (int i = 0; i < 3; ++i) {
    std::unique_ptr<SqliteSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    absl::StatusOr<StoredSecret> got = store->Get(kStack, "kept");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(got->value.Equals("value-1"));
  }
  EXPECT_EQ(QueryOne(db_path_, "SELECT COUNT(*) FROM schema_version"), "1");
}

TEST_F(SqliteSecretStoreTest, ProcessesOpeningANewFileAtOnceMigrateItOnce) {
  std::vector<Child> children;
  for (int i = 0; i < 4; ++i) children.push_back(Spawn(HelperArgs({"open"})));
  std::unique_ptr<SqliteSecretStore> store = MustOpen();
  EXPECT_NE(store, nullptr);
  for (Child& child : children) EXPECT_EQ(Wait(child), 0);
  EXPECT_EQ(QueryOne(db_path_, "SELECT COUNT(*) FROM schema_version"), "1");
}

TEST_F(SqliteSecretStoreTest, SchemaNewerThanTheBinaryIsFailedPrecondition) {
  MustOpen();
  Query(db_path_, "INSERT INTO schema_version (version, applied_at_us) VALUES (99, 0)");
  absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
      SqliteSecretStore::Open(db_path_, &ring_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 99"));
  EXPECT_THAT(store.status().message(), HasSubstr(db_path_));
}

TEST_F(SqliteSecretStoreTest, FileThatIsNotADatabaseIsDataLossNamingThePath) {
  {
    std::ofstream garbage(db_path_, std::ios::binary);
    for (int i = 0; i < 512; ++i) garbage << "this is not an SQLite database; ";
  }
  absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
      SqliteSecretStore::Open(db_path_, &ring_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr(db_path_));
}

TEST_F(SqliteSecretStoreTest, DamagedPagesAreDataLossNotACrash) {
  {
    std::unique_ptr<SqliteSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 100; ++i) {
      ASSERT_TRUE(store->Put(Write(absl::StrCat("secret-", i), std::string(200, 'v'))).ok());
    }
  }  // the last connection checkpoints the WAL into the file
  std::string bytes = ReadFileBytes(db_path_);
  ASSERT_GT(bytes.size(), 8 * 4096u);
  const size_t page_size = std::stoul(QueryOne(db_path_, "PRAGMA page_size"));
  // Keep page 1 (the header and the table list); scribble over every other page.
  for (size_t i = page_size; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 31 + 7);
  {
    std::ofstream out(db_path_, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
      SqliteSecretStore::Open(db_path_, &ring_);
  if (!store.ok()) {
    EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr(db_path_));
    return;
  }
  absl::Status list = (*store)->List(kStack).status();
  EXPECT_EQ(list.code(), absl::StatusCode::kDataLoss) << list;
  EXPECT_THAT(list.message(), HasSubstr(db_path_));
}

TEST_F(SqliteSecretStoreTest, UnopenablePathIsUnavailableNamingIt) {
  const std::string path = dir_ + "/no-such-dir/store.db";
  absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
      SqliteSecretStore::Open(path, &ring_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store.status().message(), HasSubstr(path));
}

TEST_F(SqliteSecretStoreTest, OpeningWithoutAKekIsFailedPrecondition) {
  KeyRing empty;
  EXPECT_EQ(SqliteSecretStore::Open(db_path_, &empty).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(SqliteSecretStore::Open(db_path_, nullptr).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// --- encryption at rest and keys ---

TEST_F(SqliteSecretStoreTest, ValuesAreEncryptedAtRestUnderOneDataKeyPerStack) {
  {
    std::unique_ptr<SqliteSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(Write("a", kMarker, "stacks-1")).ok());
    ASSERT_TRUE(store->Put(Write("b", kMarker, "stacks-1")).ok());
    ASSERT_TRUE(store->Put(Write("a", kMarker, "stacks-2")).ok());
    // With the store open the data may still sit in the WAL: check both files.
    EXPECT_THAT(ReadFileBytes(db_path_) + ReadFileBytes(db_path_ + "-wal"),
                Not(HasSubstr(kMarker)));
  }
  EXPECT_THAT(ReadFileBytes(db_path_), Not(HasSubstr(kMarker)));
  EXPECT_THAT(Query(db_path_, "SELECT stack, kek_id, active, length(wrapped_key),"
                              " length(kek_check) FROM data_keys ORDER BY stack"),
              ElementsAre(ElementsAre("stacks-1", "kek-1", "1", "61", "16"),
                          ElementsAre("stacks-2", "kek-1", "1", "61", "16")));
  // format byte + nonce + ciphertext + tag
  EXPECT_EQ(QueryOne(db_path_, "SELECT DISTINCT length(ciphertext) FROM secure_values"),
            absl::StrCat(1 + 12 + std::string(kMarker).size() + 16));
  EXPECT_EQ(QueryOne(db_path_, "SELECT COUNT(DISTINCT data_key_id) FROM secure_values"), "2");
}

TEST_F(SqliteSecretStoreTest, CiphertextMovedToAnotherRowIsDataLoss) {
  std::unique_ptr<SqliteSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("source", kMarker)).ok());
  ASSERT_TRUE(store->Put(Write("target", "target-value")).ok());
  ASSERT_TRUE(store->Put(Write("versioned", "v1")).ok());
  ASSERT_TRUE(store->Put(Write("versioned", "v2")).ok());
  ASSERT_TRUE(store->Put(Write("flipped", "intact")).ok());

  // Another name, same stack and data key.
  Query(db_path_,
        "UPDATE secure_values SET ciphertext = (SELECT ciphertext FROM secure_values WHERE"
        " name = 'source') WHERE name = 'target'");
  // An older version's ciphertext under the newest version number.
  Query(db_path_,
        "UPDATE secure_values SET ciphertext = (SELECT ciphertext FROM secure_values WHERE"
        " name = 'versioned' AND version = 1) WHERE name = 'versioned' AND version = 2");
  // One flipped bit in the last byte (the tag).
  Query(db_path_,
        "UPDATE secure_values SET ciphertext = substr(ciphertext, 1, length(ciphertext) - 1)"
        " || CASE WHEN substr(ciphertext, -1) = x'00' THEN x'01' ELSE x'00' END"
        " WHERE name = 'flipped'");
  for (const char* name : {"target", "versioned", "flipped"}) {
    absl::StatusOr<StoredSecret> got = store->Get(kStack, name);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << name;
    EXPECT_THAT(got.status().message(), Not(HasSubstr(kMarker)));
  }
  EXPECT_TRUE(store->Get(kStack, "source").ok());
}

TEST_F(SqliteSecretStoreTest, DamagedRowsAreDataLoss) {
  std::unique_ptr<SqliteSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("json", "v")).ok());
  ASSERT_TRUE(store->Put(Write("key", "v", "stacks-2")).ok());
  Query(db_path_, "UPDATE secure_values SET decrypters = '[\"unterminated' WHERE name = 'json'");
  Query(db_path_, "UPDATE data_keys SET wrapped_key = zeroblob(61) WHERE stack = 'stacks-2'");
  EXPECT_EQ(store->Get(kStack, "json").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store->List(kStack).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store->Get("stacks-2", "key").status().code(), absl::StatusCode::kDataLoss);
  Query(db_path_, "DELETE FROM data_keys WHERE stack = 'stacks-2'");
  EXPECT_EQ(store->Get("stacks-2", "key").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(SqliteSecretStoreTest, MissingKekIsFailedPreconditionNamingItsId) {
  {
    std::unique_ptr<SqliteSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(Write("api-token", "v")).ok());
  }
  const std::string other_path = dir_ + "/other-keks";
  WriteKekFile(other_path, {"kek-2"});
  absl::StatusOr<KeyRing> other = KeyRing::LoadFromFile(other_path);
  ASSERT_TRUE(other.ok());
  std::unique_ptr<SqliteSecretStore> store = MustOpen(&*other);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<StoredSecret> got = store->Get(kStack, "api-token");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(got.status().message(), HasSubstr("\"kek-1\""));
  absl::StatusOr<int64_t> put = store->Put(Write("api-token", "v2"));
  EXPECT_EQ(put.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(put.status().message(), HasSubstr("\"kek-1\""));
  // Another stack gets a data key wrapped by the KEK this process has.
  EXPECT_TRUE(store->Put(Write("api-token", "v", "stacks-2")).ok());
}

TEST_F(SqliteSecretStoreTest, WrongKekUnderTheRightIdIsFailedPrecondition) {
  {
    std::unique_ptr<SqliteSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(Write("api-token", kMarker)).ok());
  }
  const std::string wrong_path = dir_ + "/wrong-keks";
  WriteKekFile(wrong_path, {"kek-1"});  // same id, different bytes
  absl::StatusOr<KeyRing> wrong = KeyRing::LoadFromFile(wrong_path);
  ASSERT_TRUE(wrong.ok());
  std::unique_ptr<SqliteSecretStore> store = MustOpen(&*wrong);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<StoredSecret> got = store->Get(kStack, "api-token");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(got.status().message(), HasSubstr("\"kek-1\""));
  EXPECT_THAT(got.status().message(), Not(HasSubstr(kMarker)));
}

TEST_F(SqliteSecretStoreTest, RewrapDataKeysMovesKeysToTheNewKekWithoutTouchingValues) {
  {
    std::unique_ptr<SqliteSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(Write("a", "value-a", "stacks-1")).ok());
    ASSERT_TRUE(store->Put(Write("b", "value-b", "stacks-2")).ok());
  }
  const std::string ciphertexts_before =
      QueryOne(db_path_, "SELECT group_concat(hex(ciphertext)) FROM secure_values");

  // The rotated ring: a new active KEK, the old one kept for unwrapping.
  KeyRing rotated;
  absl::StatusOr<SecretBytes> new_kek = KeyRing::GenerateKek();
  ASSERT_TRUE(new_kek.ok());
  SecretBytes new_kek_copy = new_kek->Clone();
  ASSERT_TRUE(rotated.Add("kek-2", *std::move(new_kek)).ok());
  ASSERT_TRUE(rotated.Add("kek-1", (*ring_.Find("kek-1"))->Clone()).ok());
  {
    std::unique_ptr<SqliteSecretStore> store = MustOpen(&rotated);
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
  EXPECT_EQ(QueryOne(db_path_, "SELECT group_concat(hex(ciphertext)) FROM secure_values"),
            ciphertexts_before);
  EXPECT_EQ(QueryOne(db_path_, "SELECT group_concat(DISTINCT kek_id) FROM data_keys"), "kek-2");

  // The old KEK can go: the new one alone opens everything.
  KeyRing new_only;
  ASSERT_TRUE(new_only.Add("kek-2", std::move(new_kek_copy)).ok());
  std::unique_ptr<SqliteSecretStore> store = MustOpen(&new_only);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<StoredSecret> a = store->Get("stacks-1", "a");
  absl::StatusOr<StoredSecret> b = store->Get("stacks-2", "b");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(a->value.Equals("value-a"));
  EXPECT_TRUE(b->value.Equals("value-b"));
}

TEST_F(SqliteSecretStoreTest, RewrapWithAnOldKekMissingChangesNothing) {
  {
    std::unique_ptr<SqliteSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(Write("a", "value-a")).ok());
  }
  const std::string keys_before =
      QueryOne(db_path_, "SELECT group_concat(kek_id || hex(wrapped_key)) FROM data_keys");
  KeyRing new_only;
  absl::StatusOr<SecretBytes> kek = KeyRing::GenerateKek();
  ASSERT_TRUE(kek.ok());
  ASSERT_TRUE(new_only.Add("kek-2", *std::move(kek)).ok());
  std::unique_ptr<SqliteSecretStore> store = MustOpen(&new_only);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<int64_t> rewrapped = store->RewrapDataKeys("kek-2");
  EXPECT_EQ(rewrapped.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(rewrapped.status().message(), HasSubstr("\"kek-1\""));
  EXPECT_EQ(QueryOne(db_path_, "SELECT group_concat(kek_id || hex(wrapped_key)) FROM data_keys"),
            keys_before);
}

// --- auditing ---

TEST_F(SqliteSecretStoreTest, DeleteKeepsEveryVersionAndRecordsWhoAndWhen) {
  std::unique_ptr<SqliteSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("audited", "v1", kStack, "user:alice")).ok());
  ASSERT_TRUE(store->Put(Write("audited", "v2", kStack, "user:bob")).ok());
  ASSERT_TRUE(store->Delete(kStack, "audited", "user:carol").ok());
  EXPECT_EQ(store->Get(kStack, "audited").status().code(), absl::StatusCode::kNotFound);

  EXPECT_THAT(Query(db_path_, "SELECT version, active, created_by, updated_by FROM"
                              " secure_values WHERE name = 'audited' ORDER BY version"),
              ElementsAre(ElementsAre("1", "0", "user:alice", "user:bob"),
                          ElementsAre("2", "0", "user:bob", "user:carol")));
  EXPECT_THAT(Query(db_path_, "SELECT version, op, actor FROM change_log WHERE name ="
                              " 'audited' ORDER BY seq"),
              ElementsAre(ElementsAre("1", "put", "user:alice"),
                          ElementsAre("2", "put", "user:bob"),
                          ElementsAre("2", "delete", "user:carol")));
  EXPECT_EQ(QueryOne(db_path_, "SELECT COUNT(*) FROM change_log WHERE at_us <= 0"), "0");
}

// --- other processes ---

// Collects Watch notifications for a test to wait on.
class ChangeRecorder {
 public:
  std::function<void(const SecretChange&)> Listener() {
    return [this](const SecretChange& change) {
      std::lock_guard<std::mutex> lock(mu_);
      changes_.push_back(change);
      cv_.notify_all();
    };
  }

  // Waits until a change of (stack, name) arrives or `deadline` passes.
  bool WaitFor(absl::string_view stack, absl::string_view name, absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    auto seen = [&] {
      for (const SecretChange& c : changes_) {
        if (c.stack == stack && c.name == name && !c.resync) return true;
      }
      return false;
    };
    while (!seen()) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      cv_.wait_for(lock, absl::ToChronoMilliseconds(left) + std::chrono::milliseconds(1));
    }
    return true;
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

TEST_F(SqliteSecretStoreTest, AnotherProcessesWritesAreSeenWithinOneSecond) {
  std::unique_ptr<SqliteSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(Write("before-watch", "v")).ok());
  ChangeRecorder recorder;
  ASSERT_TRUE(store->Watch(recorder.Listener()).ok());

  Child put = Spawn(HelperArgs({"put", kStack, "watched", "new-value"}));
  ASSERT_EQ(Wait(put), 0);
  EXPECT_TRUE(recorder.WaitFor(kStack, "watched", absl::Now() + absl::Seconds(1)))
      << "no change notification within 1 s of the other process's commit";
  // The change is already readable.
  absl::StatusOr<StoredSecret> got = store->Get(kStack, "watched");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->value.Equals("new-value"));

  Child del = Spawn(HelperArgs({"delete", kStack, "before-watch"}));
  ASSERT_EQ(Wait(del), 0);
  EXPECT_TRUE(recorder.WaitFor(kStack, "before-watch", absl::Now() + absl::Seconds(1)));
  for (const SecretChange& change : recorder.changes()) EXPECT_FALSE(change.resync);
}

TEST_F(SqliteSecretStoreTest, WatchReportsEveryCommitOfAnyConnectionInOrder) {
  SqliteStoreOptions options;
  options.watch_poll_interval = absl::Milliseconds(20);
  std::unique_ptr<SqliteSecretStore> watcher = MustOpen(nullptr, options);
  std::unique_ptr<SqliteSecretStore> writer = MustOpen();
  ASSERT_NE(watcher, nullptr);
  ASSERT_NE(writer, nullptr);
  ChangeRecorder first;
  ChangeRecorder second;
  ASSERT_TRUE(watcher->Watch(first.Listener()).ok());
  ASSERT_TRUE(watcher->Watch(second.Listener()).ok());
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(writer->Put(Write(absl::StrCat("s-", i), "v")).ok());
  }
  ASSERT_TRUE(writer->Delete(kStack, "s-3", "user:bob").ok());
  ASSERT_TRUE(watcher->Put(Write("own-write", "v")).ok());
  EXPECT_TRUE(first.WaitFor(kStack, "own-write", absl::Now() + absl::Seconds(5)));
  EXPECT_TRUE(second.WaitFor(kStack, "own-write", absl::Now() + absl::Seconds(5)));
  std::vector<std::string> names;
  for (const SecretChange& change : first.changes()) names.push_back(change.name);
  ASSERT_EQ(names.size(), 32u);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(names[i], absl::StrCat("s-", i));
  EXPECT_EQ(names[30], "s-3");
  EXPECT_EQ(names[31], "own-write");
  EXPECT_EQ(second.changes().size(), 32u);
}

TEST_F(SqliteSecretStoreTest, WriterKilledMidBatchLeavesEverySecretAtItsOldOrNewVersion) {
  constexpr int kSecrets = 30;
  std::vector<std::string> value(kSecrets);  // the value each s-i has now
  std::vector<int64_t> version(kSecrets, 1);
  {
    std::unique_ptr<SqliteSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < kSecrets; ++i) {
      value[i] = absl::StrCat("old-", i);
      ASSERT_TRUE(store->Put(Write(absl::StrCat("s-", i), value[i])).ok());
    }
  }
  // The helper updates s-0, s-1, ... and SIGKILLs itself inside SQLite's N-th file write: each
  // N stops it at another point in the middle of writing one secret's transaction.
  for (int kill_at_write : {1, 4, 9, 14, 22, 31, 40, 47, 58, 64, 77, 85, 99}) {
    SCOPED_TRACE(absl::StrCat("killed at write ", kill_at_write));
    const std::string prefix = absl::StrCat("new", kill_at_write);
    Child writer = Spawn(HelperArgs({"update-all", kStack, absl::StrCat(kSecrets), prefix,
                                     absl::StrCat(kill_at_write)}));
    // The helper prints i before it starts writing s-i; the last line is the write it died in.
    int in_progress = -1;
    std::string line;
    while (ReadLine(writer, &line)) ASSERT_TRUE(absl::SimpleAtoi(line, &in_progress)) << line;
    ASSERT_EQ(Wait(writer), 128 + SIGKILL) << "the helper finished before write "
                                           << kill_at_write;

    std::unique_ptr<SqliteSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < kSecrets; ++i) {
      absl::StatusOr<StoredSecret> got = store->Get(kStack, absl::StrCat("s-", i));
      ASSERT_TRUE(got.ok()) << "s-" << i << ": " << got.status();
      const bool updated = got->version == version[i] + 1;
      if (i < in_progress) {
        EXPECT_TRUE(updated) << "s-" << i << " lost a committed write";
      } else if (i > in_progress) {
        EXPECT_FALSE(updated) << "s-" << i << " was never written";
      }
      if (updated) {
        value[i] = absl::StrCat(prefix, "-", i);
        version[i] = got->version;
      }
      EXPECT_EQ(got->version, version[i]) << "s-" << i;
      EXPECT_TRUE(got->value.Equals(value[i])) << "s-" << i << " is half-written";
    }
  }
  EXPECT_EQ(QueryOne(db_path_, "PRAGMA integrity_check"), "ok");
}

TEST_F(SqliteSecretStoreTest, TwoWriterProcessesAndReadersLoseNoUpdate) {
  constexpr int kPuts = 25;
  std::unique_ptr<SqliteSecretStore> store = MustOpen();
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

  // Each writer's versions strictly increase; together they are 2..2*kPuts+1, each once.
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
  // Every value a reader saw is the one written under that version.
  for (const auto& [version, value] : observed) EXPECT_EQ(value_of[version], value) << version;
  absl::StatusOr<StoredSecret> final_value = store->Get(kStack, "contended");
  ASSERT_TRUE(final_value.ok());
  EXPECT_EQ(final_value->version, 2 * kPuts + 1);
  EXPECT_TRUE(final_value->value.Equals(value_of[2 * kPuts + 1]));
}

}  // namespace
}  // namespace secret_resolver
