// What the fault cases inject and observe besides calls (tests/faults/load_driver.h): the admin
// port's answers and metrics, a process tree frozen with SIGSTOP, a PostgreSQL postmaster killed
// and restarted, a process's resident memory.
//
// Thread safety: HttpGet, MetricSum and RssKib may be called from any thread; FrozenProcessTree
// and KillAndRestart from the test's main thread.
#ifndef SECRET_RESOLVER_TESTS_FAULTS_FAULT_ENV_H_
#define SECRET_RESOLVER_TESTS_FAULTS_FAULT_ENV_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/testing/postgres_server.h"

namespace secret_resolver {
namespace testing {

struct HttpAnswer {
  int status = 0;
  std::string body;
};

// GET http://`host_port``path` (host_port as the sidecar logs it, e.g. "127.0.0.1:41234"),
// giving up after `timeout` (connect and read). Errors: UNAVAILABLE (no connection, or no answer
// within the timeout).
absl::StatusOr<HttpAnswer> HttpGet(const std::string& host_port, const std::string& path,
                                   absl::Duration timeout);

// The sum of the samples in Prometheus text `metrics` of metric `name` whose labels include
// every one of `labels` (each written as in the text, e.g. `code="OK"`); 0 when none.
double MetricSum(absl::string_view metrics, absl::string_view name,
                 const std::vector<std::string>& labels = {});

// The resident set size of `pid` in KiB (VmRSS), or -1 when it cannot be read.
int64_t RssKib(pid_t pid);

// `root` and every process descendant from it, found in /proc.
std::vector<pid_t> ProcessTree(pid_t root);

// Freezes a process tree with SIGSTOP (a store that hangs: connections stay open, nothing
// answers) and thaws it with SIGCONT when destroyed, also when the test failed.
class FrozenProcessTree {
 public:
  explicit FrozenProcessTree(pid_t root);
  ~FrozenProcessTree();
  FrozenProcessTree(const FrozenProcessTree&) = delete;
  FrozenProcessTree& operator=(const FrozenProcessTree&) = delete;

  // Sends SIGCONT now (the destructor then does nothing).
  void Thaw();

 private:
  std::vector<pid_t> pids_;
};

// SIGKILLs the postmaster of `server` (its backends notice and exit), reaps it, waits `down`,
// then starts it again on the same data, retrying while the old backends still hold its shared
// memory (10 s at most). Errors: as PostgresServer::Restart.
absl::Status KillAndRestart(PostgresServer& server, absl::Duration down);

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_FAULTS_FAULT_ENV_H_
