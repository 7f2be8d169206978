// Running the PostgresSecretStore's statements: binary query parameters and results, one leased
// connection per attempt with a deadline on each statement, the SQLSTATE-to-status mapping, and
// the retry-once rule for a connection that broke before anything could commit (CONTRACT.md
// section 6; the store's header describes the rule as callers see it).
//
// Every parameter and result is in binary format, so no value is ever quoted into SQL text and
// bytea needs no escaping. Messages name the store by its DSN description and never hold the
// password.
//
// Thread safety: PostgresParams and PostgresResult are values; a PostgresSession belongs to one
// thread at a time (it holds one libpq connection). WithPostgresSession and
// InPostgresTransaction may be called concurrently on one pool.
#ifndef SECRET_RESOLVER_RESOLVER_POSTGRES_POSTGRES_SESSION_H_
#define SECRET_RESOLVER_RESOLVER_POSTGRES_POSTGRES_SESSION_H_

#include <postgresql/libpq-fe.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/postgres/postgres_connection.h"
#include "resolver/postgres/postgres_pool.h"

namespace secret_resolver {

// Query parameters $1, $2, ... in binary format, with their types.
class PostgresParams {
 public:
  PostgresParams& Text(absl::string_view text);
  PostgresParams& Bytes(absl::string_view bytes);
  PostgresParams& Int8(int64_t value);
  PostgresParams& Int4(int32_t value);
  PostgresParams& Bool(bool value);

  int size() const { return static_cast<int>(values_.size()); }
  const Oid* types() const { return types_.data(); }
  const std::string& value(int i) const { return values_[i]; }

 private:
  PostgresParams& Add(Oid type, std::string value);

  std::vector<Oid> types_;
  std::vector<std::string> values_;
};

// Frees a PGresult.
struct PGresultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};

// A successful statement's rows, in binary format.
class PostgresResult {
 public:
  // Takes ownership of `result`.
  explicit PostgresResult(PGresult* result) : result_(result) {}

  int rows() const { return PQntuples(result_.get()); }
  bool IsNull(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
  // text and bytea columns: the raw bytes.
  std::string Bytes(int row, int column) const;
  // bigint, integer and smallint columns (network byte order).
  int64_t Int(int row, int column) const;
  // Rows a command affected (INSERT, UPDATE).
  int64_t affected() const;

 private:
  std::unique_ptr<PGresult, PGresultDeleter> result_;
};

// "postgres store (<dsn description>)", naming the store in messages.
std::string PostgresStoreName(const PostgresDsn& dsn);
// "postgres store (<dsn description>): <what>: <detail>", newlines in `detail` as "; ", the
// password redacted.
std::string PostgresStoreMessage(const PostgresDsn& dsn, absl::string_view what,
                                 absl::string_view detail);

// How long one operation waits for the server.
struct PostgresTimeouts {
  // For a connection from the pool: a free one, or a new one established (TCP, TLS, startup).
  absl::Duration connect = absl::Seconds(2);
  // For the answer to each statement, measured by the client: a server that stopped answering
  // (hung, or a network that drops packets) is given up on after this, not only a slow query.
  absl::Duration statement = absl::Seconds(2);
};

// One leased connection for one attempt of an operation: runs statements with a deadline and
// remembers whether the connection broke (then it goes back to the pool marked broken).
class PostgresSession {
 public:
  // `dsn` must outlive the session.
  PostgresSession(PostgresPool::Lease lease, const PostgresDsn& dsn,
                  absl::Duration statement_timeout)
      : lease_(std::move(lease)), dsn_(dsn), statement_timeout_(statement_timeout) {}

  PostgresSession(const PostgresSession&) = delete;
  PostgresSession& operator=(const PostgresSession&) = delete;

  // Runs one statement; `what` names it in messages ("reading a secret"). Errors, by SQLSTATE:
  // UNAVAILABLE (connection exceptions, shutdown, cancelled, insufficient resources, lock not
  // available, read-only standby, system errors), ABORTED (serialization failure, deadlock, a
  // constraint violated), INVALID_ARGUMENT (data exceptions), FAILED_PRECONDITION (the schema
  // or the role's privileges are not what the store needs), DATA_LOSS (data corrupted),
  // INTERNAL otherwise; UNAVAILABLE also
  // when the connection broke or the statement outlived the statement timeout (its connection
  // is then closed).
  absl::StatusOr<PostgresResult> Exec(absl::string_view what, const char* sql,
                                      const PostgresParams& params = PostgresParams());

  // PostgresStoreMessage for this session's DSN.
  std::string Message(absl::string_view what, absl::string_view detail) const {
    return PostgresStoreMessage(dsn_, what, detail);
  }

  // Whether the connection must not be used again (it is closed when the session ends).
  bool broken() const { return broken_; }
  void MarkBroken() {
    broken_ = true;
    lease_.MarkBroken();
  }

  // Set while COMMIT is outstanding: if the connection is lost or the COMMIT times out then,
  // nobody knows whether the transaction committed, and the operation must not be repeated.
  void set_committing(bool committing) { committing_ = committing; }
  bool outcome_in_doubt() const { return broken_ && committing_; }

  // Whether the operation may run again on another connection: the connection was lost (not
  // merely slow: a statement that timed out is not repeated) before anything could commit.
  bool retryable() const { return lost_ && !committing_; }

 private:
  absl::Status Error(absl::string_view what, absl::string_view detail) const;
  absl::Status Broke(absl::string_view what);
  absl::Status TimedOut(absl::string_view what);

  PostgresPool::Lease lease_;
  const PostgresDsn& dsn_;
  const absl::Duration statement_timeout_;
  bool broken_ = false;
  bool lost_ = false;
  bool committing_ = false;
};

// Runs `body` on a connection from `pool`, waiting at most `timeouts.connect` for one and
// `timeouts.statement` for each statement's answer. If the
// connection broke and `body` did not leave the outcome in doubt, runs it once more on a fresh
// connection. Returns what `body` returned; UNAVAILABLE when no connection came (refused, not
// established in time, all pooled connections busy until the deadline).
absl::Status WithPostgresSession(PostgresPool& pool, const PostgresDsn& dsn,
                                 const PostgresTimeouts& timeouts,
                                 const std::function<absl::Status(PostgresSession&)>& body);

// As WithPostgresSession, with `body` between BEGIN ISOLATION LEVEL READ COMMITTED and COMMIT;
// rolls back when `body` fails. Errors besides those: UNAVAILABLE saying that the change may or
// may not have been applied when the connection failed while committing.
absl::Status InPostgresTransaction(PostgresPool& pool, const PostgresDsn& dsn,
                                   const PostgresTimeouts& timeouts,
                                   const std::function<absl::Status(PostgresSession&)>& body);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_POSTGRES_POSTGRES_SESSION_H_
