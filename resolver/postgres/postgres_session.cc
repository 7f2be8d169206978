#include "resolver/postgres/postgres_session.h"

#include <poll.h>
#include <postgresql/libpq-fe.h>

#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace secret_resolver {
namespace {

// Type OIDs (pg_type.h) of the parameters we send.
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt4Oid = 23;
constexpr Oid kTextOid = 25;

std::string BigEndian(uint64_t value, int bytes) {
  std::string out(bytes, '\0');
  for (int i = bytes - 1; i >= 0; --i) {
    out[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  return out;
}

bool StartsWithAny(absl::string_view state, std::initializer_list<absl::string_view> prefixes) {
  for (absl::string_view prefix : prefixes) {
    if (absl::StartsWith(state, prefix)) return true;
  }
  return false;
}

// The status code for a statement that failed with SQLSTATE `state` (PostgreSQL's errcodes).
absl::StatusCode CodeForSqlState(absl::string_view state) {
  // connection exceptions; admin or crash shutdown, cannot connect now; query cancelled (e.g.
  // statement_timeout); insufficient resources; lock not available; a read-only standby; system
  // errors
  if (StartsWithAny(state, {"08", "57P", "57014", "53", "55P03", "25006", "58"})) {
    return absl::StatusCode::kUnavailable;
  }
  // serialization failure, deadlock; a constraint broken by a writer ignoring our locks
  if (StartsWithAny(state, {"40", "23"})) return absl::StatusCode::kAborted;
  if (StartsWithAny(state, {"22"})) return absl::StatusCode::kInvalidArgument;
  // the schema or the role's privileges are not what the store needs
  if (StartsWithAny(state, {"42", "3F", "28"})) return absl::StatusCode::kFailedPrecondition;
  if (StartsWithAny(state, {"XX001", "XX002"})) return absl::StatusCode::kDataLoss;
  return absl::StatusCode::kInternal;
}

// Whether SQLSTATE `state` means that the connection is gone.
bool IsConnectionLoss(absl::string_view state) {
  return StartsWithAny(state, {"08", "57P01", "57P02", "57P03"});
}

}  // namespace

PostgresParams& PostgresParams::Text(absl::string_view text) {
  return Add(kTextOid, std::string(text));
}

PostgresParams& PostgresParams::Bytes(absl::string_view bytes) {
  return Add(kByteaOid, std::string(bytes));
}

PostgresParams& PostgresParams::Int8(int64_t value) {
  return Add(kInt8Oid, BigEndian(static_cast<uint64_t>(value), 8));
}

PostgresParams& PostgresParams::Int4(int32_t value) {
  return Add(kInt4Oid, BigEndian(static_cast<uint32_t>(value), 4));
}

PostgresParams& PostgresParams::Bool(bool value) {
  return Add(kBoolOid, std::string(1, value ? '\1' : '\0'));
}

PostgresParams& PostgresParams::Add(Oid type, std::string value) {
  types_.push_back(type);
  values_.push_back(std::move(value));
  return *this;
}

std::string PostgresResult::Bytes(int row, int column) const {
  return std::string(PQgetvalue(result_.get(), row, column),
                     PQgetlength(result_.get(), row, column));
}

int64_t PostgresResult::Int(int row, int column) const {
  const unsigned char* data =
      reinterpret_cast<const unsigned char*>(PQgetvalue(result_.get(), row, column));
  const int length = PQgetlength(result_.get(), row, column);
  uint64_t value = (length > 0 && (data[0] & 0x80) != 0) ? ~uint64_t{0} : 0;  // sign
  for (int i = 0; i < length; ++i) value = (value << 8) | data[i];
  return static_cast<int64_t>(value);
}

int64_t PostgresResult::affected() const {
  const char* text = PQcmdTuples(result_.get());
  return text[0] == '\0' ? 0 : std::strtoll(text, nullptr, 10);
}

std::string PostgresStoreName(const PostgresDsn& dsn) {
  return absl::StrCat("postgres store (", dsn.description(), ")");
}

std::string PostgresStoreMessage(const PostgresDsn& dsn, absl::string_view what,
                                 absl::string_view detail) {
  return dsn.Redact(absl::StrCat("postgres store (", dsn.description(), "): ", what, ": ",
                                 absl::StrReplaceAll(detail, {{"\n", "; "}})));
}

absl::StatusOr<PostgresResult> PostgresSession::Exec(absl::string_view what, const char* sql,
                                                     const PostgresParams& params) {
  PGconn* conn = lease_.get();
  if (broken_) return Error(what, "the connection is broken");
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size());
  std::vector<int> formats(params.size(), 1);
  for (int i = 0; i < params.size(); ++i) {
    values[i] = params.value(i).data();
    lengths[i] = static_cast<int>(params.value(i).size());
  }
  if (PQsendQueryParams(conn, sql, params.size(), params.types(), values.data(), lengths.data(),
                        formats.data(), /*resultFormat=*/1) == 0) {
    return Broke(what);
  }
  const absl::Time deadline = absl::Now() + statement_timeout_;
  std::unique_ptr<PGresult, PGresultDeleter> kept;
  while (true) {
    while (PQisBusy(conn)) {
      absl::Status ready = WaitForSocket(PQsocket(conn), POLLIN, deadline, -1);
      if (absl::IsDeadlineExceeded(ready)) return TimedOut(what);
      if (!ready.ok()) {
        lost_ = true;
        MarkBroken();
        return Error(what, ready.message());
      }
      if (PQconsumeInput(conn) == 0) return Broke(what);
    }
    PGresult* result = PQgetResult(conn);
    if (result == nullptr) break;
    // One statement gives one result; after an error keep the error.
    if (kept == nullptr || PQresultStatus(result) == PGRES_FATAL_ERROR) {
      kept.reset(result);
    } else {
      PQclear(result);
    }
  }
  if (kept == nullptr) return Broke(what);
  const ExecStatusType status = PQresultStatus(kept.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    return PostgresResult(kept.release());
  }
  const char* state_field = PQresultErrorField(kept.get(), PG_DIAG_SQLSTATE);
  const std::string state = state_field != nullptr ? state_field : "";
  if (PQstatus(conn) == CONNECTION_BAD || state.empty() || IsConnectionLoss(state)) {
    lost_ = true;
    MarkBroken();
  }
  const char* primary = PQresultErrorField(kept.get(), PG_DIAG_MESSAGE_PRIMARY);
  std::string message = primary != nullptr ? primary : PQresultErrorMessage(kept.get());
  message = std::string(absl::StripAsciiWhitespace(message));
  absl::StatusCode code =
      state.empty() ? (lost_ ? absl::StatusCode::kUnavailable : absl::StatusCode::kInternal)
                    : CodeForSqlState(state);
  if (!state.empty()) absl::StrAppend(&message, " (SQLSTATE ", state, ")");
  return absl::Status(code, Message(what, message));
}

absl::Status PostgresSession::Error(absl::string_view what, absl::string_view detail) const {
  return absl::UnavailableError(Message(what, detail));
}

absl::Status PostgresSession::Broke(absl::string_view what) {
  lost_ = true;
  MarkBroken();
  return Error(what, absl::StrCat("connection lost: ", PostgresErrorText(dsn_, lease_.get())));
}

absl::Status PostgresSession::TimedOut(absl::string_view what) {
  // The connection is closed, which rolls back whatever the transaction did. No cancel request
  // is sent: PQcancel opens a new connection without a timeout, which could block for minutes
  // when the server is unreachable. The server notices the closed connection when it next
  // writes to it (or sooner with client_connection_check_interval).
  MarkBroken();
  return Error(what, absl::StrCat("no answer within ", absl::FormatDuration(statement_timeout_)));
}

absl::Status WithPostgresSession(PostgresPool& pool, const PostgresDsn& dsn,
                                 const PostgresTimeouts& timeouts,
                                 const std::function<absl::Status(PostgresSession&)>& body) {
  absl::Status status;
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<PostgresPool::Lease> lease = pool.Acquire(absl::Now() + timeouts.connect);
    if (!lease.ok()) {
      // Whatever kept us from a connection (refused, not established in time, all pooled
      // connections busy until the deadline), the backend is unavailable to this caller now.
      return absl::UnavailableError(
          dsn.Redact(absl::StrCat("postgres store: ", lease.status().message())));
    }
    PostgresSession session(*std::move(lease), dsn, timeouts.statement);
    status = body(session);
    if (status.ok() || !session.retryable()) return status;
    // The connection broke before anything was committed: the server rolled the attempt back,
    // so it is safe to run it again, once, on a fresh connection.
  }
  return status;
}

absl::Status InPostgresTransaction(PostgresPool& pool, const PostgresDsn& dsn,
                                   const PostgresTimeouts& timeouts,
                                   const std::function<absl::Status(PostgresSession&)>& body) {
  return WithPostgresSession(
      pool, dsn, timeouts, [&](PostgresSession& session) -> absl::Status {
        // Explicit, so that a database default of REPEATABLE READ or SERIALIZABLE cannot make a
        // writer read a snapshot older than the lock it just took.
        if (absl::StatusOr<PostgresResult> r =
                session.Exec("starting a transaction", "BEGIN ISOLATION LEVEL READ COMMITTED");
            !r.ok()) {
          return r.status();
        }
        absl::Status status = body(session);
        if (!status.ok()) {
          if (!session.broken() && !session.Exec("rolling back", "ROLLBACK").ok()) {
            session.MarkBroken();  // never hand a connection inside a transaction back to the pool
          }
          return status;
        }
        session.set_committing(true);
        absl::StatusOr<PostgresResult> committed = session.Exec("committing", "COMMIT");
        if (!committed.ok() && session.outcome_in_doubt()) {
          return absl::UnavailableError(
              absl::StrCat(committed.status().message(),
                           "; the connection failed while committing, so the change may or may not "
                           "have been applied"));
        }
        return committed.ok() ? absl::OkStatus() : committed.status();
      });
}

}  // namespace secret_resolver
