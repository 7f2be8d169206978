// AdminServer: the loopback-only HTTP server for operators and Kubernetes probes.
//   GET /metrics  the registry in Prometheus text format 0.0.4
//   GET /healthz  200 "ok" while the process serves at all (liveness)
//   GET /readyz   200 "ok" when the last readiness check passed (store and keys reachable), then
//                 one line per readiness note (trouble that does not stop serving); else 503
//                 with the check's message (readiness)
// Anything else is 404. It serves on threads of its own (cpp-httplib, four workers), so a slow
// scrape never touches a gRPC thread. No endpoint waits on anything slow: the readiness check
// runs on a thread of its own, and /readyz answers its last result, so a hung store cannot hold
// the workers that /metrics and /healthz need.
//
// Thread safety: Start, port/address and Stop from any one thread; the handlers run on the
// server's threads and call the registry concurrently, which must therefore be thread-safe. The
// readiness check runs on one thread at a time.
#ifndef SECRET_RESOLVER_SERVER_ADMIN_SERVER_H_
#define SECRET_RESOLVER_SERVER_ADMIN_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "resolver/clock.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace secret_resolver {

struct AdminServerOptions {
  // "host:port", loopback (127.0.0.0/8, [::1] or localhost) unless allow_non_loopback; port 0
  // picks a free port.
  std::string address = "127.0.0.1:9464";
  bool allow_non_loopback = false;
  // Rendered on /metrics. Not owned; must outlive the server. Null: /metrics is 404.
  const MetricsRegistry* metrics = nullptr;
  // OK means ready. Run once in Start, then on a thread of its own `readiness_interval` after
  // each run ends; /readyz answers the last result without waiting. While a run has lasted
  // `readiness_timeout` or more (by `clock`), /readyz answers 503 saying so. Its message is
  // shown to the caller, so it must not contain secrets. Null: always ready.
  std::function<absl::Status()> readiness;
  // Trouble that does not stop serving (e.g. a lost change feed), one line each after "ok" in
  // a 200 /readyz body. Called on every /readyz, so it must not block; no secrets. Null: none.
  std::function<std::vector<std::string>()> readiness_notes;
  absl::Duration readiness_interval = absl::Seconds(2);
  absl::Duration readiness_timeout = absl::Seconds(5);
  // Not owned; never null.
  Clock* clock = Clock::Real();
};

class AdminServer {
 public:
  // Runs the readiness check once, binds `options.address` and starts serving. Returns INVALID_ARGUMENT when the address is
  // malformed, or not loopback without allow_non_loopback, UNAVAILABLE when it cannot be bound (e.g. the port is in use).
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(AdminServerOptions options);

  // Stops (see Stop).
  ~AdminServer();

  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Stops accepting, closes the listening socket and joins the server thread and the readiness
  // thread. A request in flight finishes first; an idle client connection delays this by at most
  // two seconds (the read timeout); a readiness check in progress is waited for. Idempotent.
  void Stop();

  // The bound port (the kernel's choice when port 0 was asked for).
  int port() const { return port_; }
  // "host:port" with the bound port; IPv6 hosts in brackets.
  const std::string& address() const { return address_; }

 private:
  // The readiness check's last result and its thread's state; defined in the .cc file.
  struct Readiness;

  AdminServer(AdminServerOptions options, std::unique_ptr<httplib::Server> server,
              std::unique_ptr<Readiness> readiness);

  AdminServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<Readiness> readiness_;
  std::thread readiness_thread_;
  std::thread thread_;
  std::atomic<bool> finished_{false};  // the server thread has left its accept loop
  int port_ = 0;
  std::string address_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_ADMIN_SERVER_H_
