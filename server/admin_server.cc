#include "server/admin_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/host_port.h"

namespace secret_resolver {
namespace {

constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kTextContentType[] = "text/plain; charset=utf-8";

}  // namespace

struct AdminServer::Readiness {
  std::function<absl::Status()> check;  // never null
  absl::Duration interval;
  absl::Duration timeout;
  Clock* clock;

  std::mutex mu;
  std::condition_variable stop_requested;
  bool stopping = false;
  absl::Status last;                     // the last run's result
  std::optional<absl::Time> running_since;  // set while a run is in progress

  // Runs the check and keeps its result.
  void RunOnce() {
    {
      std::lock_guard<std::mutex> lock(mu);
      running_since = clock->Now();
    }
    absl::Status status = check();
    std::lock_guard<std::mutex> lock(mu);
    last = std::move(status);
    running_since.reset();
  }

  // Runs the check `interval` after each run ends, until Stop.
  void Loop() {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu);
        if (stop_requested.wait_for(lock, absl::ToChronoNanoseconds(interval),
                                    [this] { return stopping; })) {
          return;
        }
      }
      RunOnce();
    }
  }

  // What /readyz answers: the last result, unless the run in progress has taken too long.
  absl::Status Current() {
    std::lock_guard<std::mutex> lock(mu);
    if (running_since.has_value() && clock->Now() - *running_since >= timeout) {
      return absl::UnavailableError(absl::StrCat(
          "the readiness check has not finished for ", absl::FormatDuration(timeout),
          " or more (is the store or the key source not answering?)"));
    }
    return last;
  }
};

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
  // Probes and one scraper. A worker serves a connection for as long as it is kept alive, so
  // four workers let the kubelet's probes and a scraper each hold one and leave one spare;
  // short timeouts keep Stop quick even when a client holds a connection open.
  server->new_task_queue = [] { return new httplib::ThreadPool(4); };
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
  std::unique_ptr<Readiness> readiness;
  if (options.readiness) {
    readiness = std::make_unique<Readiness>();
    readiness->check = options.readiness;
    readiness->interval = options.readiness_interval;
    readiness->timeout = options.readiness_timeout;
    readiness->clock = options.clock;
    readiness->RunOnce();  // so the first /readyz has a result to answer
  }
  Readiness* current = readiness.get();
  server->Get("/readyz", [current, notes = options.readiness_notes](const httplib::Request&,
                                                                    httplib::Response& res) {
    const absl::Status status = current != nullptr ? current->Current() : absl::OkStatus();
    if (status.ok()) {
      std::string body = "ok\n";
      if (notes) {
        for (const std::string& note : notes()) absl::StrAppend(&body, "note: ", note, "\n");
      }
      res.set_content(body, kTextContentType);
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

  std::unique_ptr<AdminServer> admin(
      new AdminServer(std::move(options), std::move(server), std::move(readiness)));
  if (current != nullptr) admin->readiness_thread_ = std::thread([current] { current->Loop(); });
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

AdminServer::AdminServer(AdminServerOptions options, std::unique_ptr<httplib::Server> server,
                         std::unique_ptr<Readiness> readiness)
    : options_(std::move(options)),
      server_(std::move(server)),
      readiness_(std::move(readiness)) {}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::Stop() {
  if (thread_.joinable()) {
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
  if (readiness_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(readiness_->mu);
      readiness_->stopping = true;
    }
    readiness_->stop_requested.notify_all();
    readiness_thread_.join();
  }
}

}  // namespace secret_resolver
