#include "resolver/postgres/postgres_connection.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "resolver/quote.h"

namespace secret_resolver {
namespace {

constexpr absl::string_view kRedacted = "[REDACTED]";

// Keys whose values are safe to print, in the order description() lists them.
constexpr const char* kDescribedKeys[] = {"host", "hostaddr", "port", "dbname", "user", "sslmode"};

constexpr const char* kSslModes[] = {"disable", "allow",     "prefer",
                                     "require", "verify-ca", "verify-full"};

void DiscardNotice(void* /*arg*/, const char* /*message*/) {}

// Milliseconds until `deadline` for poll(), rounded up so that a wake-up is never early.
int PollTimeoutMillis(absl::Time deadline) {
  const absl::Duration remaining = deadline - absl::Now();
  if (remaining <= absl::ZeroDuration()) return 0;
  if (deadline == absl::InfiniteFuture()) return -1;
  const int64_t millis = absl::ToInt64Milliseconds(absl::Ceil(remaining, absl::Milliseconds(1)));
  return static_cast<int>(std::min<int64_t>(millis, 1 << 30));
}

}  // namespace

absl::Status CheckPostgresTransport(const PostgresDsn& dsn) {
  auto setting = [&dsn](absl::string_view key, const char* env) -> std::string {
    for (const auto& [keyword, value] : dsn.options()) {
      if (keyword == key && !value.empty()) return value;
    }
    const char* from_env = getenv(env);
    return from_env != nullptr ? from_env : "";
  };
  const std::string sslmode = setting("sslmode", "PGSSLMODE");
  if (sslmode == "verify-ca" || sslmode == "verify-full") return absl::OkStatus();
  // hostaddr, when given, is where libpq connects; host is then only the name it verifies.
  std::string hosts = setting("hostaddr", "PGHOSTADDR");
  if (hosts.empty()) hosts = setting("host", "PGHOST");
  for (absl::string_view host : absl::StrSplit(hosts, ',')) {
    host = absl::StripAsciiWhitespace(host);
    const bool local = host.empty() || absl::StartsWith(host, "/") ||
                       absl::StartsWith(host, "@") || host == "localhost" || host == "::1" ||
                       absl::StartsWith(host, "127.");
    if (local) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL host ", QuoteForMessage(host, kQuotedAddressBytes),
        " is not on this machine and sslmode is ",
        QuoteForMessage(sslmode.empty() ? "prefer" : sslmode),
        ", which does not verify the server: set sslmode=verify-full (with sslrootcert) in the "
        "connection string, or, only on a network you trust, store.postgres.allow_insecure: "
        "true"));
  }
  return absl::OkStatus();
}

absl::StatusOr<PostgresDsn> PostgresDsn::Parse(absl::string_view dsn) {
  if (absl::StripAsciiWhitespace(dsn).empty()) {
    return absl::InvalidArgumentError("PostgreSQL connection string is empty");
  }
  const std::string text(dsn);
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(text.c_str(), &error);
  if (parsed == nullptr) {
    std::string detail = "expected libpq key=value pairs or a postgresql:// URI";
    if (error != nullptr) {
      // "invalid connection option "x"" names a keyword, which is quoted again here (it may
      // hold any byte); libpq's other parse errors may quote a piece of a value (the password,
      // say), so they are not repeated.
      absl::string_view message = absl::StripAsciiWhitespace(error);
      constexpr absl::string_view kUnknownOption = "invalid connection option \"";
      if (absl::ConsumePrefix(&message, kUnknownOption) && absl::ConsumeSuffix(&message, "\"")) {
        detail = absl::StrCat("invalid connection option ", QuoteForMessage(message));
      }
      PQfreemem(error);
    } else {
      detail = "libpq could not allocate memory to parse it";
    }
    return absl::InvalidArgumentError(
        absl::StrCat("malformed PostgreSQL connection string: ", detail));
  }
  PostgresDsn result;
  for (const PQconninfoOption* option = parsed; option->keyword != nullptr; ++option) {
    if (option->val == nullptr) continue;
    result.options_.emplace_back(option->keyword, option->val);
    if (strcmp(option->keyword, "password") == 0) result.password_ = option->val;
  }
  PQconninfoFree(parsed);

  std::vector<std::string> described;
  for (const char* key : kDescribedKeys) {
    for (const auto& [keyword, value] : result.options_) {
      // Escaped: the description goes into errors and log lines, which stay printable ASCII.
      if (keyword == key) described.push_back(absl::StrCat(keyword, "=", absl::CHexEscape(value)));
    }
  }
  result.description_ = described.empty() ? "(libpq defaults)" : absl::StrJoin(described, " ");

  for (const auto& [keyword, value] : result.options_) {
    if (keyword == "sslmode" &&
        std::find(std::begin(kSslModes), std::end(kSslModes), value) == std::end(kSslModes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PostgreSQL connection string: sslmode ", QuoteForMessage(value),
          " is not one of disable, allow, prefer, require, verify-ca, verify-full"));
    }
  }
  return result;
}

std::string PostgresDsn::Redact(absl::string_view text) const {
  if (password_.empty()) return std::string(text);
  return absl::StrReplaceAll(text, {{password_, kRedacted}});
}

std::string PostgresErrorText(const PostgresDsn& dsn, const PGconn* conn) {
  std::string text = conn == nullptr ? "" : PQerrorMessage(conn);
  text = absl::StrReplaceAll(absl::StripAsciiWhitespace(text), {{"\n", "; "}});
  if (text.empty()) text = "no error text from libpq";
  return dsn.Redact(text);
}

absl::Status WaitForSocket(int fd, short events, absl::Time deadline, int abort_fd) {
  while (true) {
    struct pollfd fds[2] = {{fd, events, 0}, {abort_fd, POLLIN, 0}};
    const int count = poll(fds, abort_fd >= 0 ? 2 : 1, PollTimeoutMillis(deadline));
    if (count < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("poll on the PostgreSQL socket: ", strerror(errno)));
    }
    if (abort_fd >= 0 && (fds[1].revents & POLLIN) != 0) {
      return absl::CancelledError("stopped while waiting for PostgreSQL");
    }
    // Errors and hang-ups count as ready: the next libpq call reports what happened.
    if (fds[0].revents != 0) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError("PostgreSQL did not answer before the deadline");
    }
  }
}

absl::StatusOr<PGconn*> ConnectPostgres(const PostgresDsn& dsn, absl::Time deadline,
                                        absl::string_view application_name, int abort_fd) {
  const std::string fallback_name(application_name);
  std::vector<const char*> keys = {"fallback_application_name"};
  std::vector<const char*> values = {fallback_name.c_str()};
  for (const auto& [keyword, value] : dsn.options()) {
    keys.push_back(keyword.c_str());
    values.push_back(value.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);

  PGconn* conn = PQconnectStartParams(keys.data(), values.data(), /*expand_dbname=*/0);
  if (conn == nullptr) {
    return absl::ResourceExhaustedError("libpq could not allocate a connection");
  }
  auto fail = [&](absl::Status status) -> absl::StatusOr<PGconn*> {
    PQfinish(conn);
    return status;
  };
  auto unavailable = [&]() {
    return fail(absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL (",
                                                    dsn.description(), "): ",
                                                    PostgresErrorText(dsn, conn))));
  };
  if (PQstatus(conn) == CONNECTION_BAD) return unavailable();

  // As libpq's documentation says: start as if PQconnectPoll had asked to write.
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  while (state != PGRES_POLLING_OK) {
    if (state == PGRES_POLLING_FAILED) return unavailable();
    absl::Status ready = WaitForSocket(
        PQsocket(conn), state == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline, abort_fd);
    if (absl::IsDeadlineExceeded(ready)) {
      return fail(absl::DeadlineExceededError(absl::StrCat(
          "connecting to PostgreSQL (", dsn.description(),
          ") did not finish before the deadline")));
    }
    if (!ready.ok()) return fail(ready);
    state = PQconnectPoll(conn);
  }
  PQsetNoticeProcessor(conn, DiscardNotice, nullptr);
  return conn;
}

}  // namespace secret_resolver
