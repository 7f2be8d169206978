#include "tests/integration/sidecar_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tools/secretctl/dev_token.h"

namespace secret_resolver {
namespace testing {
namespace {

absl::Status WriteFile(const std::string& path, const std::string& contents, mode_t mode) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat("cannot create ", path));
  fchmod(fd, mode);
  const bool ok = write(fd, contents.data(), contents.size()) ==
                  static_cast<ssize_t>(contents.size());
  close(fd);
  return ok ? absl::OkStatus() : absl::FailedPreconditionError(absl::StrCat("write ", path));
}

std::string MakeTempDir(const std::string& parent, const std::string& prefix) {
  std::string pattern = absl::StrCat(parent, "/", prefix, "XXXXXX");
  return mkdtemp(pattern.data()) == nullptr ? "" : pattern;
}

bool Accepts(const std::string& socket_path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof(address.sun_path) - 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

}  // namespace

absl::StatusOr<SidecarState> SidecarState::Create(const std::string& extra_yaml,
                                                  const std::string& postgres_dsn,
                                                  const std::string& listen_yaml,
                                                  const std::string& store_yaml) {
  SidecarState state;
  const char* tmp = std::getenv("TEST_TMPDIR");
  state.dir = MakeTempDir(tmp != nullptr ? tmp : "/tmp", "sidecar-");
  const std::string socket_dir = MakeTempDir("/tmp", "sr-");
  if (state.dir.empty() || socket_dir.empty()) {
    return absl::FailedPreconditionError("cannot create temporary directories");
  }
  state.socket_path = socket_dir + "/resolver.sock";
  state.kek_file = state.dir + "/kek";
  state.fingerprint_key_file = state.dir + "/fingerprint.key";
  state.signing_key_file = state.dir + "/dev-signing.pem";
  state.jwks_file = state.dir + "/jwks.json";
  state.store_path = state.dir + "/secrets.db";
  state.config_file = state.dir + "/config.yaml";

  absl::StatusOr<SecretBytes> kek = KeyRing::GenerateKek();
  if (!kek.ok()) return kek.status();
  absl::StatusOr<SecretBytes> entry = KeyRing::FormatEntry("kek-1", *kek);
  if (!entry.ok()) return entry.status();
  if (absl::Status s = WriteFile(state.kek_file, std::string(entry->reveal()), 0600); !s.ok()) {
    return s;
  }
  absl::StatusOr<KeyRing> ring = KeyRing::LoadFromFile(state.kek_file);
  if (!ring.ok()) return ring.status();
  state.key_ring = *std::move(ring);
  // A fixed test key: fingerprints are deterministic across runs.
  if (absl::Status s = WriteFile(state.fingerprint_key_file,
                                 absl::Base64Escape(std::string(32, 'F')) + "\n", 0600);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteDevSigningKey(state.signing_key_file, state.jwks_file, kKid);
      !s.ok()) {
    return s;
  }
  const std::string backend =
      postgres_dsn.empty() ? absl::StrCat("  sqlite:\n    path: ", state.store_path, "\n")
                           : absl::StrCat("  postgres:\n    dsn: \"", postgres_dsn, "\"\n");
  const std::string config = absl::StrCat(
      "listen:\n  unix_socket: ", state.socket_path, "\n", listen_yaml,
      "store:\n",
      store_yaml.empty() ? absl::StrCat(backend, "  kek:\n    file: ", state.kek_file, "\n")
                         : store_yaml,
      "auth:\n  issuer: ", kIssuer, "\n  audience: ", kAudience, "\n  jwks_file: ",
      state.jwks_file, "\n",
      "redaction:\n  fingerprint_key_file: ", state.fingerprint_key_file, "\n",
      // No admin server unless the test configures one (ports are the test's to choose).
      extra_yaml.find("admin:") == std::string::npos ? "admin:\n  enabled: false\n" : "",
      extra_yaml);
  if (absl::Status s = WriteFile(state.config_file, config, 0644); !s.ok()) return s;
  return state;
}

std::string SidecarState::Token(const std::string& stack, const std::string& service,
                                absl::Duration ttl) const {
  DevTokenClaims claims;
  claims.kid = kKid;
  claims.issuer = kIssuer;
  claims.audience = kAudience;
  claims.stack = stack;
  claims.service_identity = service;
  claims.now = absl::Now();
  claims.ttl = ttl;
  absl::StatusOr<std::string> token = MintDevToken(signing_key_file, claims);
  return token.ok() ? *token : "";
}

absl::StatusOr<std::unique_ptr<SidecarProcess>> SidecarProcess::Start(
    const SidecarState& state) {
  const std::string log_path = state.dir + "/sidecar.log";
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(log, STDERR_FILENO);
    dup2(log, STDOUT_FILENO);
    const std::string config_flag = "--config=" + state.config_file;
    execl("server/secret-resolver", "secret-resolver", config_flag.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  auto process =
      absl::WrapUnique(new SidecarProcess(pid, state.socket_path, log_path));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      process->pid_ = -1;
      return absl::FailedPreconditionError(
          absl::StrCat("the sidecar exited at start-up: ", process->Log()));
    }
    if (Accepts(state.socket_path) &&
        process->Log().find("\"msg\":\"serving\"") != std::string::npos) {
      return process;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("the sidecar did not listen within 10 s: ", process->Log()));
}

SidecarProcess::~SidecarProcess() {
  if (pid_ > 0) Terminate();
}

int SidecarProcess::Terminate(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  while (absl::Now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

std::string SidecarProcess::Log() const {
  std::ifstream file(log_path_);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

std::string SidecarProcess::ServingAddress(const std::string& field) const {
  const std::string log = Log();
  const size_t line = log.find("\"msg\":\"serving\"");
  if (line == std::string::npos) return "";
  const std::string key = absl::StrCat("\"", field, "\":\"");
  const size_t start = log.find(key, line);
  if (start == std::string::npos) return "";
  const size_t value = start + key.size();
  return log.substr(value, log.find('"', value) - value);
}

}  // namespace testing
}  // namespace secret_resolver
