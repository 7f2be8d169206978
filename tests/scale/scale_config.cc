#include "tests/scale/scale_config.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace secret_resolver {
namespace testing {
namespace {

// The lines every process shares: keys, auth, redaction, small limits, admin on a free port.
std::string CommonYaml(const ScaleOptions& options, const ScaleFiles& files) {
  return absl::StrCat(
      "auth:\n  issuer: ", kIssuer, "\n  audience: ", kAudience, "\n  jwks_file: ",
      files.keys.jwks_file, "\n",
      "redaction:\n  fingerprint_key_file: ", files.keys.fingerprint_key_file, "\n",
      // Refresh-ahead scaled to the TTL: the defaults (30s + 15s jitter) are for the default
      // 300s TTL, and a window as long as the TTL would make every hit a store fetch.
      "cache:\n  ttl: ", absl::ToInt64Milliseconds(options.ttl),
      "ms\n  refresh_ahead: ", absl::ToInt64Milliseconds(options.ttl / 10),
      "ms\n  refresh_jitter: ", absl::ToInt64Milliseconds(options.ttl / 20), "ms\n",
      "limits:\n  worker_threads: ", options.worker_threads,
      "\n  max_concurrent_fetches: ", options.fetch_threads, "\n",
      "admin:\n  enabled: true\n  address: 127.0.0.1:0\n",
      "logging:\n  audit: false\n");
}

std::string ListenYaml(const ProcessListen& listen, const ScaleFiles& files) {
  std::string yaml = absl::StrCat("listen:\n  unix_socket: ", listen.unix_socket, "\n");
  if (listen.tls_tcp) {
    absl::StrAppend(&yaml, "  tcp_address: 127.0.0.1:0\n  tls:\n    cert_file: ",
                    files.server_cert_file, "\n    key_file: ", files.server_key_file,
                    "\n    client_ca_file: ", files.ca_file,
                    "\n    require_client_cert: true\n");
  }
  return yaml;
}

absl::Status RunShell(const std::string& script, const std::string& log) {
  const std::string command = absl::StrCat("/bin/sh -c '", script, "' >'", log, "' 2>&1");
  if (std::system(command.c_str()) == 0) return absl::OkStatus();
  std::ifstream file(log);
  return absl::FailedPreconditionError(absl::StrCat(
      "making the scale run's certificates failed: ",
      std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>())));
}

}  // namespace

absl::string_view ScaleModeName(ScaleMode mode) {
  return mode == ScaleMode::kDirect ? "direct" : "tiered";
}

absl::StatusOr<ScaleMode> ParseScaleMode(absl::string_view text) {
  if (text == "direct") return ScaleMode::kDirect;
  if (text == "tiered") return ScaleMode::kTiered;
  return absl::InvalidArgumentError(
      absl::StrCat("mode: \"", text, "\" is neither \"direct\" nor \"tiered\""));
}

absl::Status ValidateScaleOptions(const ScaleOptions& options) {
  if (options.sidecars < 1 || options.sidecars > 500) {
    return absl::InvalidArgumentError(
        absl::StrCat("sidecars: must be 1-500, got ", options.sidecars));
  }
  if (options.mode == ScaleMode::kTiered && (options.tiers < 1 || options.tiers > 2)) {
    return absl::InvalidArgumentError(absl::StrCat("tiers: must be 1 or 2, got ", options.tiers));
  }
  if (options.pool < 1 || options.worker_threads < 1 || options.fetch_threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool, worker_threads and fetch_threads must be at least 1, got ", options.pool, ", ",
        options.worker_threads, ", ", options.fetch_threads));
  }
  if (options.ttl < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttl: must be at least 1s, got ", absl::FormatDuration(options.ttl)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ScaleFiles> MakeScaleFiles(ScaleMode mode) {
  absl::StatusOr<SidecarState> keys = SidecarState::Create();
  if (!keys.ok()) return keys.status();
  ScaleFiles files;
  files.keys = *std::move(keys);
  if (mode == ScaleMode::kDirect) return files;
  const std::string& dir = files.keys.dir;
  files.ca_file = dir + "/ca.pem";
  files.server_cert_file = dir + "/server.pem";
  files.server_key_file = dir + "/server.key";
  files.client_cert_file = dir + "/client.pem";
  files.client_key_file = dir + "/client.key";
  const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
  const std::string script = absl::StrCat(
      "set -e; cd ", dir, "; umask 077;",
      "openssl req -x509 ", key, " -keyout ca.key -out ca.pem -days 2 -subj /CN=scale-ca",
      " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign;",
      "openssl req ", key, " -keyout server.key -out server.csr -subj /CN=localhost;",
      "printf \"subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n",
      "extendedKeyUsage=serverAuth\\n\" > server.ext;",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial",
      " -out server.pem -days 2 -extfile server.ext;",
      "openssl req ", key, " -keyout client.key -out client.csr -subj /CN=", kEdgeIdentity, ";",
      "printf \"subjectAltName=DNS:", kEdgeIdentity, "\\nbasicConstraints=CA:FALSE\\n",
      "extendedKeyUsage=clientAuth\\n\" > client.ext;",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial",
      " -out client.pem -days 2 -extfile client.ext");
  if (absl::Status made = RunShell(script, dir + "/openssl.log"); !made.ok()) return made;
  return files;
}

std::string PostgresSidecarYaml(const ScaleOptions& options, const ScaleFiles& files,
                                const ProcessListen& listen, const std::string& dsn) {
  std::string yaml = absl::StrCat(
      ListenYaml(listen, files), "store:\n  postgres:\n    dsn: \"", dsn,
      "\"\n    max_connections: ", options.pool, "\n  kek:\n    file: ", files.keys.kek_file,
      "\n", CommonYaml(options, files));
  if (listen.tls_tcp) {
    absl::StrAppend(&yaml, "change_stream:\n  allowed_clients: [", kEdgeIdentity, "]\n");
  }
  return yaml;
}

std::string UpstreamSidecarYaml(const ScaleOptions& options, const ScaleFiles& files,
                                const ProcessListen& listen,
                                const std::string& upstream_address) {
  // No store.kek: the upstream holds the ciphertexts and their keys.
  return absl::StrCat(ListenYaml(listen, files), "store:\n  upstream:\n    address: ",
                      upstream_address, "\n    ca_file: ", files.ca_file,
                      "\n    cert_file: ", files.client_cert_file,
                      "\n    key_file: ", files.client_key_file,
                      "\n    server_name: localhost\n    change_stream: true\n",
                      CommonYaml(options, files));
}

absl::Status CheckConfig(const std::string& binary, const std::string& config_file) {
  const std::string command =
      absl::StrCat(binary, " --check-config --config=", config_file, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::FailedPreconditionError("cannot run " + binary);
  std::string output;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0;) output.append(buffer, n);
  const int status = pclose(pipe);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(binary, " refuses ", config_file, ": ", output));
}

}  // namespace testing
}  // namespace secret_resolver
