#include "tests/testing/postgres_server.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <postgresql/libpq-fe.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace secret_resolver {
namespace {

constexpr char kDebianBinDir[] = "/usr/lib/postgresql/15/bin";
constexpr char kSuperuser[] = "postgres";
constexpr int kPort = 5432;  // only names the socket file; the socket directory is private
constexpr absl::Duration kInitdbTimeout = absl::Minutes(2);
constexpr absl::Duration kFastShutdownTimeout = absl::Seconds(30);
constexpr absl::Duration kImmediateShutdownTimeout = absl::Seconds(5);

std::string ErrnoText(int err) { return strerror(err); }

absl::Status ErrnoStatus(absl::string_view what, int err) {
  return absl::InternalError(absl::StrCat(what, ": ", ErrnoText(err)));
}

bool IsExecutable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

absl::StatusOr<std::string> FindBinDir(const std::string& configured) {
  std::vector<std::string> candidates;
  if (!configured.empty()) {
    candidates.push_back(configured);
  } else {
    candidates.push_back(kDebianBinDir);
    // pg_config ships with libpq-dev; on Debian it prints the server's bin directory.
    if (FILE* pipe = popen("pg_config --bindir 2>/dev/null", "r")) {
      char line[4096];
      std::string output;
      while (fgets(line, sizeof(line), pipe) != nullptr) output += line;
      pclose(pipe);
      std::string dir(absl::StripAsciiWhitespace(output));
      if (!dir.empty()) candidates.push_back(dir);
    }
  }
  for (const std::string& dir : candidates) {
    if (IsExecutable(dir + "/initdb") && IsExecutable(dir + "/postgres")) return dir;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "PostgreSQL server binaries (initdb, postgres) not found in ",
      absl::StrJoin(candidates, ", "),
      "; install Debian's postgresql package (tools/dev setup does)"));
}

// Whether `id` has a mapping in this process's user namespace (/proc/self/uid_map or gid_map).
// Inside Bazel's linux-sandbox only 0 is mapped.
bool IdIsMapped(const char* map_path, uint32_t id) {
  std::ifstream in(map_path);
  if (!in) return true;  // no user namespaces: every id is valid
  uint64_t inside = 0, outside = 0, count = 0;
  while (in >> inside >> outside >> count) {
    if (id >= inside && id < inside + count) return true;
  }
  return false;
}

absl::StatusOr<std::string> MakeTempDir(const std::string& parent, absl::string_view prefix) {
  std::string templ = absl::StrCat(parent, "/", prefix, "XXXXXX");
  std::vector<char> buffer(templ.begin(), templ.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    return ErrnoStatus(absl::StrCat("mkdtemp ", templ), errno);
  }
  return std::string(buffer.data());
}

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  remove(path);
  return 0;
}

void RemoveTree(const std::string& path) {
  if (path.empty()) return;
  nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

// Waits up to `timeout` for `pid` to exit; returns its wait status, or nullopt on timeout.
absl::StatusOr<std::optional<int>> WaitForExit(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return std::optional<int>(status);
    if (done < 0 && errno != EINTR) return ErrnoStatus(absl::StrCat("waitpid ", pid), errno);
    if (absl::Now() >= deadline) return std::optional<int>();
    absl::SleepFor(absl::Milliseconds(5));
  }
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return absl::StrCat("ended with wait status ", status);
}

// Written by a child that failed before execve: which step, and errno.
struct ChildFailure {
  int step;
  int err;
};

constexpr const char* kChildSteps[] = {"dup2",   "setgroups", "setgid",
                                       "setuid", "prctl(PR_SET_PDEATHSIG)", "execve"};
enum ChildStep { kStepDup2, kStepSetgroups, kStepSetgid, kStepSetuid, kStepPrctl, kStepExec };

[[noreturn]] void FailInChild(int report_fd, ChildStep step) {
  const ChildFailure failure{step, errno};
  (void)!write(report_fd, &failure, sizeof(failure));
  _exit(127);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start(
    PostgresServerOptions options) {
  const absl::Time begin = absl::Now();
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  server->options_ = std::move(options);
  absl::Status status = server->Initialize();
  if (status.ok()) status = server->LaunchAndWait();
  if (!status.ok()) return status;  // the destructor stops the server and removes directories

  // CREATE DATABASE cannot run in a transaction block, so it is a statement of its own.
  PGconn* conn = PQconnectdb(server->DsnForDatabase(kSuperuser).c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    absl::Status error = absl::UnavailableError(
        absl::StrCat("PostgresServer: connecting to create the test database: ",
                     PQerrorMessage(conn)));
    PQfinish(conn);
    return error;
  }
  char* quoted = PQescapeIdentifier(conn, server->options_.database.data(),
                                    server->options_.database.size());
  PGresult* result = PQexec(conn, absl::StrCat("CREATE DATABASE ", quoted).c_str());
  PQfreemem(quoted);
  absl::Status create_status;
  if (PQresultStatus(result) != PGRES_COMMAND_OK) {
    create_status = absl::InternalError(absl::StrCat(
        "PostgresServer: CREATE DATABASE failed: ", PQresultErrorMessage(result)));
  }
  PQclear(result);
  PQfinish(conn);
  if (!create_status.ok()) return create_status;

  server->startup_time_ = absl::Now() - begin;
  return server;
}

PostgresServer::~PostgresServer() {
  (void)Stop();
  RemoveTree(base_dir_);
  RemoveTree(socket_dir_);
}

std::string PostgresServer::DsnForDatabase(absl::string_view database) const {
  // Directory names from mkdtemp and our database names contain no spaces or quotes.
  return absl::StrCat("host=", socket_dir_, " port=", kPort, " user=", kSuperuser,
                      " dbname=", database);
}

absl::Status PostgresServer::Initialize() {
  absl::StatusOr<std::string> bin_dir = FindBinDir(options_.bin_dir);
  if (!bin_dir.ok()) return bin_dir.status();
  bin_dir_ = *std::move(bin_dir);

  // Who the server runs as.
  std::string base_parent;
  if (geteuid() != 0) {
    identity_ = Identity::kSelf;
  } else {
    struct passwd* pw = getpwnam(kSuperuser);
    if (pw != nullptr && IdIsMapped("/proc/self/uid_map", pw->pw_uid) &&
        IdIsMapped("/proc/self/gid_map", pw->pw_gid)) {
      identity_ = Identity::kSystemUser;
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
      base_parent = "/tmp";  // reachable by postgres, unlike TEST_TMPDIR below /root
    } else {
      // initdb looks its own uid up in /etc/passwd, so the uid inside must have an entry.
      if (pw == nullptr) pw = getpwnam("nobody");
      if (pw == nullptr) {
        return absl::FailedPreconditionError(
            "PostgresServer: running as root, and neither a 'postgres' nor a 'nobody' user "
            "exists to run the server as (initdb and postgres refuse to run as root)");
      }
      identity_ = Identity::kUserNamespace;
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
      for (const char* candidate : {"/usr/bin/unshare", "/bin/unshare"}) {
        if (IsExecutable(candidate)) unshare_path_ = candidate;
      }
      if (unshare_path_.empty()) {
        return absl::FailedPreconditionError(
            "PostgresServer: running as root where the postgres user cannot be switched to "
            "(Bazel's sandbox), and util-linux's unshare, needed to drop root, is missing");
      }
    }
  }
  if (base_parent.empty()) {
    const char* tmp = getenv("TEST_TMPDIR");
    if (tmp == nullptr || *tmp == '\0') tmp = getenv("TMPDIR");
    base_parent = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  }

  absl::StatusOr<std::string> base = MakeTempDir(base_parent, "postgres-");
  if (!base.ok()) return base.status();
  base_dir_ = *std::move(base);
  // A Unix socket path is limited to 107 bytes and TEST_TMPDIR is long: the socket gets a short
  // directory of its own.
  absl::StatusOr<std::string> socket_dir = MakeTempDir("/tmp", "pgsock-");
  if (!socket_dir.ok()) return socket_dir.status();
  socket_dir_ = *std::move(socket_dir);
  data_dir_ = base_dir_ + "/data";
  log_path_ = base_dir_ + "/server.log";
  dsn_ = DsnForDatabase(options_.database);

  if (chmod(socket_dir_.c_str(), 0755) != 0) {
    return ErrnoStatus(absl::StrCat("chmod ", socket_dir_), errno);
  }
  if (identity_ == Identity::kSystemUser) {
    for (const std::string& dir : {base_dir_, socket_dir_}) {
      if (chown(dir.c_str(), uid_, gid_) != 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "PostgresServer: cannot give ", dir, " to the postgres user: ", ErrnoText(errno)));
      }
    }
  }

  absl::StatusOr<pid_t> initdb =
      Spawn({bin_dir_ + "/initdb", "--pgdata=" + data_dir_, absl::StrCat("--username=", kSuperuser),
             "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"});
  if (!initdb.ok()) return initdb.status();
  absl::StatusOr<std::optional<int>> exit = WaitForExit(*initdb, kInitdbTimeout);
  if (!exit.ok()) return exit.status();
  if (!exit->has_value()) {
    kill(*initdb, SIGKILL);
    waitpid(*initdb, nullptr, 0);
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgresServer: initdb did not finish within ", absl::FormatDuration(kInitdbTimeout),
        "; its log ends:\n", LogTail()));
  }
  if (!WIFEXITED(**exit) || WEXITSTATUS(**exit) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("PostgresServer: initdb", IdentityText(), " ", DescribeWaitStatus(**exit),
                     "; its log ends:\n", LogTail()));
  }
  return absl::OkStatus();
}

absl::Status PostgresServer::LaunchAndWait() {
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  absl::StatusOr<pid_t> pid = Spawn({
      bin_dir_ + "/postgres",
      "-D", data_dir_,
      "-k", socket_dir_,
      "-p", absl::StrCat(kPort),
      "-c", "listen_addresses=",
      "-c", "unix_socket_permissions=0777",
      // A test database is thrown away: durability is not needed, speed is.
      "-c", "fsync=off",
      "-c", "synchronous_commit=off",
      "-c", "full_page_writes=off",
      "-c", absl::StrCat("max_connections=", options_.max_connections),
      "-c", "shared_buffers=16MB",
      "-c", "huge_pages=off",
      "-c", "logging_collector=off",
  });
  if (!pid.ok()) return pid.status();
  pid_ = *pid;

  const std::string ping_dsn = DsnForDatabase(kSuperuser) + " connect_timeout=5";
  while (true) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(absl::StrCat("PostgresServer: postgres ",
                                                 DescribeWaitStatus(status),
                                                 " while starting; its log ends:\n", LogTail()));
    }
    if (PQping(ping_dsn.c_str()) == PQPING_OK) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      (void)Stop();
      return absl::UnavailableError(absl::StrCat(
          "PostgresServer: postgres did not accept connections within ",
          absl::FormatDuration(options_.start_timeout), "; its log ends:\n", LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::Status PostgresServer::Stop() {
  if (pid_ <= 0) return absl::OkStatus();
  const pid_t pid = pid_;
  pid_ = -1;
  // SIGINT is PostgreSQL's fast shutdown (pg_ctl stop -m fast); SIGQUIT its immediate one.
  const std::pair<int, absl::Duration> steps[] = {{SIGINT, kFastShutdownTimeout},
                                                  {SIGQUIT, kImmediateShutdownTimeout}};
  for (const auto& [signal_number, timeout] : steps) {
    kill(pid, signal_number);
    absl::StatusOr<std::optional<int>> exit = WaitForExit(pid, timeout);
    if (!exit.ok()) return exit.status();
    if (exit->has_value()) return absl::OkStatus();
  }
  kill(pid, SIGKILL);
  if (waitpid(pid, nullptr, 0) < 0) return ErrnoStatus(absl::StrCat("waitpid ", pid), errno);
  return absl::OkStatus();
}

absl::Status PostgresServer::Restart() {
  if (pid_ > 0) return absl::FailedPreconditionError("PostgresServer: already running");
  const absl::Time begin = absl::Now();
  absl::Status status = LaunchAndWait();
  if (status.ok()) startup_time_ = absl::Now() - begin;
  return status;
}

absl::StatusOr<pid_t> PostgresServer::Spawn(const std::vector<std::string>& args) {
  // Everything the child needs is prepared here: between fork and execve a multithreaded
  // process may only make async-signal-safe calls (no allocation).
  std::vector<std::string> command;
  if (identity_ == Identity::kUserNamespace) {
    // util-linux's unshare maps our uid/gid to the server's inside a new user namespace, then
    // execs the program. It is done by a separate program because unshare(CLONE_NEWUSER)
    // refuses a multithreaded caller, and under ThreadSanitizer even the forked child is one.
    command = {unshare_path_, "--user", absl::StrCat("--map-user=", uid_),
               absl::StrCat("--map-group=", gid_), "--"};
  }
  command.insert(command.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (const std::string& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const char* path_env = getenv("PATH");
  const std::vector<std::string> env = {
      absl::StrCat("PATH=", path_env != nullptr ? path_env : "/usr/bin:/bin"),
      "LC_ALL=C", "LANG=C", "TZ=UTC"};
  std::vector<char*> envp;
  for (const std::string& entry : env) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);
  const Identity identity = identity_;
  const uid_t uid = uid_;
  const gid_t gid = gid_;
  const pid_t parent = getpid();

  const int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return ErrnoStatus(absl::StrCat("open ", log_path_), errno);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int report[2];
  if (null_fd < 0 || pipe2(report, O_CLOEXEC) != 0) {
    const int err = errno;
    close(log_fd);
    if (null_fd >= 0) close(null_fd);
    return ErrnoStatus("pipe2", err);
  }

  const pid_t pid = fork();
  if (pid == 0) {
    close(report[0]);
    if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
        dup2(log_fd, STDERR_FILENO) < 0) {
      FailInChild(report[1], kStepDup2);
    }
    // Its own process group: a terminal's Ctrl-C reaches the test, which then stops the server.
    setpgid(0, 0);
    if (identity == Identity::kSystemUser) {
      if (setgroups(1, &gid) != 0) FailInChild(report[1], kStepSetgroups);
      if (setresgid(gid, gid, gid) != 0) FailInChild(report[1], kStepSetgid);
      if (setresuid(uid, uid, uid) != 0) FailInChild(report[1], kStepSetuid);
    }
    // After the credential change, which clears the parent-death signal. It survives execve,
    // and unshare's entering a user namespace it owns.
    if (prctl(PR_SET_PDEATHSIG, SIGQUIT) != 0) FailInChild(report[1], kStepPrctl);
    if (getppid() != parent) _exit(126);  // the test died already
    execve(argv[0], argv.data(), envp.data());
    FailInChild(report[1], kStepExec);
  }
  const int fork_errno = errno;
  close(report[1]);
  close(log_fd);
  close(null_fd);
  if (pid < 0) {
    close(report[0]);
    return ErrnoStatus("fork", fork_errno);
  }
  // EOF (execve closed the pipe) means the program runs; a record means a step failed.
  ChildFailure failure{};
  ssize_t n;
  do {
    n = read(report[0], &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n == static_cast<ssize_t>(sizeof(failure))) {
    waitpid(pid, nullptr, 0);
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgresServer: cannot run ", command[0], IdentityText(), ": ",
        kChildSteps[failure.step], ": ", ErrnoText(failure.err)));
  }
  return pid;
}

std::string PostgresServer::IdentityText() const {
  switch (identity_) {
    case Identity::kSelf:
      return "";
    case Identity::kSystemUser:
      return absl::StrCat(" (as the postgres user, uid ", uid_, ")");
    case Identity::kUserNamespace:
      return absl::StrCat(" (in a user namespace as uid ", uid_,
                          ", since the postgres user is not available to switch to here)");
  }
  return "";
}

std::string PostgresServer::LogTail() const {
  std::ifstream in(log_path_);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string log = buffer.str();
  constexpr size_t kTail = 3000;
  if (log.size() > kTail) log = "..." + log.substr(log.size() - kTail);
  return log.empty() ? "(empty)" : log;
}

}  // namespace secret_resolver
