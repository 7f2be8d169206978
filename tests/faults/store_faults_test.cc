// Store faults through the real binary (issue 14 item 2, issue 15 items 1 and 7): a lost
// PostgreSQL change feed, a stopped PostgreSQL, a SQLite file replaced by rename, a damaged
// SQLite file. Each case checks what callers get, the log lines an operator sees, /readyz and
// the metrics.
#include <postgresql/libpq-fe.h>
#include <sqlite3.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "resolver/postgres/postgres_secret_store.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"
#include "tests/testing/postgres_environment.h"

namespace secret_resolver {
namespace {

using ::secretresolver::v1::ResolveSecretsRequest;
using ::secretresolver::v1::ResolveSecretsResponse;
using ::secretresolver::v1::SecretResolver;
using ::secretresolver::v1::SecretResult;

constexpr char kStack[] = "stacks-11";
constexpr char kService[] = "grafana-workflows";
constexpr char kRevoked[] = "workflows/http/revoked-token";
constexpr char kKept[] = "workflows/http/kept-token";
// Stand-ins for production credentials.
constexpr char kValue[] = "planted-fault-token-7c31";
constexpr char kRestoredValue[] = "planted-fault-token-restored-52e9";

constexpr char kAdminYaml[] = "admin:\n  enabled: true\n  address: 127.0.0.1:0\n";

// Polls `done` every 50 ms until it holds or `timeout` passes; returns whether it held.
bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return true;
}

SecretWrite Write(const std::string& name, const std::string& value,
                  std::vector<std::string> decrypters = {kService}) {
  SecretWrite write;
  write.stack = kStack;
  write.name = name;
  write.decrypters = std::move(decrypters);
  write.actor = "fault-test";
  write.value = SecretBytes(value);
  return write;
}

// The sidecar under test, its client and its admin port.
class Harness {
 public:
  explicit Harness(std::unique_ptr<testing::SidecarProcess> sidecar, std::string token)
      : sidecar_(std::move(sidecar)),
        token_(std::move(token)),
        stub_(SecretResolver::NewStub(
            grpc::CreateChannel(sidecar_->target(), grpc::InsecureChannelCredentials()))) {
    const std::string admin = sidecar_->ServingAddress("admin");
    const size_t colon = admin.rfind(':');
    admin_ = std::make_unique<httplib::Client>(admin.substr(0, colon),
                                               std::stoi(admin.substr(colon + 1)));
    admin_->set_read_timeout(5, 0);
  }

  // The result for one reference to `name`; an error result if the call itself failed.
  SecretResult Resolve(const std::string& name) {
    ResolveSecretsRequest request;
    request.set_stack(kStack);
    (*request.mutable_refs())["ref"] = absl::StrCat("secret://", name);
    ResolveSecretsResponse response;
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token_);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status status = stub_->ResolveSecrets(&context, request, &response);
    SecretResult result;
    if (!status.ok()) {
      result.mutable_error()->set_code(static_cast<int>(status.error_code()));
      result.mutable_error()->set_message("call failed: " + status.error_message());
      return result;
    }
    return response.results().at("ref");
  }

  // GET `path` on the admin port: the status (0 when it could not be reached) and the body.
  std::pair<int, std::string> Get(const std::string& path) {
    auto response = admin_->Get(path.c_str());
    if (!response) return {0, ""};
    return {response->status, response->body};
  }

  // The value of the unlabelled series `name` on /metrics, or -1.
  double Metric(const std::string& name) {
    for (absl::string_view line : absl::StrSplit(Get("/metrics").second, '\n')) {
      if (!absl::ConsumePrefix(&line, name) || !absl::ConsumePrefix(&line, " ")) continue;
      double value = 0;
      if (absl::SimpleAtod(line, &value)) return value;
    }
    return -1;
  }

  // The number of log lines whose "msg" starts with `msg`.
  int LogLines(const std::string& msg) {
    int count = 0;
    const std::string needle = absl::StrCat("\"msg\":\"", msg);
    for (absl::string_view line : absl::StrSplit(sidecar_->Log(), '\n')) {
      if (absl::StrContains(line, needle)) ++count;
    }
    return count;
  }

  testing::SidecarProcess& process() { return *sidecar_; }

 private:
  std::unique_ptr<testing::SidecarProcess> sidecar_;
  std::string token_;
  std::unique_ptr<SecretResolver::Stub> stub_;
  std::unique_ptr<httplib::Client> admin_;
};

bool Served(const SecretResult& result, const std::string& value) {
  return result.has_secret() && result.secret().value() == value;
}

// ---- PostgreSQL ----

// Runs `sql` as the superuser on `dsn`; returns PostgreSQL's error message, empty on success.
std::string RunSql(const std::string& dsn, const std::string& sql) {
  PGconn* conn = PQconnectdb(dsn.c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* result = PQexec(conn, sql.c_str());
    const ExecStatusType status = PQresultStatus(result);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) error = PQerrorMessage(conn);
    PQclear(result);
  }
  PQfinish(conn);
  return error;
}

// A database of its own, owned by a role of its own that the sidecar logs in as: a role that
// is not a superuser, so that `ALTER ROLE ... NOLOGIN` keeps the sidecar from opening new
// connections while the ones it has keep working.
struct PostgresFixture {
  std::string admin_dsn;    // the superuser
  std::string sidecar_dsn;  // the sidecar's role
  std::string role;
  std::string database;
};

absl::StatusOr<PostgresFixture> CreatePostgresFixture(const std::string& prefix) {
  absl::StatusOr<std::string> dsn = CreateTestDatabase(prefix);
  if (!dsn.ok()) return dsn.status();
  PostgresFixture f;
  f.admin_dsn = *dsn;
  f.database = f.admin_dsn.substr(f.admin_dsn.rfind("dbname=") + 7);
  f.role = "role_" + f.database;
  const std::string error = RunSql(
      f.admin_dsn, absl::StrCat("CREATE ROLE ", f.role, " LOGIN; ALTER DATABASE ", f.database,
                                " OWNER TO ", f.role));
  if (!error.empty()) return absl::InternalError(error);
  f.sidecar_dsn = f.admin_dsn;
  f.sidecar_dsn.replace(f.sidecar_dsn.find("user=postgres"), 13, "user=" + f.role);
  return f;
}

// The sidecar's listening connection: terminated, and kept from coming back until `restore`.
std::string BreakListener(const PostgresFixture& f) {
  return RunSql(f.admin_dsn,
                absl::StrCat("ALTER ROLE ", f.role, " NOLOGIN; SELECT pg_terminate_backend(pid) "
                             "FROM pg_stat_activity WHERE usename = '", f.role,
                             "' AND application_name = 'secret-resolver-listener'"));
}

std::string RestoreLogin(const PostgresFixture& f) {
  return RunSql(f.admin_dsn, absl::StrCat("ALTER ROLE ", f.role, " LOGIN"));
}

std::unique_ptr<PostgresSecretStore> OpenPostgres(const std::string& dsn, const KeyRing* ring) {
  PostgresPoolOptions pool;
  pool.dsn = dsn;
  pool.max_connections = 1;
  absl::StatusOr<std::unique_ptr<PostgresSecretStore>> store =
      PostgresSecretStore::Open(pool, ring);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

// A state directory for a sidecar with its admin port on: the SQLite store, or PostgreSQL at
// `dsn`.
testing::SidecarState MakeState(const std::string& dsn = "") {
  absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create(kAdminYaml, dsn);
  EXPECT_TRUE(state.ok()) << state.status();
  return state.ok() ? *std::move(state) : testing::SidecarState();
}

absl::StatusOr<std::unique_ptr<Harness>> Launch(const testing::SidecarState& state) {
  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
      testing::SidecarProcess::Start(state);
  if (!sidecar.ok()) return sidecar.status();
  return std::make_unique<Harness>(*std::move(sidecar), state.Token(kStack, kService));
}

// Issue 14 item 2: while the change feed is down, a secret deleted in the store stops resolving
// within cache.unconfirmed_grace (not the 300 s TTL); the loss and the return are logged once
// each, /readyz stays 200 with a note, and secret_resolver_change_feed_up follows.
TEST(StoreFaultsTest, DeletionWhileThePostgresFeedIsDownIsSeenAfterTheGrace) {
  absl::StatusOr<PostgresFixture> pg = CreatePostgresFixture("feedloss");
  ASSERT_TRUE(pg.ok()) << pg.status();
  testing::SidecarState state = MakeState(pg->sidecar_dsn);
  {
    // Written before the sidecar starts, so that no notification of it can drop the value
    // cached below (and the schema is the sidecar role's).
    std::unique_ptr<PostgresSecretStore> writer = OpenPostgres(pg->sidecar_dsn, &state.key_ring);
    ASSERT_NE(writer, nullptr);
    ASSERT_TRUE(writer->Put(Write(kRevoked, kValue)).ok());
  }
  absl::StatusOr<std::unique_ptr<Harness>> h = Launch(state);
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(Served((*h)->Resolve(kRevoked), kValue));
  EXPECT_EQ((*h)->Metric("secret_resolver_change_feed_up"), 1);

  ASSERT_EQ(BreakListener(*pg), "");
  ASSERT_TRUE(WaitUntil([&] { return (*h)->LogLines("store change feed lost") == 1; },
                        absl::Seconds(5)))
      << (*h)->process().Log();
  // Unannounced: nobody is listening for the notification.
  std::unique_ptr<PostgresSecretStore> writer = OpenPostgres(pg->admin_dsn, &state.key_ring);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Delete(kStack, kRevoked, "fault-test").ok());
  const absl::Time deleted = absl::Now();
  // Until the grace has passed the cached value may still be served; after it, it is re-read.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return (*h)->Resolve(kRevoked).error().code() == static_cast<int>(grpc::NOT_FOUND);
      },
      absl::Seconds(4)))
      << "still served " << absl::FormatDuration(absl::Now() - deleted)
      << " after the deletion, with the change feed down";
  EXPECT_EQ((*h)->Metric("secret_resolver_change_feed_up"), 0);
  // Serving goes on, so the pod stays ready; the body says what is wrong.
  const auto [ready_code, ready_body] = (*h)->Get("/readyz");
  EXPECT_EQ(ready_code, 200) << ready_body;
  EXPECT_TRUE(absl::StrContains(ready_body, "note: store change feed lost")) << ready_body;

  ASSERT_EQ(RestoreLogin(*pg), "");
  // The listener's backoff has grown to a few seconds by now (10 s at most).
  EXPECT_TRUE(WaitUntil([&] { return (*h)->LogLines("store change feed restored") == 1; },
                        absl::Seconds(15)))
      << (*h)->process().Log();
  EXPECT_EQ((*h)->Metric("secret_resolver_change_feed_up"), 1);
  EXPECT_EQ((*h)->LogLines("store change feed lost"), 1) << "one line per outage";
  EXPECT_EQ((*h)->Get("/readyz"), std::make_pair(200, std::string("ok\n")));
  EXPECT_FALSE(absl::StrContains((*h)->process().Log(), kValue));
}

// Issue 14 item 2 and issue 15 item 7: with PostgreSQL stopped (feed and store both gone), a
// cached value past the grace is served flagged stale; the outage is logged once when it starts
// and once when it ends, /readyz is 503 saying why, and secret_resolver_store_up follows.
TEST(StoreFaultsTest, StoppedPostgresServesStaleAndReportsTheOutage) {
  absl::StatusOr<PostgresFixture> pg = CreatePostgresFixture("outage");
  ASSERT_TRUE(pg.ok()) << pg.status();
  testing::SidecarState state = MakeState(pg->sidecar_dsn);
  {
    // Before the sidecar starts: no notification of it can drop the value cached below.
    std::unique_ptr<PostgresSecretStore> writer = OpenPostgres(pg->sidecar_dsn, &state.key_ring);
    ASSERT_NE(writer, nullptr);
    ASSERT_TRUE(writer->Put(Write(kKept, kValue)).ok());
  }
  absl::StatusOr<std::unique_ptr<Harness>> h = Launch(state);
  ASSERT_TRUE(h.ok()) << h.status();
  const SecretResult fresh = (*h)->Resolve(kKept);
  ASSERT_TRUE(Served(fresh, kValue));
  EXPECT_FALSE(fresh.secret().stale());
  EXPECT_EQ((*h)->Metric("secret_resolver_store_up"), 1);

  absl::StatusOr<PostgresServer*> server = SharedPostgresServer();
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Stop().ok());
  ASSERT_TRUE(WaitUntil([&] { return (*h)->LogLines("store change feed lost") == 1; },
                        absl::Seconds(5)))
      << (*h)->process().Log();
  // Past the grace the value is re-read; the store cannot answer, so it is served stale.
  absl::SleepFor(absl::Milliseconds(2200));
  const SecretResult stale = (*h)->Resolve(kKept);
  ASSERT_TRUE(Served(stale, kValue))
      << "code " << stale.error().code() << ": " << stale.error().message() << "\n"
      << (*h)->process().Log();
  EXPECT_TRUE(stale.secret().stale());
  // The readiness check runs every 2 s.
  ASSERT_TRUE(WaitUntil([&] { return (*h)->LogLines("store unavailable") == 1; },
                        absl::Seconds(6)))
      << (*h)->process().Log();
  const auto [code, body] = (*h)->Get("/readyz");
  EXPECT_EQ(code, 503);
  EXPECT_TRUE(absl::StrContains(body, "store unavailable")) << body;
  EXPECT_EQ((*h)->Metric("secret_resolver_store_up"), 0);

  ASSERT_TRUE((*server)->Restart().ok());
  EXPECT_TRUE(WaitUntil([&] { return (*h)->LogLines("store healthy again") == 1; },
                        absl::Seconds(6)))
      << (*h)->process().Log();
  EXPECT_TRUE(WaitUntil([&] { return (*h)->LogLines("store change feed restored") == 1; },
                        absl::Seconds(15)))
      << (*h)->process().Log();
  EXPECT_EQ((*h)->LogLines("store unavailable"), 1) << "one line per outage";
  EXPECT_EQ((*h)->Metric("secret_resolver_store_up"), 1);
  EXPECT_TRUE(WaitUntil([&] { return (*h)->Get("/readyz").first == 200; }, absl::Seconds(3)));
  const SecretResult again = (*h)->Resolve(kKept);
  ASSERT_TRUE(Served(again, kValue));
  EXPECT_FALSE(again.secret().stale());
}

// The process ids of the backends serving `role` (its pooled and listening connections).
std::vector<pid_t> BackendsOf(const PostgresFixture& f) {
  std::vector<pid_t> pids;
  PGconn* conn = PQconnectdb(f.admin_dsn.c_str());
  const std::string sql =
      absl::StrCat("SELECT pid FROM pg_stat_activity WHERE usename = '", f.role, "'");
  PGresult* result = PQexec(conn, sql.c_str());
  if (PQresultStatus(result) == PGRES_TUPLES_OK) {
    for (int i = 0; i < PQntuples(result); ++i) pids.push_back(std::stoi(PQgetvalue(result, i, 0)));
  }
  PQclear(result);
  PQfinish(conn);
  return pids;
}

// Issue 15 item 7: a hung store (its backends stopped, connections open but silent). The health
// check times out on the store's own bound and the hang gets one warning line; /readyz is 503;
// once the check passes again (on a fresh connection), one info line.
TEST(StoreFaultsTest, HungPostgresIsLoggedOnceWhenItStartsAndWhenItEnds) {
  absl::StatusOr<PostgresFixture> pg = CreatePostgresFixture("hang");
  ASSERT_TRUE(pg.ok()) << pg.status();
  testing::SidecarState state = MakeState(pg->sidecar_dsn);
  absl::StatusOr<std::unique_ptr<Harness>> h = Launch(state);
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_EQ((*h)->Get("/readyz").first, 200);
  const std::vector<pid_t> backends = BackendsOf(*pg);
  ASSERT_FALSE(backends.empty());
  for (pid_t pid : backends) ASSERT_EQ(kill(pid, SIGSTOP), 0);
  // The admin server says so after 5 s; the check itself gives up at the store's timeout.
  EXPECT_TRUE(WaitUntil([&] { return (*h)->Get("/readyz").first == 503; }, absl::Seconds(8)));
  const bool logged =
      WaitUntil([&] { return (*h)->LogLines("store unavailable") == 1; }, absl::Seconds(20));
  for (pid_t pid : backends) kill(pid, SIGCONT);
  ASSERT_TRUE(logged) << (*h)->process().Log();
  EXPECT_TRUE(WaitUntil([&] { return (*h)->LogLines("store healthy again") == 1; },
                        absl::Seconds(10)))
      << (*h)->process().Log();
  EXPECT_TRUE(WaitUntil([&] { return (*h)->Get("/readyz").first == 200; }, absl::Seconds(5)));
  EXPECT_EQ((*h)->LogLines("store unavailable"), 1) << "one line per outage";
}

// ---- SQLite ----

// Copies `from` to `to` with mode 0600 (the store refuses files others may read).
bool CopyFile(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  out << in.rdbuf();
  out.close();
  return in.good() && out.good() && chmod(to.c_str(), 0600) == 0;
}

// Issue 15 item 1: a backup restored with `mv` over the database is picked up within a poll or
// two: the decrypter it no longer lists is refused, the value it holds is served, one warning
// line says so and secret_resolver_store_incidents_total{kind="resync"} counts it. Before the
// restore the sidecar has written to its log (WAL) by another process, whose frames the new file
// must not inherit.
TEST(StoreFaultsTest, SqliteFileReplacedByRenameIsFollowed) {
  testing::SidecarState state = MakeState();
  const std::string backup = state.dir + "/backup.db";
  {
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(state.store_path, &state.key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Put(Write(kRevoked, kValue)).ok());
    ASSERT_TRUE((*store)->Put(Write(kKept, kValue)).ok());
  }
  // The backup: the same secrets, then kRevoked without our decrypter and kKept changed.
  ASSERT_TRUE(CopyFile(state.store_path, backup));
  {
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(backup, &state.key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Put(Write(kRevoked, kValue, {"someone-else"})).ok());
    ASSERT_TRUE((*store)->Put(Write(kKept, kRestoredValue)).ok());
  }
  absl::StatusOr<std::unique_ptr<Harness>> h = Launch(state);
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(Served((*h)->Resolve(kRevoked), kValue));
  ASSERT_TRUE(Served((*h)->Resolve(kKept), kValue));
  {
    // Another process writes while the sidecar has the file open: the frames sit in the WAL.
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(state.store_path, &state.key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Put(Write("workflows/http/other", kValue)).ok());
  }

  ASSERT_EQ(rename(backup.c_str(), state.store_path.c_str()), 0);
  const absl::Time replaced = absl::Now();
  EXPECT_TRUE(WaitUntil(
      [&] {
        return (*h)->Resolve(kRevoked).error().code() ==
               static_cast<int>(grpc::PERMISSION_DENIED);
      },
      absl::Seconds(2)))
      << "the removed decrypter still resolves "
      << absl::FormatDuration(absl::Now() - replaced) << " after the file was replaced";
  EXPECT_TRUE(Served((*h)->Resolve(kKept), kRestoredValue));
  EXPECT_EQ((*h)->Resolve("workflows/http/other").error().code(),
            static_cast<int>(grpc::NOT_FOUND))
      << "the replaced file's WAL frames must not reach the new file";
  // The log is written every 50 ms.
  EXPECT_TRUE(WaitUntil([&] { return (*h)->LogLines("store changes may have been missed") == 1; },
                        absl::Seconds(2)))
      << (*h)->process().Log();
  EXPECT_TRUE(absl::StrContains((*h)->process().Log(), "the file was replaced"));
  EXPECT_TRUE(absl::StrContains((*h)->Get("/metrics").second,
                                "secret_resolver_store_incidents_total{kind=\"resync\"} 1"));
  EXPECT_EQ((*h)->Get("/readyz").first, 200);

  // A deleted file is a lost feed (the store keeps reading the copy it has open) until a file
  // is back at the path.
  ASSERT_TRUE(CopyFile(state.store_path, backup));
  ASSERT_EQ(unlink(state.store_path.c_str()), 0);
  EXPECT_TRUE(WaitUntil([&] { return (*h)->LogLines("store change feed lost") == 1; },
                        absl::Seconds(2)))
      << (*h)->process().Log();
  EXPECT_TRUE(absl::StrContains((*h)->Get("/readyz").second, "no longer exists"));
  ASSERT_EQ(rename(backup.c_str(), state.store_path.c_str()), 0);
  EXPECT_TRUE(WaitUntil([&] { return (*h)->LogLines("store change feed restored") == 1; },
                        absl::Seconds(2)))
      << (*h)->process().Log();
  EXPECT_TRUE(Served((*h)->Resolve(kKept), kRestoredValue));
  EXPECT_FALSE(absl::StrContains((*h)->process().Log(), kValue));
  EXPECT_FALSE(absl::StrContains((*h)->process().Log(), kRestoredValue));
}

// The readiness check is one cheap query, not a listing of stack "default": a row there whose
// decrypter list cannot be read (DATA_LOSS for that secret alone) does not keep the pod out of
// service, and its name does not reach /readyz.
TEST(StoreFaultsTest, OneBadRowDoesNotMakeTheSidecarUnready) {
  testing::SidecarState state = MakeState();
  constexpr char kBadName[] = "workflows/http/bad-row";
  {
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(state.store_path, &state.key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    SecretWrite write = Write(kBadName, kValue);
    write.stack = "default";
    ASSERT_TRUE((*store)->Put(write).ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(state.store_path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE secure_values SET decrypters = 'not a list'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  absl::StatusOr<std::unique_ptr<Harness>> h = Launch(state);
  ASSERT_TRUE(h.ok()) << h.status();
  const auto [code, body] = (*h)->Get("/readyz");
  EXPECT_EQ(code, 200) << body;
  EXPECT_FALSE(absl::StrContains(body, kBadName)) << body;
}

// Overwrites the root page of table `table`'s b-tree with garbage, leaving the rest of the file
// (its header and schema) intact. The file must not be open.
bool DamageTable(const std::string& path, const std::string& table) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return false;
  sqlite3_stmt* stmt = nullptr;
  int root = 0;
  int page_size = 0;
  const std::string sql =
      absl::StrCat("SELECT rootpage, (SELECT page_size FROM pragma_page_size()) FROM sqlite_master"
                   " WHERE name = '", table, "'");
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    root = sqlite3_column_int(stmt, 0);
    page_size = sqlite3_column_int(stmt, 1);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  if (root < 2 || page_size <= 0) return false;
  std::fstream file(path, std::ios::binary | std::ios::in | std::ios::out);
  file.seekp(static_cast<std::streamoff>(root - 1) * page_size);
  const std::string garbage(page_size, '\xA5');
  file.write(garbage.data(), garbage.size());
  return file.good();
}

// Issue 15 item 7: a damaged SQLite file. A read that meets the damage latches it: one warning
// line, /readyz 503 "store data damaged", secret_resolver_store_up 0. Restoring a good file by
// rename ends it: one info line, ready again.
TEST(StoreFaultsTest, DamagedSqliteFileMakesReadinessFailUntilRestored) {
  testing::SidecarState state = MakeState();
  const std::string good = state.dir + "/good.db";
  {
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(state.store_path, &state.key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Put(Write(kKept, kValue)).ok());
  }
  ASSERT_TRUE(CopyFile(state.store_path, good));
  ASSERT_TRUE(DamageTable(state.store_path, "secure_values"));
  absl::StatusOr<std::unique_ptr<Harness>> h = Launch(state);
  ASSERT_TRUE(h.ok()) << h.status();

  EXPECT_EQ((*h)->Resolve(kKept).error().code(), static_cast<int>(grpc::DATA_LOSS));
  ASSERT_TRUE(WaitUntil([&] { return (*h)->LogLines("store data damaged") == 1; },
                        absl::Seconds(5)))
      << (*h)->process().Log();
  const auto [code, body] = (*h)->Get("/readyz");
  EXPECT_EQ(code, 503);
  EXPECT_TRUE(absl::StrContains(body, "store data damaged")) << body;
  EXPECT_EQ((*h)->Metric("secret_resolver_store_up"), 0);
  EXPECT_TRUE(absl::StrContains((*h)->Get("/metrics").second,
                                "secret_resolver_store_incidents_total{kind=\"damaged\"} 1"));

  ASSERT_EQ(rename(good.c_str(), state.store_path.c_str()), 0);
  EXPECT_TRUE(WaitUntil([&] { return (*h)->LogLines("store healthy again") == 1; },
                        absl::Seconds(5)))
      << (*h)->process().Log();
  EXPECT_TRUE(WaitUntil([&] { return (*h)->Get("/readyz").first == 200; }, absl::Seconds(3)));
  EXPECT_TRUE(Served((*h)->Resolve(kKept), kValue));
  EXPECT_EQ((*h)->LogLines("store data damaged"), 1) << "one line per incident";
}

}  // namespace
}  // namespace secret_resolver
