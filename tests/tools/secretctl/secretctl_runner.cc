#include "tests/tools/secretctl/secretctl_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

extern char** environ;

namespace secret_resolver {
namespace testing {

std::string SecretctlResult::Describe(const std::vector<std::string>& hide) const {
  std::string err_text = err;
  for (const std::string& h : hide) {
    if (!h.empty()) absl::StrReplaceAll({{h, "[HIDDEN]"}}, &err_text);
  }
  return absl::StrCat("exit ", exit_code, "; stderr: ", err_text);
}

std::string SecretctlPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir == nullptr ? "." : srcdir, "/",
                      workspace == nullptr ? "secret_resolver" : workspace,
                      "/tools/secretctl/secretctl");
}

SecretctlResult RunSecretctl(const SecretctlRun& run) {
  SecretctlResult result;
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  const std::string path = SecretctlPath();
  std::vector<std::string> argv_text = {path};
  argv_text.insert(argv_text.end(), run.args.begin(), run.args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::map<std::string, std::string> env_map = {{"USER", "tester"}};
  for (char** e = environ; *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr) continue;
    std::string key(*e, eq - *e);
    if (key == "USER") continue;
    env_map.emplace(std::move(key), eq + 1);
  }
  for (const auto& [key, value] : run.env) env_map[key] = value;
  std::vector<std::string> env_text;
  for (const auto& [key, value] : env_map) env_text.push_back(absl::StrCat(key, "=", value));
  std::vector<char*> envp;
  for (std::string& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);

  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 ||
      pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.err = "pipe failed";
    return result;
  }
  int stdout_file = -1;
  if (!run.stdout_path.empty()) {
    stdout_file = open(run.stdout_path.c_str(), O_WRONLY | O_CLOEXEC);
    if (stdout_file < 0) {
      result.err = absl::StrCat("cannot open ", run.stdout_path);
      return result;
    }
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in_pipe[0], STDIN_FILENO);
    dup2(stdout_file >= 0 ? stdout_file : out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    execve(path.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (stdout_file >= 0) close(stdout_file);
  if (pid < 0) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(err_pipe[0]);
    result.err = "fork failed";
    return result;
  }

  // Feed stdin and drain both outputs together, so that no pipe fills up and blocks the child.
  signal(SIGPIPE, SIG_IGN);  // the child may exit without reading all of its input
  int in_fd = in_pipe[1];
  int out_fd = out_pipe[0];
  int err_fd = err_pipe[0];
  size_t written = 0;
  if (run.stdin_data.empty()) {
    close(in_fd);
    in_fd = -1;
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  bool timed_out = false;
  while (in_fd >= 0 || out_fd >= 0 || err_fd >= 0) {
    pollfd fds[3] = {{in_fd, POLLOUT, 0}, {out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    const int64_t wait_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (wait_ms <= 0) {
      timed_out = true;
      break;
    }
    const int ready = poll(fds, 3, static_cast<int>(wait_ms));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    if (in_fd >= 0 && (fds[0].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      const ssize_t n =
          write(in_fd, run.stdin_data.data() + written, run.stdin_data.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 && errno != EINTR && errno != EAGAIN) written = run.stdin_data.size();
      if (written >= run.stdin_data.size()) {
        close(in_fd);
        in_fd = -1;
      }
    }
    struct Stream {
      int& fd;
      std::string& text;
      short revents;
    };
    for (Stream s :
         {Stream{out_fd, result.out, fds[1].revents}, Stream{err_fd, result.err, fds[2].revents}}) {
      if (s.fd < 0 || (s.revents & (POLLIN | POLLERR | POLLHUP)) == 0) continue;
      char buffer[4096];
      const ssize_t n = read(s.fd, buffer, sizeof(buffer));
      if (n > 0) {
        s.text.append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(s.fd);
        s.fd = -1;
      }
    }
  }
  if (timed_out) kill(pid, SIGKILL);
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) close(fd);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (timed_out) absl::StrAppend(&result.err, "\n[killed after 60 s]");
  return result;
}

}  // namespace testing
}  // namespace secret_resolver
