#include "tests/faults/fault_env.h"

#include <dirent.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "httplib.h"

namespace secret_resolver {
namespace testing {

absl::StatusOr<HttpAnswer> HttpGet(const std::string& host_port, const std::string& path,
                                   absl::Duration timeout) {
  const size_t colon = host_port.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(host_port.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("not host:port: ", host_port));
  }
  httplib::Client client(host_port.substr(0, colon), port);
  const int64_t micros = absl::ToInt64Microseconds(timeout);
  client.set_connection_timeout(micros / 1000000, micros % 1000000);
  client.set_read_timeout(micros / 1000000, micros % 1000000);
  httplib::Result result = client.Get(path.c_str());
  if (!result) {
    return absl::UnavailableError(
        absl::StrCat("GET ", path, ": ", httplib::to_string(result.error())));
  }
  return HttpAnswer{result->status, result->body};
}

double MetricSum(absl::string_view metrics, absl::string_view name,
                 const std::vector<std::string>& labels) {
  double sum = 0;
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (line.empty() || line[0] == '#' || !absl::StartsWith(line, name)) continue;
    const absl::string_view rest = line.substr(name.size());
    if (rest.empty() || (rest[0] != '{' && rest[0] != ' ')) continue;  // a longer name
    bool match = true;
    for (const std::string& label : labels) match = match && absl::StrContains(rest, label);
    if (!match) continue;
    double value = 0;
    if (absl::SimpleAtod(rest.substr(rest.rfind(' ') + 1), &value)) sum += value;
  }
  return sum;
}

int64_t RssKib(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (!absl::StartsWith(line, "VmRSS:")) continue;
    int64_t kib = -1;
    std::string number(absl::StripAsciiWhitespace(line.substr(6)));
    number = number.substr(0, number.find(' '));
    return absl::SimpleAtoi(number, &kib) ? kib : -1;
  }
  return -1;
}

std::vector<pid_t> ProcessTree(pid_t root) {
  // Parent of every process, from /proc/<pid>/stat's fourth field.
  std::multimap<pid_t, pid_t> children;
  if (DIR* proc = opendir("/proc")) {
    while (dirent* entry = readdir(proc)) {
      pid_t pid = 0;
      if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
      std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
      std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
      const size_t paren = text.rfind(')');  // the command may hold spaces and parentheses
      if (paren == std::string::npos) continue;
      std::istringstream fields(text.substr(paren + 1));
      std::string state;
      pid_t parent = 0;
      if (fields >> state >> parent) children.emplace(parent, pid);
    }
    closedir(proc);
  }
  std::vector<pid_t> tree = {root};
  for (size_t i = 0; i < tree.size(); ++i) {
    auto [begin, end] = children.equal_range(tree[i]);
    for (auto it = begin; it != end; ++it) tree.push_back(it->second);
  }
  return tree;
}

FrozenProcessTree::FrozenProcessTree(pid_t root) : pids_(ProcessTree(root)) {
  for (pid_t pid : pids_) kill(pid, SIGSTOP);
}

FrozenProcessTree::~FrozenProcessTree() { Thaw(); }

void FrozenProcessTree::Thaw() {
  for (pid_t pid : pids_) kill(pid, SIGCONT);
  pids_.clear();
}

absl::Status KillAndRestart(PostgresServer& server, absl::Duration down) {
  if (server.pid() > 0) kill(server.pid(), SIGKILL);
  if (absl::Status stopped = server.Stop(); !stopped.ok()) return stopped;  // reaps it
  absl::SleepFor(down);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (true) {
    absl::Status restarted = server.Restart();
    if (restarted.ok() || absl::Now() >= deadline) return restarted;
    absl::SleepFor(absl::Milliseconds(100));
  }
}

}  // namespace testing
}  // namespace secret_resolver
