// Runs the real secretctl binary (//tools/secretctl:secretctl, a data dependency of the test) as
// a child process: arguments, standard input and extra environment in; exit status, standard
// output and standard error out. For tests only.
//
// Thread safety: RunSecretctl may be called from one thread at a time (it forks).
#ifndef SECRET_RESOLVER_TESTS_TOOLS_SECRETCTL_SECRETCTL_RUNNER_H_
#define SECRET_RESOLVER_TESTS_TOOLS_SECRETCTL_SECRETCTL_RUNNER_H_

#include <map>
#include <string>
#include <vector>

namespace secret_resolver {
namespace testing {

struct SecretctlRun {
  std::vector<std::string> args;
  std::string stdin_data;  // written to the child's standard input, which is then closed
  // Set in the child's environment on top of the test's own (USER is "tester" unless set here).
  std::map<std::string, std::string> env;
  // Standard output goes to this file instead of a pipe (e.g. /dev/full) when not empty.
  std::string stdout_path;
};

struct SecretctlResult {
  int exit_code = -1;  // -1: it did not exit normally (a signal, or it could not be run)
  std::string out;
  std::string err;

  // "exit N; stderr: ..." for assertion messages, with every string in `hide` replaced by
  // "[HIDDEN]" so that a test value never reaches the test log even when a check fails.
  std::string Describe(const std::vector<std::string>& hide = {}) const;
};

// The path of the secretctl binary in the test's runfiles.
std::string SecretctlPath();

// Runs secretctl and waits for it (bounded: it is killed after 60 seconds).
SecretctlResult RunSecretctl(const SecretctlRun& run);

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_TOOLS_SECRETCTL_SECRETCTL_RUNNER_H_
