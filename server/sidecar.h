// Sidecar: the composition root. Builds every part of the running sidecar from a validated
// Config (store, keys, cache, resolver, token verifier, services, listeners, admin server),
// serves, and shuts down in order.
//
// Thread safety: Start, then Shutdown, from one thread (main). The parts it owns are
// thread-safe; the gRPC server and the admin server run on threads of their own.
#ifndef SECRET_RESOLVER_SERVER_SIDECAR_H_
#define SECRET_RESOLVER_SERVER_SIDECAR_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "secretresolver/config/v1/config.pb.h"

namespace secret_resolver {

class JsonLogger;

class Sidecar {
 public:
  // Builds and starts everything `config` (defaults applied, validated) describes. Errors name
  // the part that failed: FAILED_PRECONDITION (keys, files, a socket in use), UNAVAILABLE (the
  // store), INVALID_ARGUMENT (a bad value).
  static absl::StatusOr<std::unique_ptr<Sidecar>> Start(
      const secretresolver::config::v1::Config& config);

  ~Sidecar();

  // Stops accepting calls: calls that arrive, and those still queued for a worker, are answered
  // UNAVAILABLE (which clients retry), never CANCELLED; calls being worked on finish within
  // `grace`. Wipes the cache and removes the Unix socket. Returns true when every worker
  // finished; false when some were still blocked at the end of the grace (a hung store): their
  // calls were answered UNAVAILABLE and the workers left running, so the process must exit
  // without further clean-up (main uses _Exit), and the destructor leaks the parts they use.
  // Idempotent (later calls return the first's result).
  bool Shutdown(absl::Duration grace);

  // Re-reads the JWKS file or refetches the JWKS URL now (SIGHUP). A failure is logged as a
  // warning and the previous keys stay. (TLS certificates are re-read on their own interval,
  // listen.tls.reload_interval.)
  void Reload();

  // The sidecar's logger, shared so that it outlives the Sidecar for whoever holds it (main's
  // shutdown watchdog flushes it before _Exit).
  std::shared_ptr<JsonLogger> logger() const;

  // Where the gRPC services listen: "unix:/path" and/or "host:port" (the bound port when the
  // configured one was 0). And the admin server's and the health listener's "host:port", or
  // empty.
  const std::string& unix_target() const;
  const std::string& tcp_target() const;
  const std::string& admin_target() const;
  const std::string& health_target() const;

 private:
  struct Parts;
  explicit Sidecar(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_SIDECAR_H_
