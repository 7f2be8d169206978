// Tests of the PostgresServer fixture: it starts a usable server, restarts it on the same
// socket, stops it on destruction, and the server does not outlive a test process that is
// killed (the binary re-runs itself as that process, selected by kChildModeEnv).
#include "tests/testing/postgres_server.h"

#include <fcntl.h>
#include <postgresql/libpq-fe.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

extern char** environ;

namespace secret_resolver {
namespace {

constexpr char kChildModeEnv[] = "POSTGRES_SERVER_TEST_CHILD";

// Runs `sql` and returns the first column of the first row ("" when there is none); a failed
// query fails the test.
std::string QueryValue(const std::string& dsn, const std::string& sql) {
  PGconn* conn = PQconnectdb(dsn.c_str());
  EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PGresult* result = PQexec(conn, sql.c_str());
  const ExecStatusType status = PQresultStatus(result);
  EXPECT_TRUE(status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
      << sql << ": " << PQresultErrorMessage(result);
  std::string value;
  if (status == PGRES_TUPLES_OK && PQntuples(result) > 0) value = PQgetvalue(result, 0, 0);
  PQclear(result);
  PQfinish(conn);
  return value;
}

bool Accepts(const std::string& dsn) { return PQping(dsn.c_str()) == PQPING_OK; }

TEST(PostgresServerTest, StartsAServerOnlyOnAUnixSocket) {
  absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  const PostgresServer& pg = **server;
  printf("PostgresServer started in %s\n", absl::FormatDuration(pg.startup_time()).c_str());

  EXPECT_EQ(QueryValue(pg.dsn(), "SELECT current_database()"), "secret_resolver_test");
  EXPECT_EQ(QueryValue(pg.dsn(), "SHOW listen_addresses"), "");
  EXPECT_EQ(QueryValue(pg.dsn(), "SHOW fsync"), "off");
  EXPECT_EQ(QueryValue(pg.dsn(), "SHOW server_version_num").substr(0, 2), "15");
  EXPECT_EQ(QueryValue(pg.DsnForDatabase("postgres"), "SELECT current_database()"), "postgres");
  EXPECT_LT(pg.socket_dir().size(), 80u);
}

TEST(PostgresServerTest, RestartKeepsDataAndSocket) {
  absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  PostgresServer& pg = **server;
  QueryValue(pg.dsn(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')");

  ASSERT_TRUE(pg.Stop().ok());
  EXPECT_FALSE(pg.running());
  EXPECT_FALSE(Accepts(pg.dsn()));
  EXPECT_TRUE(pg.Stop().ok()) << "stopping twice is fine";

  ASSERT_TRUE(pg.Restart().ok());
  EXPECT_TRUE(pg.running());
  EXPECT_EQ(QueryValue(pg.dsn(), "SELECT v FROM kept"), "still here");
  EXPECT_EQ(pg.Restart().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PostgresServerTest, DestructorStopsTheServerAndRemovesItsDirectories) {
  absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string dsn = (*server)->dsn();
  const std::string socket_dir = (*server)->socket_dir();
  const std::string data_dir = (*server)->data_dir();
  ASSERT_TRUE(Accepts(dsn));

  server->reset();
  EXPECT_FALSE(Accepts(dsn));
  struct stat info;
  EXPECT_NE(stat(socket_dir.c_str(), &info), 0);
  EXPECT_NE(stat(data_dir.c_str(), &info), 0);
}

TEST(PostgresServerTest, MissingBinariesFailWithAClearMessage) {
  PostgresServerOptions options;
  options.bin_dir = "/nonexistent/postgresql/bin";
  absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(server.status().message().find("/nonexistent/postgresql/bin"),
            absl::string_view::npos);
}

// The child: starts a server, prints "<dsn>\n<data dir>\n<socket dir>\n", then waits to be
// killed without running any destructor.
int RunChild() {
  absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
  if (!server.ok()) {
    fprintf(stderr, "child: %s\n", server.status().ToString().c_str());
    return 1;
  }
  printf("%s\n%s\n%s\n", (*server)->dsn().c_str(), (*server)->data_dir().c_str(),
         (*server)->socket_dir().c_str());
  fflush(stdout);
  while (true) pause();
}

TEST(PostgresServerTest, ServerDoesNotOutliveAKilledTestProcess) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.push_back(*e);
  env_strings.push_back(std::string(kChildModeEnv) + "=1");
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  char self[] = "/proc/self/exe";
  char* argv[] = {self, nullptr};
  pid_t child = -1;
  ASSERT_EQ(posix_spawn(&child, self, &actions, nullptr, argv, envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);

  std::string output;
  char buffer[4096];
  ssize_t n;
  while (std::count(output.begin(), output.end(), '\n') < 3 &&
         (n = read(out[0], buffer, sizeof(buffer))) > 0) {
    output.append(buffer, n);
  }
  close(out[0]);
  std::vector<std::string> lines = absl::StrSplit(output, '\n');
  ASSERT_GE(lines.size(), 3u) << "the child did not start its server; see the log above";
  const std::string& dsn = lines[0];
  ASSERT_TRUE(Accepts(dsn));

  ASSERT_EQ(kill(child, SIGKILL), 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  // The kernel sends the server SIGQUIT (immediate shutdown); allow it a generous bound.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (Accepts(dsn) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(Accepts(dsn)) << "the server outlived the killed test process";

  // The child could not clean up; do it here (its directories are ours to remove).
  const std::string base_dir = lines[1].substr(0, lines[1].rfind('/'));
  for (const std::string& dir : {base_dir, lines[2]}) {
    const std::string command = "rm -rf '" + dir + "'";
    EXPECT_EQ(system(command.c_str()), 0);
  }
}

}  // namespace
}  // namespace secret_resolver

int main(int argc, char** argv) {
  if (getenv(secret_resolver::kChildModeEnv) != nullptr) return secret_resolver::RunChild();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
