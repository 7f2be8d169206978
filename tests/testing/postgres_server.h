// PostgresServer: a real, throwaway PostgreSQL server for one test binary.
//
// Start() runs `initdb` into a fresh temporary directory, then runs `postgres` as a direct child
// of the test process, listening only on a Unix socket in a short private directory under /tmp
// (listen_addresses='', so no TCP port is ever taken), with fsync off. It waits (bounded) until
// the server accepts connections and creates the test database; dsn() is a libpq conninfo string
// for it (trust authentication as the superuser "postgres", no password).
//
// Running as root. initdb and postgres refuse to run as root, so when the test runs as uid 0 the
// fixture starts them under an unprivileged identity, in this order of preference:
//   1. the `postgres` system user (Debian's postgresql package creates it), via setgroups/
//      setgid/setuid in the forked child; the cluster then lives under /tmp (owned by postgres),
//      because TEST_TMPDIR is usually below /root (mode 0700) where postgres cannot reach.
//      Used when that uid exists in the process's user namespace (plain root, `bazel run`,
//      `--spawn_strategy=standalone`).
//   2. a new user namespace (entered by util-linux's `unshare --user --map-user=...`) mapping
//      the caller's uid 0 to the postgres uid (or `nobody`):
//      Bazel's linux-sandbox runs tests as root inside a user namespace where only uid 0 is
//      mapped, so setuid(postgres) is impossible there; in the nested namespace the server sees
//      itself as an unprivileged user while files stay owned by the caller. The cluster lives
//      under TEST_TMPDIR.
// If neither works, Start() fails with FAILED_PRECONDITION saying why. It never skips.
//
// Lifetime. The destructor stops the server (SIGINT: what `pg_ctl stop -m fast` sends) and
// deletes its directories, also when the test failed. If the test process dies without running
// destructors (crash, SIGKILL, timeout), the server gets SIGQUIT from the kernel
// (PR_SET_PDEATHSIG) and shuts down at once. PR_SET_PDEATHSIG follows the *thread* that forked
// the server, so call Start() and Restart() from a thread that lives as long as the server (the
// test's main thread, SetUpTestSuite). After such a crash an empty socket directory, and in
// mode 1 the cluster directory, may remain under /tmp.
//
// Thread safety: dsn(), socket_dir() and DsnForDatabase() may be called from any thread.
// Stop(), Restart() and destruction must not race with each other.
#ifndef SECRET_RESOLVER_TESTS_TESTING_POSTGRES_SERVER_H_
#define SECRET_RESOLVER_TESTS_TESTING_POSTGRES_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace secret_resolver {

struct PostgresServerOptions {
  // The database created for the test; dsn() connects to it.
  std::string database = "secret_resolver_test";
  // Where initdb and postgres live. Empty: /usr/lib/postgresql/15/bin (Debian), else the
  // directory `pg_config --bindir` prints.
  std::string bin_dir;
  // Bound on waiting for the server to accept connections (sanitizer builds are slow).
  absl::Duration start_timeout = absl::Seconds(60);
  // The server's max_connections setting (the scale harness runs hundreds of pooled clients).
  int max_connections = 64;
};

class PostgresServer {
 public:
  // Initializes a cluster, starts the server, waits until it accepts connections and creates
  // options.database. Errors: FAILED_PRECONDITION (binaries not found, cannot drop root, initdb
  // failed: the message quotes the end of its log), UNAVAILABLE (the server exited or did not
  // accept connections within start_timeout; the message quotes the end of the server log),
  // INTERNAL (a system call failed).
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start(PostgresServerOptions options = {});

  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Stops the server if it runs and removes its directories.
  ~PostgresServer();

  // libpq conninfo for the test database, e.g. "host=/tmp/pgsock-Ab12Cd port=5432
  // user=postgres dbname=secret_resolver_test". Stays valid across Stop()/Restart().
  const std::string& dsn() const { return dsn_; }

  // The same server, another database (which must exist, e.g. "postgres").
  std::string DsnForDatabase(absl::string_view database) const;

  // The directory holding the server's Unix socket.
  const std::string& socket_dir() const { return socket_dir_; }

  // The cluster's data directory.
  const std::string& data_dir() const { return data_dir_; }

  // Fast shutdown (SIGINT), then SIGQUIT and SIGKILL if it takes more than 30 s; waits for the
  // process to exit. The data and the socket directory are kept for Restart(). OK if the server
  // was already stopped. Errors: INTERNAL (waiting for the process failed).
  absl::Status Stop();

  // Starts the stopped server again on the same data directory and socket, and waits until it
  // accepts connections. Errors: FAILED_PRECONDITION (it is running), UNAVAILABLE (as Start()).
  absl::Status Restart();

  // Whether the server process is running.
  bool running() const { return pid_ > 0; }

  // The postmaster's process id, or -1 when stopped.
  pid_t pid() const { return pid_; }

  // How long the last Start()/Restart() took: initdb, server start and database creation.
  absl::Duration startup_time() const { return startup_time_; }

 private:
  // How the children (initdb, postgres) drop root; see the file comment.
  enum class Identity { kSelf, kSystemUser, kUserNamespace };

  PostgresServer() = default;

  absl::Status Initialize();
  absl::Status LaunchAndWait();
  absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv);
  std::string LogTail() const;
  std::string IdentityText() const;

  PostgresServerOptions options_;
  Identity identity_ = Identity::kSelf;
  // The server's ids: in the caller's user namespace (kSystemUser) or inside the new one.
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::string bin_dir_;
  std::string unshare_path_;  // kUserNamespace only
  std::string base_dir_;      // holds data/ and server.log; removed by the destructor
  std::string data_dir_;
  std::string log_path_;
  std::string socket_dir_;  // short (socket paths are limited to 107 bytes); removed too
  std::string dsn_;
  pid_t pid_ = -1;
  absl::Duration startup_time_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_TESTING_POSTGRES_SERVER_H_
