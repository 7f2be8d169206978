#include "server/admin_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/host_port.h"

namespace secret_resolver {
namespace {

constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kTextContentType[] = "text/plain; charset=utf-8";

}  // namespace

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(AdminServerOptions options) {
  absl::StatusOr<HostPort> host_port = ParseHostPort(options.address);
  if (!host_port.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin address: ", host_port.status().message()));
  }
  if (!options.allow_non_loopback && !IsLoopbackHost(host_port->host)) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin address \"", options.address,
                     "\" is not a loopback address (127.0.0.0/8, ::1 or localhost)"));
  }

  auto server = std::make_unique<httplib::Server>();
  // Probes and one scraper: two workers are plenty, and short timeouts keep Stop quick even
  // when a client holds a connection open.
  server->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server->set_read_timeout(2, 0);
  server->set_write_timeout(2, 0);
  server->set_keep_alive_timeout(2);
  server->set_payload_max_length(4096);
  // httplib's default adds SO_REUSEPORT, which would let a second process bind the same port
  // and take half the scrapes; SO_REUSEADDR alone still allows a quick restart.
  server->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  const MetricsRegistry* metrics = options.metrics;
  if (metrics != nullptr) {
    server->Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics->Render(), kMetricsContentType);
    });
  }
  server->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", kTextContentType);
  });
  std::function<absl::Status()> readiness = options.readiness;
  server->Get("/readyz", [readiness](const httplib::Request&, httplib::Response& res) {
    const absl::Status status = readiness ? readiness() : absl::OkStatus();
    if (status.ok()) {
      res.set_content("ok\n", kTextContentType);
    } else {
      res.status = 503;
      res.set_content(absl::StrCat("not ready: ", status.ToString(), "\n"), kTextContentType);
    }
  });

  int port = host_port->port;
  if (port == 0) {
    port = server->bind_to_any_port(host_port->host);
    if (port < 0) {
      return absl::UnavailableError(absl::StrCat("admin server: cannot bind ", options.address));
    }
  } else if (!server->bind_to_port(host_port->host, port)) {
    return absl::UnavailableError(
        absl::StrCat("admin server: cannot bind ", options.address, " (is the port in use?)"));
  }

  std::unique_ptr<AdminServer> admin(new AdminServer(std::move(options), std::move(server)));
  admin->port_ = port;
  admin->address_ = absl::StrContains(host_port->host, ":")
                        ? absl::StrCat("[", host_port->host, "]:", port)
                        : absl::StrCat(host_port->host, ":", port);
  // The socket is already listening, so connections made before the thread reaches accept()
  // wait in the backlog.
  AdminServer* self = admin.get();
  admin->thread_ = std::thread([self] {
    self->server_->listen_after_bind();
    self->finished_.store(true);
  });
  return admin;
}

AdminServer::AdminServer(AdminServerOptions options, std::unique_ptr<httplib::Server> server)
    : options_(std::move(options)), server_(std::move(server)) {}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::Stop() {
  if (!thread_.joinable()) return;
  // httplib's stop() does nothing before the thread has entered its accept loop (and must not
  // be called twice once it has), so wait for the loop to start, then stop it once.
  while (!finished_.load()) {
    if (server_->is_running()) {
      server_->stop();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  thread_.join();
}

}  // namespace secret_resolver
