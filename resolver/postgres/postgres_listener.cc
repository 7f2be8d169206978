#include "resolver/postgres/postgres_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace secret_resolver {
namespace {

constexpr size_t kMaxChannelBytes = 63;  // NAMEDATALEN - 1

struct PGconnCloser {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};

absl::Status CheckPositive(absl::string_view name, absl::Duration value) {
  if (value > absl::ZeroDuration()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("PostgreSQL listener: ", name, " must be positive, got ",
                   absl::FormatDuration(value)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresListener>> PostgresListener::Start(
    PostgresListenerOptions options) {
  if (options.channel.empty() || options.channel.size() > kMaxChannelBytes ||
      options.channel.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PostgreSQL listener: channel must be 1 to ", kMaxChannelBytes,
        " bytes without NUL, got ", options.channel.size(), " bytes"));
  }
  if (!options.on_notification) {
    return absl::InvalidArgumentError("PostgreSQL listener: on_notification is required");
  }
  for (const auto& [name, value] :
       {std::make_pair("connect_timeout", options.connect_timeout),
        std::make_pair("initial_backoff", options.initial_backoff),
        std::make_pair("max_backoff", options.max_backoff),
        std::make_pair("heartbeat_timeout", options.heartbeat_timeout)}) {
    absl::Status status = CheckPositive(name, value);
    if (!status.ok()) return status;
  }
  if (options.heartbeat_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("PostgreSQL listener: heartbeat_interval is negative");
  }
  absl::StatusOr<PostgresDsn> dsn = PostgresDsn::Parse(options.dsn);
  if (!dsn.ok()) return dsn.status();
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(
        absl::StrCat("PostgreSQL listener: cannot create its pipe: ", strerror(errno)));
  }
  std::unique_ptr<PostgresListener> listener(
      new PostgresListener(std::move(options), *std::move(dsn), wake[0], wake[1]));
  listener->thread_ = std::thread([raw = listener.get()] { raw->Run(); });
  return listener;
}

PostgresListener::PostgresListener(PostgresListenerOptions options, PostgresDsn dsn,
                                   int wake_read, int wake_write)
    : options_(std::move(options)),
      dsn_(std::move(dsn)),
      wake_read_(wake_read),
      wake_write_(wake_write) {}

PostgresListener::~PostgresListener() {
  Stop();
  close(wake_read_);
  close(wake_write_);
}

void PostgresListener::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  listening_changed_.notify_all();
  const char byte = 1;
  while (write(wake_write_, &byte, 1) < 0 && errno == EINTR) {
  }
  // Joining from a callback would wait for itself; the thread then ends on its own.
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

absl::Status PostgresListener::WaitUntilListening(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  while (!listening_ && !stopped_) {
    const absl::Duration remaining = deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(
          "PostgreSQL listener (", dsn_.description(), "): LISTEN ", options_.channel,
          " not in effect before the deadline"));
    }
    listening_changed_.wait_for(lock,
                                absl::ToChronoNanoseconds(std::min(remaining, absl::Hours(1))));
  }
  if (stopped_) return absl::CancelledError("PostgreSQL listener stopped");
  return absl::OkStatus();
}

bool PostgresListener::listening() const {
  std::lock_guard<std::mutex> lock(mu_);
  return listening_;
}

int64_t PostgresListener::listen_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return listen_count_;
}

void PostgresListener::SetListening(bool listening) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    listening_ = listening;
    if (listening) ++listen_count_;
  }
  listening_changed_.notify_all();
}

void PostgresListener::Run() {
  absl::Duration backoff = options_.initial_backoff;
  while (true) {
    bool listened = false;
    const absl::Status ended = RunSession(&listened);
    SetListening(false);
    if (absl::IsCancelled(ended)) return;
    if (options_.on_connection_error) options_.on_connection_error(ended);
    if (listened) backoff = options_.initial_backoff;
    // Sleeps for `backoff` unless Stop() writes to the pipe first.
    struct pollfd wake = {wake_read_, POLLIN, 0};
    int ready;
    do {
      ready = poll(&wake, 1,
                   static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(backoff), 1 << 30)));
    } while (ready < 0 && errno == EINTR);
    if (ready > 0) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status PostgresListener::Lost(absl::string_view what, const PGconn* conn) const {
  return absl::UnavailableError(absl::StrCat("PostgreSQL listener (", dsn_.description(), "): ",
                                             what, ": ", PostgresErrorText(dsn_, conn)));
}

absl::Status PostgresListener::Flush(PGconn* conn, absl::Time deadline) {
  while (true) {
    const int pending = PQflush(conn);
    if (pending == 0) return absl::OkStatus();
    if (pending < 0) return Lost("sending to the server failed", conn);
    absl::Status ready = WaitForSocket(PQsocket(conn), POLLOUT, deadline, wake_read_);
    if (!ready.ok()) return ready;
  }
}

absl::Status PostgresListener::RunCommand(PGconn* conn, const std::string& sql,
                                          absl::Time deadline) {
  if (PQsendQuery(conn, sql.c_str()) == 0) return Lost("sending a command failed", conn);
  absl::Status status = Flush(conn, deadline);
  if (!status.ok()) return status;
  while (PQisBusy(conn)) {
    status = WaitForSocket(PQsocket(conn), POLLIN, deadline, wake_read_);
    if (!status.ok()) return status;
    if (PQconsumeInput(conn) == 0) return Lost("connection lost", conn);
  }
  absl::Status result_status;
  while (PGresult* result = PQgetResult(conn)) {
    if (PQresultStatus(result) != PGRES_COMMAND_OK && result_status.ok()) {
      result_status = absl::UnavailableError(
          absl::StrCat("PostgreSQL listener (", dsn_.description(), "): ", sql, " failed: ",
                       dsn_.Redact(PQresultErrorMessage(result))));
    }
    PQclear(result);
  }
  return result_status;
}

void PostgresListener::DeliverNotifications(PGconn* conn) {
  while (PGnotify* notify = PQnotifies(conn)) {
    if (options_.channel == notify->relname) {
      options_.on_notification(notify->extra != nullptr ? notify->extra : "");
    }
    PQfreemem(notify);
  }
}

absl::Status PostgresListener::RunSession(bool* listened) {
  const absl::Time connect_deadline = absl::Now() + options_.connect_timeout;
  absl::StatusOr<PGconn*> connected =
      ConnectPostgres(dsn_, connect_deadline, options_.application_name, wake_read_);
  if (!connected.ok()) return connected.status();
  std::unique_ptr<PGconn, PGconnCloser> owned(*connected);
  PGconn* conn = owned.get();
  if (PQsetnonblocking(conn, 1) != 0) return Lost("cannot make the connection non-blocking", conn);

  char* quoted = PQescapeIdentifier(conn, options_.channel.data(), options_.channel.size());
  if (quoted == nullptr) return Lost("cannot quote the channel name", conn);
  const std::string listen = absl::StrCat("LISTEN ", quoted);
  PQfreemem(quoted);
  absl::Status status = RunCommand(conn, listen, connect_deadline);
  if (!status.ok()) return status;

  *listened = true;
  if (options_.on_resync) options_.on_resync();
  SetListening(true);
  DeliverNotifications(conn);

  const bool heartbeats = options_.heartbeat_interval > absl::ZeroDuration();
  absl::Time next_heartbeat =
      heartbeats ? absl::Now() + options_.heartbeat_interval : absl::InfiniteFuture();
  absl::Time heartbeat_answer_due = absl::InfiniteFuture();
  while (true) {
    status = WaitForSocket(PQsocket(conn), POLLIN, std::min(next_heartbeat, heartbeat_answer_due),
                           wake_read_);
    if (absl::IsDeadlineExceeded(status)) {
      if (absl::Now() >= heartbeat_answer_due) {
        return absl::UnavailableError(absl::StrCat(
            "PostgreSQL listener (", dsn_.description(), "): no answer to a heartbeat within ",
            absl::FormatDuration(options_.heartbeat_timeout)));
      }
      heartbeat_answer_due = absl::Now() + options_.heartbeat_timeout;
      next_heartbeat = absl::InfiniteFuture();
      if (PQsendQuery(conn, "") == 0) return Lost("sending a heartbeat failed", conn);
      status = Flush(conn, heartbeat_answer_due);
      if (!status.ok()) return status;
      continue;
    }
    if (!status.ok()) return status;
    if (PQconsumeInput(conn) == 0) return Lost("connection lost", conn);
    // Results of the heartbeat's empty query, if one is outstanding.
    bool answered = false;
    while (!PQisBusy(conn)) {
      PGresult* result = PQgetResult(conn);
      if (result == nullptr) {
        answered = true;
        break;
      }
      PQclear(result);
    }
    if (answered && heartbeat_answer_due != absl::InfiniteFuture()) {
      heartbeat_answer_due = absl::InfiniteFuture();
    }
    DeliverNotifications(conn);
    if (PQstatus(conn) == CONNECTION_BAD) return Lost("connection lost", conn);
    // Any traffic proves the connection alive: the next heartbeat is due an interval from now.
    if (heartbeats && heartbeat_answer_due == absl::InfiniteFuture()) {
      next_heartbeat = absl::Now() + options_.heartbeat_interval;
    }
  }
}

}  // namespace secret_resolver
