// SidecarProcess: the real `secret-resolver` binary, started for a test in a state directory
// of its own (KEK, fingerprint key, development signing key and JWKS, SQLite store, config),
// listening on a temporary Unix socket. Its stderr (the JSON log) is captured to a file so tests
// can check what it logged.
//
// Thread safety: use from one test thread.
#ifndef SECRET_RESOLVER_TESTS_INTEGRATION_SIDECAR_PROCESS_H_
#define SECRET_RESOLVER_TESTS_INTEGRATION_SIDECAR_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "resolver/crypto/key_ring.h"

namespace secret_resolver {
namespace testing {

inline constexpr char kIssuer[] = "https://identity.test";
inline constexpr char kAudience[] = "secret-resolver";
inline constexpr char kKid[] = "test-key-1";

// The files a sidecar needs, created in a fresh directory.
struct SidecarState {
  std::string dir;
  std::string socket_path;  // in a short /tmp directory: socket paths are limited to 107 bytes
  std::string kek_file;
  std::string fingerprint_key_file;
  std::string signing_key_file;
  std::string jwks_file;
  std::string store_path;
  std::string config_file;
  KeyRing key_ring;

  // Creates the directory and every file; `extra_yaml` is appended to the generated config
  // (top-level sections, e.g. "limits:\n  per_stack_rate: 1\n"). The store is the SQLite file
  // `store_path`, or the PostgreSQL database `postgres_dsn` when that is not empty.
  // `listen_yaml` is added to the `listen:` section, next to the Unix socket (keys indented by
  // two spaces, e.g. "  tcp_address: 127.0.0.1:0\n"). `store_yaml`, when not empty, is the
  // whole `store:` section instead of the SQLite or PostgreSQL one with its KEK (keys indented
  // by two spaces, e.g. "  upstream:\n    address: ...\n").
  static absl::StatusOr<SidecarState> Create(const std::string& extra_yaml = "",
                                             const std::string& postgres_dsn = "",
                                             const std::string& listen_yaml = "",
                                             const std::string& store_yaml = "");

  // A token for `stack` and `service`, signed by the state's development key.
  std::string Token(const std::string& stack, const std::string& service,
                    absl::Duration ttl = absl::Hours(1)) const;
};

class SidecarProcess {
 public:
  // Starts the binary (runfiles path `server/secret-resolver`) on `state` and waits until its
  // socket accepts connections and it has logged its "serving" line (10 s at most).
  static absl::StatusOr<std::unique_ptr<SidecarProcess>> Start(const SidecarState& state);

  // Sends SIGTERM if still running and waits.
  ~SidecarProcess();

  // Sends SIGTERM and returns the exit status (as from waitpid), or -1 on a timeout (then the
  // process is killed).
  int Terminate(absl::Duration timeout = absl::Seconds(20));

  // Everything the process wrote to stderr so far.
  std::string Log() const;

  // A field of the "serving" line the sidecar logs once it listens, e.g. "tcp" or "health"
  // (with the bound port when the configured one was 0); empty if absent.
  std::string ServingAddress(const std::string& field) const;

  std::string target() const { return "unix:" + socket_path_; }

  // The process id while it runs; -1 once it has exited and been reaped.
  pid_t pid() const { return pid_; }

 private:
  SidecarProcess(pid_t pid, std::string socket_path, std::string log_path)
      : pid_(pid), socket_path_(std::move(socket_path)), log_path_(std::move(log_path)) {}

  pid_t pid_;
  std::string socket_path_;
  std::string log_path_;
};

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_INTEGRATION_SIDECAR_PROCESS_H_
