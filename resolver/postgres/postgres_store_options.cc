#include "resolver/postgres/postgres_store_options.h"

#include <cstddef>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace secret_resolver {
namespace {

constexpr size_t kMaxChannelBytes = 63;  // NAMEDATALEN - 1

}  // namespace

absl::Status ValidatePostgresStoreOptions(const PostgresStoreOptions& options) {
  if (options.channel.empty() || options.channel.size() > kMaxChannelBytes ||
      options.channel.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("postgres store: channel must be 1 to ",
                                                   kMaxChannelBytes, " bytes without NUL, got ",
                                                   options.channel.size(), " bytes"));
  }
  for (const auto& [name, value] :
       {std::make_pair("connect_timeout", options.timeouts.connect),
        std::make_pair("statement_timeout", options.timeouts.statement),
        std::make_pair("watch_connect_timeout", options.watch_connect_timeout),
        std::make_pair("watch_initial_backoff", options.watch_initial_backoff),
        std::make_pair("watch_max_backoff", options.watch_max_backoff),
        std::make_pair("watch_heartbeat_timeout", options.watch_heartbeat_timeout)}) {
    if (value <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "postgres store: ", name, " must be positive, got ", absl::FormatDuration(value)));
    }
  }
  if (options.watch_heartbeat_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("postgres store: watch_heartbeat_interval is negative");
  }
  return absl::OkStatus();
}

absl::Status CheckPostgresStoreTransport(const PostgresDsn& dsn,
                                         const PostgresStoreOptions& options) {
  if (options.allow_insecure) return absl::OkStatus();
  if (absl::Status s = CheckPostgresTransport(dsn); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("postgres store (", dsn.description(), "): ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace secret_resolver
