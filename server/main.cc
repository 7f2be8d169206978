// secret-resolver: the sidecar's main binary.
//
//   secret-resolver --config=/etc/secret-resolver/config.yaml
//   secret-resolver --config=config.yaml --check-config   (dashes or underscores in flag names)
//
// Flags override the most common settings of the file. SIGTERM or SIGINT: drain and exit 0
// within shutdown_grace (server/sidecar.h, Sidecar::Shutdown);
// SIGHUP: reload the JWKS and certificates.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "resolver/process_hygiene.h"
#include "server/config.h"
#include "server/json_log.h"
#include "server/sidecar.h"

ABSL_FLAG(std::string, config, "", "Path of the YAML configuration file (required).");
ABSL_FLAG(bool, check_config, false, "Load and validate the configuration, then exit.");
ABSL_FLAG(std::string, unix_socket, "", "Overrides listen.unix_socket.");
ABSL_FLAG(std::string, tcp_address, "", "Overrides listen.tcp_address (host:port).");
ABSL_FLAG(std::string, admin_address, "", "Overrides admin.address (loopback host:port).");
ABSL_FLAG(std::string, sqlite_path, "", "Overrides the store with an embedded SQLite file.");

namespace secret_resolver {
namespace {

using secretresolver::config::v1::Config;

// With shutdown_grace 0s the drain still gets this long to answer the calls in flight.
constexpr absl::Duration kLeastShutdownTime = absl::Milliseconds(200);
// The end of the grace the watchdog keeps for writing the logger's buffered lines before _Exit.
constexpr absl::Duration kLastFlushTime = absl::Milliseconds(50);

absl::StatusOr<Config> LoadConfig() {
  const std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) return absl::InvalidArgumentError("--config is required");
  absl::StatusOr<Config> config = LoadConfigFile(path);
  if (!config.ok()) return config.status();
  if (const std::string v = absl::GetFlag(FLAGS_unix_socket); !v.empty()) {
    config->mutable_listen()->set_unix_socket(v);
  }
  if (const std::string v = absl::GetFlag(FLAGS_tcp_address); !v.empty()) {
    config->mutable_listen()->set_tcp_address(v);
  }
  if (const std::string v = absl::GetFlag(FLAGS_admin_address); !v.empty()) {
    config->mutable_admin()->set_address(v);
  }
  if (const std::string v = absl::GetFlag(FLAGS_sqlite_path); !v.empty()) {
    config->mutable_store()->mutable_sqlite()->set_path(v);
  }
  ApplyDefaults(&*config);
  if (absl::Status s = ValidateConfig(*config); !s.ok()) return s;
  return config;
}

int Main() {
  // This function's own lines (start, failure, stop), written at once whatever logging.level
  // says, and escaped as the sidecar's logger escapes (a path or a configuration value may hold
  // any byte).
  JsonLogger lifecycle(stderr);
  const auto fail = [&lifecycle](absl::string_view what, const absl::Status& status) {
    lifecycle.Error(what, {LogField("error", status)});
  };
  absl::StatusOr<Config> config = LoadConfig();
  if (!config.ok()) {
    fail("invalid configuration", config.status());
    return 2;
  }
  if (absl::GetFlag(FLAGS_check_config)) {
    std::printf("configuration OK\n");
    return 0;
  }
  if (absl::Status s = HardenProcess(); !s.ok()) {
    fail("cannot harden the process", s);
    return 1;
  }
  // Block the signals before any thread starts, so every thread inherits the mask and only
  // the sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<Sidecar>> sidecar = Sidecar::Start(*config);
  if (!sidecar.ok()) {
    fail("cannot start", sidecar.status());
    return 1;
  }
  lifecycle.Info("serving", {LogField("unix", (*sidecar)->unix_target()),
                             LogField("tcp", (*sidecar)->tcp_target()),
                             LogField("admin", (*sidecar)->admin_target()),
                             LogField("health", (*sidecar)->health_target())});
  for (;;) {
    int signal = 0;
    if (sigwait(&signals, &signal) != 0) continue;
    if (signal == SIGHUP) {
      (*sidecar)->Reload();
      continue;
    }
    break;
  }
  const absl::Duration grace = absl::Seconds(config->shutdown_grace().seconds()) +
                               absl::Nanoseconds(config->shutdown_grace().nanos());
  // Whatever still holds the exit when the grace is over (a store call that hangs under a
  // thread being joined, a readiness check) does not hold it longer.
  // It holds the logger, which therefore outlives the Sidecar and is safe to flush from here.
  std::thread([grace, logger = (*sidecar)->logger()] {
    absl::SleepFor(std::max(grace, kLeastShutdownTime) - kLastFlushTime);
    logger->FlushFor(kLastFlushTime);
    std::fprintf(stderr,
                 "{\"level\":\"warning\",\"msg\":\"shutdown_grace is over; exiting before "
                 "the clean-up finished\"}\n");
    std::fflush(stderr);
    std::_Exit(0);
  }).detach();
  const bool clean = (*sidecar)->Shutdown(grace);
  if (!clean) {
    // Workers are still blocked (a hung store) in parts that must not be destroyed under them:
    // exit now, within the grace, without running destructors.
    std::fprintf(stderr,
                 "{\"level\":\"warning\",\"msg\":\"stopped with calls still blocked after the "
                 "grace; they were answered UNAVAILABLE\"}\n");
    std::fflush(stderr);
    std::_Exit(0);
  }
  // The watchdog's reference keeps the logger past the Sidecar, so its destructor (which writes
  // what is buffered) does not run at exit: flush what the parts logged as they went.
  const std::shared_ptr<JsonLogger> logger = (*sidecar)->logger();
  sidecar->reset();
  logger->Flush();
  lifecycle.Info("stopped");
  return 0;
}

}  // namespace
}  // namespace secret_resolver

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("The secret-resolver sidecar. Usage: secret-resolver --config=FILE");
  // Abseil flag names use underscores; accept the dashed spelling (--check-config) as well.
  std::vector<std::string> args(argv, argv + argc);
  for (std::string& arg : args) {
    if (arg.rfind("--", 0) != 0) continue;
    const size_t end = std::min(arg.find('='), arg.size());
    std::replace(arg.begin() + 2, arg.begin() + end, '-', '_');
  }
  std::vector<char*> normalized;
  for (std::string& arg : args) normalized.push_back(arg.data());
  absl::ParseCommandLine(argc, normalized.data());
  // gRPC locks absl::Mutex on every call; the library's lock-order graph is a debugging aid that
  // costs time on each lock and is never wanted in production.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return secret_resolver::Main();
}
