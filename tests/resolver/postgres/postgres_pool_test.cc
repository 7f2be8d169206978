// Tests of PostgresPool and PostgresDsn against a real PostgreSQL 15 server started by the
// PostgresServer fixture (one server for the whole binary; a test that cannot start it fails).
#include "resolver/postgres/postgres_pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <postgresql/libpq-fe.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "resolver/postgres/postgres_connection.h"
#include "tests/testing/postgres_environment.h"
#include "tests/testing/postgres_server.h"

namespace secret_resolver {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Made-up credentials for DSNs: they must never show up in an error message.
constexpr char kPassword[] = "Zq9-not-a-real-password";

absl::Time In(absl::Duration d) { return absl::Now() + d; }

bool Contains(absl::string_view haystack, absl::string_view needle) {
  return haystack.find(needle) != absl::string_view::npos;
}

// Runs `sql` on the lease's connection and returns the first value of the first row.
std::string QueryValue(PGconn* conn, const std::string& sql) {
  PGresult* result = PQexec(conn, sql.c_str());
  std::string value;
  if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0) {
    value = PQgetvalue(result, 0, 0);
  } else {
    ADD_FAILURE() << sql << ": " << PQresultErrorMessage(result);
  }
  PQclear(result);
  return value;
}

// A TCP port on 127.0.0.1 where nothing listens (bound, then closed).
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t length = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  close(fd);
  return ntohs(addr.sin_port);
}

class PostgresPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<PostgresServer*> server = SharedPostgresServer();
    ASSERT_TRUE(server.ok()) << "could not start PostgreSQL: " << server.status();
    server_ = *server;
  }

  static std::unique_ptr<PostgresPool> MakePool(int max_connections) {
    PostgresPoolOptions options;
    options.dsn = server_->dsn();
    options.max_connections = max_connections;
    absl::StatusOr<std::unique_ptr<PostgresPool>> pool = PostgresPool::Create(options);
    EXPECT_TRUE(pool.ok()) << pool.status();
    return pool.ok() ? *std::move(pool) : nullptr;
  }

  static PostgresServer* server_;
};

PostgresServer* PostgresPoolTest::server_ = nullptr;

TEST_F(PostgresPoolTest, LendsWorkingConnectionsAndReusesThem) {
  std::unique_ptr<PostgresPool> pool = MakePool(2);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->stats().open, 0) << "connections open lazily";

  std::string backend;
  {
    absl::StatusOr<PostgresPool::Lease> lease = pool->Acquire(In(absl::Seconds(10)));
    ASSERT_TRUE(lease.ok()) << lease.status();
    EXPECT_EQ(QueryValue(lease->get(), "SELECT current_database()"), "secret_resolver_test");
    EXPECT_EQ(QueryValue(lease->get(), "SELECT application_name FROM pg_stat_activity "
                                       "WHERE pid = pg_backend_pid()"),
              "secret-resolver");
    backend = QueryValue(lease->get(), "SELECT pg_backend_pid()");
    EXPECT_EQ(pool->stats().in_use, 1);
  }
  EXPECT_EQ(pool->stats().idle, 1);

  absl::StatusOr<PostgresPool::Lease> again = pool->Acquire(In(absl::Seconds(10)));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(QueryValue(again->get(), "SELECT pg_backend_pid()"), backend);
  EXPECT_EQ(pool->stats().open, 1);
}

TEST_F(PostgresPoolTest, ExhaustedPoolReturnsResourceExhaustedAtTheDeadline) {
  std::unique_ptr<PostgresPool> pool = MakePool(2);
  ASSERT_NE(pool, nullptr);
  absl::StatusOr<PostgresPool::Lease> first = pool->Acquire(In(absl::Seconds(10)));
  absl::StatusOr<PostgresPool::Lease> second = pool->Acquire(In(absl::Seconds(10)));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();

  absl::StatusOr<PostgresPool::Lease> third = pool->Acquire(In(absl::Milliseconds(50)));
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_TRUE(Contains(third.status().message(), "all 2 connections"));
  // A deadline already past does not wait at all.
  EXPECT_EQ(pool->Acquire(absl::InfinitePast()).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(pool->stats().open, 2);
}

TEST_F(PostgresPoolTest, WaiterGetsTheConnectionAnotherReturns) {
  std::unique_ptr<PostgresPool> pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  absl::StatusOr<PostgresPool::Lease> held = pool->Acquire(In(absl::Seconds(10)));
  ASSERT_TRUE(held.ok()) << held.status();

  absl::Status waiter_status = absl::UnknownError("not run");
  std::thread waiter([&] {
    absl::StatusOr<PostgresPool::Lease> lease = pool->Acquire(In(absl::Seconds(30)));
    waiter_status = lease.status();
  });
  { PostgresPool::Lease returned = std::move(*held); }
  waiter.join();
  EXPECT_TRUE(waiter_status.ok()) << waiter_status;
  EXPECT_EQ(pool->stats().open, 1);
}

TEST_F(PostgresPoolTest, ConnectionsLeftInATransactionOrMarkedBrokenAreClosed) {
  std::unique_ptr<PostgresPool> pool = MakePool(2);
  ASSERT_NE(pool, nullptr);
  {
    absl::StatusOr<PostgresPool::Lease> lease = pool->Acquire(In(absl::Seconds(10)));
    ASSERT_TRUE(lease.ok()) << lease.status();
    PQclear(PQexec(lease->get(), "BEGIN"));
  }
  EXPECT_EQ(pool->stats().open, 0);
  {
    absl::StatusOr<PostgresPool::Lease> lease = pool->Acquire(In(absl::Seconds(10)));
    ASSERT_TRUE(lease.ok()) << lease.status();
    PQclear(PQexec(lease->get(), "BEGIN"));
    PQclear(PQexec(lease->get(), "SELECT * FROM no_such_table"));
    EXPECT_EQ(PQtransactionStatus(lease->get()), PQTRANS_INERROR);
  }
  EXPECT_EQ(pool->stats().open, 0);
  {
    absl::StatusOr<PostgresPool::Lease> lease = pool->Acquire(In(absl::Seconds(10)));
    ASSERT_TRUE(lease.ok()) << lease.status();
    lease->MarkBroken();
  }
  EXPECT_EQ(pool->stats().open, 0);
}

TEST_F(PostgresPoolTest, IdleConnectionClosedByTheServerIsReplaced) {
  std::unique_ptr<PostgresPool> pool = MakePool(2);
  ASSERT_NE(pool, nullptr);
  std::string victim;
  {
    absl::StatusOr<PostgresPool::Lease> lease = pool->Acquire(In(absl::Seconds(10)));
    ASSERT_TRUE(lease.ok()) << lease.status();
    victim = QueryValue(lease->get(), "SELECT pg_backend_pid()");
  }
  {
    PGconn* admin = PQconnectdb(server_->dsn().c_str());
    // Waits (up to 10 s) until the backend has exited and its socket is closed.
    EXPECT_EQ(QueryValue(admin, absl::StrCat("SELECT pg_terminate_backend(", victim, ", 10000)")),
              "t");
    PQfinish(admin);
  }
  absl::StatusOr<PostgresPool::Lease> lease = pool->Acquire(In(absl::Seconds(10)));
  ASSERT_TRUE(lease.ok()) << lease.status();
  const std::string backend = QueryValue(lease->get(), "SELECT pg_backend_pid()");
  EXPECT_NE(backend, victim);
  EXPECT_FALSE(backend.empty());
}

TEST_F(PostgresPoolTest, ServerRestartMakesAcquireUnavailableThenRecovers) {
  std::unique_ptr<PostgresPool> pool = MakePool(2);
  ASSERT_NE(pool, nullptr);
  { ASSERT_TRUE(pool->Acquire(In(absl::Seconds(10))).ok()); }
  ASSERT_EQ(pool->stats().idle, 1);

  ASSERT_TRUE(server_->Stop().ok());
  absl::StatusOr<PostgresPool::Lease> down = pool->Acquire(In(absl::Seconds(10)));
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  EXPECT_EQ(pool->stats().open, 0) << "the dead idle connection was dropped";

  ASSERT_TRUE(server_->Restart().ok());
  absl::StatusOr<PostgresPool::Lease> up = pool->Acquire(In(absl::Seconds(10)));
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(QueryValue(up->get(), "SELECT 1"), "1");
}

TEST_F(PostgresPoolTest, ConcurrentUsersNeverExceedTheBound) {
  constexpr int kMax = 3;
  std::unique_ptr<PostgresPool> pool = MakePool(kMax);
  ASSERT_NE(pool, nullptr);
  std::atomic<int> failures{0};
  std::atomic<int> most_open{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        absl::StatusOr<PostgresPool::Lease> lease = pool->Acquire(In(absl::Seconds(30)));
        if (!lease.ok()) {
          ++failures;
          continue;
        }
        PGresult* result = PQexec(lease->get(), "SELECT 1");
        if (PQresultStatus(result) != PGRES_TUPLES_OK) ++failures;
        PQclear(result);
        int open = pool->stats().open;
        int seen = most_open.load();
        while (open > seen && !most_open.compare_exchange_weak(seen, open)) {
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(most_open.load(), kMax);
  EXPECT_LE(pool->stats().open, kMax);
}

TEST_F(PostgresPoolTest, RejectionByTheServerIsUnavailableAndHidesThePassword) {
  PostgresPoolOptions options;
  options.dsn = absl::StrCat(server_->DsnForDatabase("no_such_database"), " password=", kPassword);
  absl::StatusOr<std::unique_ptr<PostgresPool>> pool = PostgresPool::Create(options);
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<PostgresPool::Lease> lease = (*pool)->Acquire(In(absl::Seconds(10)));
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(lease.status().message(), "no_such_database")) << lease.status();
  EXPECT_FALSE(Contains(lease.status().message(), kPassword));
  EXPECT_EQ((*pool)->stats().open, 0);
}

TEST(PostgresPoolUnreachableTest, MissingSocketIsUnavailableWithoutThePassword) {
  PostgresPoolOptions options;
  options.dsn = absl::StrCat("host=/nonexistent-socket-dir port=5432 user=resolver dbname=secrets "
                             "password=",
                             kPassword);
  absl::StatusOr<std::unique_ptr<PostgresPool>> pool = PostgresPool::Create(options);
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<PostgresPool::Lease> lease = (*pool)->Acquire(In(absl::Seconds(10)));
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(lease.status().message(), "/nonexistent-socket-dir")) << lease.status();
  EXPECT_FALSE(Contains(lease.status().message(), kPassword));
  EXPECT_FALSE(Contains((*pool)->description(), kPassword));
}

TEST(PostgresPoolUnreachableTest, RefusedTcpConnectionIsUnavailableWithoutThePassword) {
  PostgresPoolOptions options;
  options.dsn = absl::StrCat("postgresql://resolver:", kPassword, "@127.0.0.1:", ClosedPort(),
                             "/secrets?sslmode=prefer");
  absl::StatusOr<std::unique_ptr<PostgresPool>> pool = PostgresPool::Create(options);
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<PostgresPool::Lease> lease = (*pool)->Acquire(In(absl::Seconds(10)));
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(lease.status().message(), "127.0.0.1")) << lease.status();
  EXPECT_FALSE(Contains(lease.status().message(), kPassword));
}

TEST(PostgresPoolUnreachableTest, ServerThatNeverAnswersHitsTheDeadline) {
  // Accepts TCP connections (the kernel completes the handshake) but never speaks.
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 8), 0);
  socklen_t length = sizeof(addr);
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length);

  PostgresPoolOptions options;
  options.dsn = absl::StrCat("host=127.0.0.1 port=", ntohs(addr.sin_port),
                             " sslmode=disable user=resolver dbname=secrets password=", kPassword);
  absl::StatusOr<std::unique_ptr<PostgresPool>> pool = PostgresPool::Create(options);
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<PostgresPool::Lease> lease = (*pool)->Acquire(In(absl::Milliseconds(200)));
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kDeadlineExceeded) << lease.status();
  EXPECT_FALSE(Contains(lease.status().message(), kPassword));
  EXPECT_EQ((*pool)->stats().open, 0);
  close(listener);
}

TEST(PostgresDsnTest, MalformedConnectionStringsAreInvalidArgument) {
  const std::string cases[] = {
      "",
      "   ",
      absl::StrCat("host=/tmp port=5432 password ", kPassword),   // missing "="
      absl::StrCat("host=/tmp password='", kPassword),            // unterminated quote
      absl::StrCat("hots=/tmp password=", kPassword),             // unknown keyword
      absl::StrCat("postgresql://u:", kPassword, "@[::1/db"),      // malformed URI
      absl::StrCat("host=/tmp sslmode=verify-ful password=", kPassword),
  };
  for (const std::string& dsn : cases) {
    absl::StatusOr<PostgresDsn> parsed = PostgresDsn::Parse(dsn);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << "case " << dsn.size();
    EXPECT_FALSE(Contains(parsed.status().message(), kPassword)) << parsed.status();

    PostgresPoolOptions options;
    options.dsn = dsn;
    EXPECT_EQ(PostgresPool::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(Contains(PostgresDsn::Parse("hots=/tmp").status().message(), "hots"));
  EXPECT_TRUE(Contains(PostgresDsn::Parse("sslmode=verify-ful").status().message(), "sslmode"));
}

TEST(PostgresDsnTest, DescriptionAndRedactionLeaveThePasswordOut) {
  absl::StatusOr<PostgresDsn> dsn = PostgresDsn::Parse(absl::StrCat(
      "postgresql://resolver:", kPassword, "@db.internal:6432/secrets?sslmode=verify-full"
      "&sslrootcert=/etc/ssl/ca.pem"));
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  EXPECT_EQ(dsn->description(),
            "host=db.internal port=6432 dbname=secrets user=resolver sslmode=verify-full");
  EXPECT_EQ(dsn->Redact(absl::StrCat("auth for ", kPassword, " failed")),
            "auth for [REDACTED] failed");
  // Bytes outside printable ASCII are escaped: the description goes into errors and logs.
  dsn = PostgresDsn::Parse("host=/tmp/a\x01" "b dbname=s\xff" "e user=\x7f");
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  // (A hex digit right after an escape is escaped too, so the text reads back unambiguously.)
  EXPECT_EQ(dsn->description(), "host=/tmp/a\\x01\\x62 dbname=s\\xff\\x65 user=\\x7f");
}

// Connections that leave the machine must verify the server; local ones need not.
TEST(CheckPostgresTransportTest, NonLocalHostsNeedVerifyCaOrVerifyFull) {
  unsetenv("PGHOST");
  unsetenv("PGHOSTADDR");
  unsetenv("PGSSLMODE");
  auto check = [](const std::string& text) {
    absl::StatusOr<PostgresDsn> dsn = PostgresDsn::Parse(text);
    EXPECT_TRUE(dsn.ok()) << dsn.status();
    return dsn.ok() ? CheckPostgresTransport(*dsn) : dsn.status();
  };
  for (const char* local :
       {"dbname=x", "host=/var/run/postgresql", "host=@abstract", "host=localhost",
        "host=127.0.0.1 sslmode=disable", "host=::1", "hostaddr=127.0.0.2 host=db.internal",
        "host=/tmp,localhost", "postgresql:///secrets?host=/tmp", "postgresql://localhost/x"}) {
    EXPECT_TRUE(check(local).ok()) << local;
  }
  for (const char* verified :
       {"host=db.internal sslmode=verify-full", "host=10.1.2.3 sslmode=verify-ca",
        "postgresql://db.internal/x?sslmode=verify-full"}) {
    EXPECT_TRUE(check(verified).ok()) << verified;
  }
  for (const auto& [insecure, host, mode] :
       {std::make_tuple("host=db.internal", "db.internal", "prefer"),
        std::make_tuple("host=db.internal sslmode=require", "db.internal", "require"),
        std::make_tuple("host=localhost,db2 sslmode=disable", "db2", "disable"),
        std::make_tuple("hostaddr=10.1.2.3", "10.1.2.3", "prefer"),
        std::make_tuple("postgresql://u:pw-secret@db.internal/x", "db.internal", "prefer")}) {
    const absl::Status status = check(insecure);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << insecure;
    EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("host \"", host, "\"")));
    EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("sslmode is \"", mode, "\"")));
    EXPECT_THAT(status.message(), HasSubstr("allow_insecure"));
    EXPECT_THAT(status.message(), Not(HasSubstr("pw-secret")));
  }
  // Like libpq, settings the DSN leaves out come from the environment.
  setenv("PGHOST", "db.internal", 1);
  EXPECT_EQ(check("dbname=x").code(), absl::StatusCode::kFailedPrecondition);
  setenv("PGSSLMODE", "verify-full", 1);
  EXPECT_TRUE(check("dbname=x").ok());
  EXPECT_EQ(check("dbname=x sslmode=require").code(), absl::StatusCode::kFailedPrecondition);
  unsetenv("PGHOST");
  unsetenv("PGSSLMODE");
}

TEST(PostgresPoolOptionsTest, MaxConnectionsMustBePositive) {
  PostgresPoolOptions options;
  options.dsn = "host=/tmp dbname=x";
  options.max_connections = 0;
  EXPECT_EQ(PostgresPool::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace secret_resolver
