// The configuration of a scale run (tools/dev scale, tests/scale/scale_test.cc): how many
// sidecars, in which mode, with which small per-process limits, and the YAML each process gets.
//
// Modes (issue 19 item 3):
// - direct: every sidecar on PostgreSQL itself (store.postgres), as the postgres overlay
//   deploys them: replicas x (pool + 1 listener) connections.
// - tiered: 1-2 central sidecars on PostgreSQL serve TLS with client certificates
//   (listen.tls.require_client_cert) and the change stream (change_stream.allowed_clients);
//   every other sidecar uses store.upstream (address, ca_file, cert_file, key_file,
//   server_name, change_stream: true) against one of them, and none connects to PostgreSQL.
//   The names are the ones fixed for issue 19 (store.upstream, change_stream); a binary that
//   does not know them refuses the config, and the harness says so (CheckConfig) instead of
//   running anything else in their place.
//
// Every process is kept small, since 50 of them share this machine's 2 cores: a pool of
// `pool` connections, `worker_threads` workers and `fetch_threads` store fetches at once, no
// audit lines (a line per resolved reference from every sidecar would measure the disk). The
// cache's refresh-ahead window is a tenth of `ttl` (jitter a twentieth).
//
// Thread safety: pure functions, except MakeScaleFiles and CheckConfig, which write files and
// run processes; call those from one thread.
#ifndef SECRET_RESOLVER_TESTS_SCALE_SCALE_CONFIG_H_
#define SECRET_RESOLVER_TESTS_SCALE_SCALE_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/integration/sidecar_process.h"

namespace secret_resolver {
namespace testing {

enum class ScaleMode { kDirect, kTiered };

// "direct" or "tiered".
absl::string_view ScaleModeName(ScaleMode mode);
// Errors: INVALID_ARGUMENT naming the text when it is neither.
absl::StatusOr<ScaleMode> ParseScaleMode(absl::string_view text);

struct ScaleOptions {
  ScaleMode mode = ScaleMode::kDirect;
  int sidecars = 50;     // the sidecars the load is spread over
  int tiers = 2;         // central sidecars (tiered mode only), 1 or 2
  int pool = 2;          // store.postgres.max_connections of each process on PostgreSQL
  int worker_threads = 2;  // limits.worker_threads
  int fetch_threads = 2;   // limits.max_concurrent_fetches
  absl::Duration ttl = absl::Seconds(30);  // cache.ttl, short enough that misses recur
};

// Errors: INVALID_ARGUMENT naming the option out of range.
absl::Status ValidateScaleOptions(const ScaleOptions& options);

// The files every process of a run shares: KEK, fingerprint key, JWKS and the development
// signing key that mints the load's tokens (those of a SidecarState, whose directory holds
// everything else too), and in tiered mode a throwaway PKI: a CA, the central sidecars' server
// certificate (localhost, 127.0.0.1) and the client certificate the others present (CN and SAN
// DNS kEdgeIdentity).
struct ScaleFiles {
  SidecarState keys;
  std::string ca_file;           // tiered only
  std::string server_cert_file;  // tiered only
  std::string server_key_file;   // tiered only
  std::string client_cert_file;  // tiered only
  std::string client_key_file;   // tiered only
};

// The mTLS identity of the non-central sidecars, allowed on the change stream.
inline constexpr char kEdgeIdentity[] = "scale-edge";

// Creates the shared files of `mode` in a fresh directory. The PKI is made with the openssl
// command. Errors: as SidecarState::Create; FAILED_PRECONDITION with openssl's output when it
// fails.
absl::StatusOr<ScaleFiles> MakeScaleFiles(ScaleMode mode);

// Where one process listens: its Unix socket, and whether it also serves TLS on a loopback port
// chosen by the kernel (the central sidecars).
struct ProcessListen {
  std::string unix_socket;
  bool tls_tcp = false;
};

// A sidecar on PostgreSQL (direct mode, and the central sidecars of tiered mode, which also
// serve TLS with client certificates and the change stream to kEdgeIdentity).
std::string PostgresSidecarYaml(const ScaleOptions& options, const ScaleFiles& files,
                                const ProcessListen& listen, const std::string& dsn);

// A sidecar whose store is the central sidecar at `upstream_address` ("127.0.0.1:PORT").
std::string UpstreamSidecarYaml(const ScaleOptions& options, const ScaleFiles& files,
                                const ProcessListen& listen, const std::string& upstream_address);

// Runs `binary --check-config` on `config_file`. Errors: FAILED_PRECONDITION with what the
// binary printed when it refuses the config.
absl::Status CheckConfig(const std::string& binary, const std::string& config_file);

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_SCALE_SCALE_CONFIG_H_
