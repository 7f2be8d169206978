#include "tests/scale/scale_cluster.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace secret_resolver {
namespace testing {
namespace {

// The runfiles path of the binary SidecarProcess starts.
constexpr char kBinary[] = "server/secret-resolver";

// Socket paths are limited to 107 bytes: they go in the short /tmp directory of the keys.
std::string SocketPath(const ScaleFiles& files, const std::string& name) {
  return absl::StrCat(std::filesystem::path(files.keys.socket_path).parent_path().string(), "/",
                      name, ".sock");
}

// A process's own directory (config, log) and socket, beside the shared files.
absl::StatusOr<SidecarState> ProcessState(const ScaleFiles& files, const std::string& name) {
  // The shared files' paths; the key ring stays with the harness (SidecarProcess needs none).
  SidecarState state;
  state.kek_file = files.keys.kek_file;
  state.fingerprint_key_file = files.keys.fingerprint_key_file;
  state.signing_key_file = files.keys.signing_key_file;
  state.jwks_file = files.keys.jwks_file;
  state.dir = absl::StrCat(files.keys.dir, "/", name);
  state.socket_path = SocketPath(files, name);
  state.config_file = state.dir + "/config.yaml";
  if (mkdir(state.dir.c_str(), 0700) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create ", state.dir));
  }
  return state;
}

absl::Status WriteConfig(const SidecarState& state, const std::string& yaml) {
  std::ofstream out(state.config_file, std::ios::trunc);
  out << yaml;
  out.close();
  if (!out) return absl::FailedPreconditionError(absl::StrCat("cannot write ", state.config_file));
  return absl::OkStatus();
}

// Writes `yaml` for a process named `name`, checks it with the binary when `check`, and starts it.
absl::StatusOr<std::unique_ptr<SidecarProcess>> StartOne(const ScaleFiles& files,
                                                         const std::string& name,
                                                         const std::string& yaml, bool check) {
  absl::StatusOr<SidecarState> state = ProcessState(files, name);
  if (!state.ok()) return state.status();
  if (absl::Status written = WriteConfig(*state, yaml); !written.ok()) return written;
  if (check) {
    if (absl::Status checked = CheckConfig(kBinary, state->config_file); !checked.ok()) {
      return checked;
    }
  }
  absl::StatusOr<std::unique_ptr<SidecarProcess>> process = SidecarProcess::Start(*state);
  if (!process.ok()) {
    return absl::Status(process.status().code(),
                        absl::StrCat(name, ": ", process.status().message()));
  }
  return process;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ScaleCluster>> ScaleCluster::Start(const ScaleOptions& options,
                                                                  const ScaleFiles& files,
                                                                  const std::string& dsn) {
  if (absl::Status valid = ValidateScaleOptions(options); !valid.ok()) return valid;
  auto cluster = absl::WrapUnique(new ScaleCluster());
  std::vector<std::string> upstreams;
  if (options.mode == ScaleMode::kTiered) {
    for (int i = 0; i < options.tiers; ++i) {
      const std::string name = absl::StrCat("tier-", i);
      ProcessListen listen;
      listen.tls_tcp = true;
      listen.unix_socket = SocketPath(files, name);
      absl::StatusOr<std::unique_ptr<SidecarProcess>> tier =
          StartOne(files, name, PostgresSidecarYaml(options, files, listen, dsn), i == 0);
      if (!tier.ok()) return tier.status();
      upstreams.push_back((*tier)->ServingAddress("tcp"));
      cluster->tiers_.push_back(*std::move(tier));
    }
  }
  for (int i = 0; i < options.sidecars; ++i) {
    const std::string name = absl::StrCat("sidecar-", i);
    ProcessListen listen;
    listen.unix_socket = SocketPath(files, name);
    const std::string yaml =
        options.mode == ScaleMode::kDirect
            ? PostgresSidecarYaml(options, files, listen, dsn)
            : UpstreamSidecarYaml(options, files, listen, upstreams[i % upstreams.size()]);
    absl::StatusOr<std::unique_ptr<SidecarProcess>> sidecar = StartOne(files, name, yaml, i == 0);
    if (!sidecar.ok()) return sidecar.status();
    cluster->sidecars_.push_back(*std::move(sidecar));
  }
  return cluster;
}

ScaleCluster::~ScaleCluster() { Stop(); }

int ScaleCluster::Stop() {
  // Everyone drains at once; waiting for each in turn would add up their grace periods.
  for (const auto* group : {&sidecars_, &tiers_}) {
    for (const std::unique_ptr<SidecarProcess>& process : *group) {
      if (process->pid() > 0) kill(process->pid(), SIGTERM);
    }
  }
  int failed = 0;
  for (auto* group : {&sidecars_, &tiers_}) {
    for (std::unique_ptr<SidecarProcess>& process : *group) {
      if (process->pid() <= 0) continue;
      const int status = process->Terminate();
      if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        ++failed;
        const std::string log = process->Log();
        std::cerr << (group == &tiers_ ? "a central" : "a") << " sidecar did not exit 0 on SIGTERM ("
                  << (status == -1 ? std::string("killed after the wait")
                                   : WIFSIGNALED(status)
                                         ? absl::StrCat("signal ", WTERMSIG(status))
                                         : absl::StrCat("exit ", WEXITSTATUS(status)))
                  << "); its log ends:\n"
                  << log.substr(log.size() > 2000 ? log.size() - 2000 : 0) << "\n";
      }
    }
    group->clear();
  }
  return failed;
}

std::vector<std::string> ScaleCluster::Targets() const {
  std::vector<std::string> targets;
  for (const std::unique_ptr<SidecarProcess>& sidecar : sidecars_) {
    targets.push_back(sidecar->target());
  }
  return targets;
}

}  // namespace testing
}  // namespace secret_resolver
