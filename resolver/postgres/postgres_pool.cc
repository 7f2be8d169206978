#include "resolver/postgres/postgres_pool.h"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace secret_resolver {

struct PostgresPool::State {
  State(PostgresDsn dsn_in, PostgresPoolOptions options_in)
      : dsn(std::move(dsn_in)), options(std::move(options_in)) {}

  const PostgresDsn dsn;
  const PostgresPoolOptions options;

  mutable std::mutex mu;
  std::condition_variable returned;  // an idle connection or a free slot appeared
  std::vector<PGconn*> idle;         // guarded by mu; the back is the most recently returned
  int open = 0;                      // guarded by mu; idle + lent out + being connected
  bool closed = false;               // guarded by mu; the pool was destroyed
};

namespace {

// Whether an idle connection is still usable, without blocking. An idle connection has nothing
// to read; if something arrived, it is the server closing it (an error such as "terminating
// connection due to administrator command", then end of file) or a stray notification.
bool IdleConnectionIsAlive(PGconn* conn) {
  for (int round = 0; round < 4; ++round) {
    if (PQstatus(conn) != CONNECTION_OK) return false;
    struct pollfd fd = {PQsocket(conn), POLLIN, 0};
    const int ready = poll(&fd, 1, 0);
    if (ready == 0) return true;
    if (ready < 0) return false;
    if (PQconsumeInput(conn) == 0) return false;
    while (PGnotify* notify = PQnotifies(conn)) PQfreemem(notify);
  }
  return PQstatus(conn) == CONNECTION_OK;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresPool>> PostgresPool::Create(PostgresPoolOptions options) {
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PostgreSQL pool: max_connections must be at least 1, got ", options.max_connections));
  }
  absl::StatusOr<PostgresDsn> dsn = PostgresDsn::Parse(options.dsn);
  if (!dsn.ok()) return dsn.status();
  return std::unique_ptr<PostgresPool>(
      new PostgresPool(std::make_shared<State>(*std::move(dsn), std::move(options))));
}

PostgresPool::~PostgresPool() {
  std::vector<PGconn*> idle;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->closed = true;
    idle.swap(state_->idle);
    state_->open -= static_cast<int>(idle.size());
  }
  for (PGconn* conn : idle) PQfinish(conn);
}

const std::string& PostgresPool::description() const { return state_->dsn.description(); }

PostgresPool::Stats PostgresPool::stats() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  Stats stats;
  stats.open = state_->open;
  stats.idle = static_cast<int>(state_->idle.size());
  stats.in_use = stats.open - stats.idle;
  return stats;
}

absl::StatusOr<PostgresPool::Lease> PostgresPool::Acquire(absl::Time deadline) {
  State& state = *state_;
  std::unique_lock<std::mutex> lock(state.mu);
  while (true) {
    if (!state.idle.empty()) {
      PGconn* conn = state.idle.back();
      state.idle.pop_back();
      lock.unlock();
      if (IdleConnectionIsAlive(conn)) return Lease(state_, conn);
      // Closed by the server while idle: its slot goes to a fresh connection.
      PQfinish(conn);
      lock.lock();
      --state.open;
      continue;
    }
    if (state.open < state.options.max_connections) {
      ++state.open;  // reserves the slot while connecting without the lock
      lock.unlock();
      absl::StatusOr<PGconn*> conn =
          ConnectPostgres(state.dsn, deadline, state.options.application_name);
      if (conn.ok()) return Lease(state_, *conn);
      lock.lock();
      --state.open;
      lock.unlock();
      state.returned.notify_one();
      return conn.status();
    }
    const absl::Duration remaining = deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "PostgreSQL pool (", state.dsn.description(), "): all ", state.options.max_connections,
          " connections stayed in use until the deadline"));
    }
    // Bounded, so that an infinite deadline does not overflow the clock arithmetic.
    state.returned.wait_for(lock,
                            absl::ToChronoNanoseconds(std::min(remaining, absl::Hours(1))));
  }
}

PostgresPool::Lease::Lease(Lease&& other) noexcept
    : state_(std::move(other.state_)), conn_(other.conn_), broken_(other.broken_) {
  other.conn_ = nullptr;
}

PostgresPool::Lease& PostgresPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    state_ = std::move(other.state_);
    conn_ = other.conn_;
    broken_ = other.broken_;
    other.conn_ = nullptr;
  }
  return *this;
}

PostgresPool::Lease::~Lease() { Release(); }

void PostgresPool::Lease::Release() {
  if (conn_ == nullptr) return;
  PGconn* conn = conn_;
  conn_ = nullptr;
  // Reused only in the state Acquire promises: connected, idle, outside any transaction.
  const bool reusable = !broken_ && PQstatus(conn) == CONNECTION_OK &&
                        PQtransactionStatus(conn) == PQTRANS_IDLE;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (reusable && !state_->closed) {
      state_->idle.push_back(conn);
      conn = nullptr;
    } else {
      --state_->open;
    }
  }
  state_->returned.notify_one();
  if (conn != nullptr) PQfinish(conn);
  state_.reset();
}

}  // namespace secret_resolver
