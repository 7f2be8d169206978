// PostgresListener: receives PostgreSQL NOTIFY payloads on one channel, surviving lost
// connections.
//
// Start() launches one thread that owns a dedicated connection (not taken from a pool: a
// listening connection must stay open and idle). The thread connects, runs LISTEN on the
// channel, calls on_resync, then hands every notification's payload to on_notification as it
// arrives. When the connection is lost (server restart, network failure, or no answer to a
// heartbeat query within heartbeat_timeout) it reports the error to on_connection_error, waits
// with exponential backoff (initial_backoff doubling up to max_backoff, reset after a
// successful LISTEN), reconnects, LISTENs again and calls on_resync again.
//
// on_resync runs every time LISTEN takes effect on a new connection, the first included:
// notifications sent while no LISTEN was in effect are lost, so whoever caches what the channel
// announces must treat everything cached before on_resync as possibly stale (the secret cache
// revalidates). WaitUntilListening() returns only after on_resync has returned.
//
// Thread safety: the callbacks run on the listener's thread, one at a time, never
// concurrently with each other; they must not block for long (notifications queue up in the
// meantime) and must not call Stop() or destroy the listener. The public methods are safe to
// call from any other thread. Stop() interrupts any wait (connecting, backoff, waiting for
// notifications) at once through a self-pipe; it does not time out.
#ifndef SECRET_RESOLVER_RESOLVER_POSTGRES_POSTGRES_LISTENER_H_
#define SECRET_RESOLVER_RESOLVER_POSTGRES_POSTGRES_LISTENER_H_

#include <postgresql/libpq-fe.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/postgres/postgres_connection.h"

namespace secret_resolver {

struct PostgresListenerOptions {
  // libpq connection string, as for PostgresPool.
  std::string dsn;
  // The channel to LISTEN on, used verbatim (quoted, so case-sensitive): the sender must use
  // the same name, e.g. pg_notify('secret_changes', payload). 1 to 63 bytes.
  std::string channel;

  // Called with each notification's payload. Required.
  std::function<void(absl::string_view payload)> on_notification;
  // Called after each LISTEN takes effect, before any notification from that connection.
  // Optional.
  std::function<void()> on_resync;
  // Called when connecting or LISTEN fails and when an established connection is lost, with
  // UNAVAILABLE or DEADLINE_EXCEEDED (the message never contains the password). For logs and
  // metrics; the listener retries by itself. Optional.
  std::function<void(const absl::Status&)> on_connection_error;

  // Bound on connecting plus running LISTEN.
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
  // After this long without traffic the listener sends an empty query; if the answer does not
  // come within heartbeat_timeout the connection is treated as lost. This catches a peer that
  // vanished without closing the TCP connection. Zero disables heartbeats.
  absl::Duration heartbeat_interval = absl::Seconds(30);
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  // Shown in pg_stat_activity unless the DSN sets application_name.
  std::string application_name = "secret-resolver-listener";
};

class PostgresListener {
 public:
  // Validates the options and starts the listener thread; does not wait for the connection
  // (see WaitUntilListening). Errors: INVALID_ARGUMENT (malformed DSN, see PostgresDsn::Parse;
  // empty or over-long channel; no on_notification; a negative or zero backoff or timeout),
  // INTERNAL (the self-pipe could not be created).
  static absl::StatusOr<std::unique_ptr<PostgresListener>> Start(PostgresListenerOptions options);

  // Stop().
  ~PostgresListener();

  PostgresListener(const PostgresListener&) = delete;
  PostgresListener& operator=(const PostgresListener&) = delete;

  // Closes the connection and joins the thread; no callback runs after it returns. Idempotent.
  void Stop();

  // Waits until LISTEN is in effect and on_resync has returned. Returns OK; DEADLINE_EXCEEDED
  // if `deadline` passed first; CANCELLED if the listener was stopped.
  absl::Status WaitUntilListening(absl::Time deadline);

  // Whether LISTEN is in effect right now.
  bool listening() const;

  // How many times LISTEN took effect (1 after the first connection, +1 per reconnection).
  int64_t listen_count() const;

 private:
  PostgresListener(PostgresListenerOptions options, PostgresDsn dsn, int wake_read,
                   int wake_write);

  void Run();
  // One connection's life: connect, LISTEN, deliver until the connection is lost (returns why)
  // or Stop() (returns CANCELLED). Sets *listened once LISTEN took effect.
  absl::Status RunSession(bool* listened);
  absl::Status RunCommand(PGconn* conn, const std::string& sql, absl::Time deadline);
  absl::Status Flush(PGconn* conn, absl::Time deadline);
  void DeliverNotifications(PGconn* conn);
  absl::Status Lost(absl::string_view what, const PGconn* conn) const;
  void SetListening(bool listening);

  const PostgresListenerOptions options_;
  const PostgresDsn dsn_;
  // Stop() writes one byte to wake_write_ and never drains it, so every later poll on
  // wake_read_ returns at once.
  const int wake_read_;
  const int wake_write_;

  mutable std::mutex mu_;
  std::condition_variable listening_changed_;
  bool listening_ = false;   // guarded by mu_
  bool stopped_ = false;     // guarded by mu_
  int64_t listen_count_ = 0;  // guarded by mu_

  std::mutex stop_mu_;  // serializes Stop() calls
  std::thread thread_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_POSTGRES_POSTGRES_LISTENER_H_
