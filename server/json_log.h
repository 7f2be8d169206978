// JsonLogger: structured logs, one JSON object per line, and the audit line written for every
// resolved reference (contract.md section 9).
//
//   {"time":"2023-11-14T22:13:20.000Z","level":"info","msg":"serving","unix":"/run/sr.sock"}
//
// What never goes in: secret values, access tokens, fingerprint or encryption keys, DSNs with
// passwords. The API helps: a field holds a string, number or bool, and there is deliberately
// no way to build one from a SecretBytes (it has no conversions, and the overload that would
// take it is deleted). Passing `secret.reveal()` would compile, so do not.
//
// Writing is synchronous by default: each call writes and flushes before it returns. With a
// flush_interval, lines go to a bounded in-memory buffer that a writer thread of the logger
// writes out at least that often (group commit): the sidecar's setting, because one system call
// per call under a shared lock, with an audit line per reference, cost it a third of its
// throughput (docs/BENCHMARKS.md). The writer also writes as soon as kWriteChunkBytes are
// buffered, so that a busy sidecar writes small steady chunks rather than a burst per interval
// (a megabyte written at once holds a core for about a millisecond, which showed in the
// callers' p99 latency). A crash can lose the last interval's lines; Flush() and the destructor
// write everything buffered.
//
// Thread safety: every method may be called from any thread. Each line is formatted first and
// then written whole, so lines from different threads never interleave.
#ifndef SECRET_RESOLVER_SERVER_JSON_LOG_H_
#define SECRET_RESOLVER_SERVER_JSON_LOG_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <thread>
#include <ostream>
#include <string>
#include <type_traits>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "resolver/clock.h"
#include "resolver/secret_bytes.h"

namespace secret_resolver {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// "debug", "info", "warning", "error".
absl::string_view LogLevelName(LogLevel level);

// Parses one of the names above (as in the config's logging.level). INVALID_ARGUMENT otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);

// One key and a typed value: a string, a signed or unsigned integer, a double or a bool.
// Durations are logged in milliseconds; a Status as its code name and message.
class LogField {
 public:
  using Value = std::variant<std::string, int64_t, uint64_t, double, bool>;

  LogField(absl::string_view key, absl::string_view value)
      : key_(key), value_(std::string(value)) {}
  LogField(absl::string_view key, const char* value)
      : key_(key), value_(std::string(value == nullptr ? "" : value)) {}
  LogField(absl::string_view key, const std::string& value) : key_(key), value_(value) {}

  // Exactly bool: a template, so that a pointer does not silently become true.
  template <typename T, std::enable_if_t<std::is_same_v<T, bool>, int> = 0>
  LogField(absl::string_view key, T value) : key_(key), value_(value) {}

  template <typename T,
            std::enable_if_t<
                std::is_integral_v<T> && !std::is_same_v<T, bool> && std::is_signed_v<T>, int> = 0>
  LogField(absl::string_view key, T value) : key_(key), value_(static_cast<int64_t>(value)) {}

  template <typename T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                                             std::is_unsigned_v<T>,
                                         int> = 0>
  LogField(absl::string_view key, T value) : key_(key), value_(static_cast<uint64_t>(value)) {}

  template <typename T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  LogField(absl::string_view key, T value) : key_(key), value_(static_cast<double>(value)) {}

  // In milliseconds, as a double.
  LogField(absl::string_view key, absl::Duration value)
      : key_(key), value_(absl::ToDoubleMilliseconds(value)) {}

  // "CODE_NAME: message". Status messages in this project never carry secrets (STYLE.md).
  LogField(absl::string_view key, const absl::Status& status)
      : key_(key), value_(status.ToString()) {}

  // Secret bytes are never logged.
  LogField(absl::string_view key, const SecretBytes& value) = delete;

  const std::string& key() const { return key_; }
  const Value& value() const { return value_; }

 private:
  std::string key_;
  Value value_;
};

// The outcome of one reference, as the audit line records it.
enum class AuditDecision {
  kAllowed,  // the value was returned
  kDenied,   // the caller may not have it (authentication, stack, decrypter check)
  kError,    // anything else: not found, invalid reference, store failure
};

// "allowed", "denied", "error".
absl::string_view AuditDecisionName(AuditDecision decision);

// One audit line: who asked for which secret of which stack, and what happened. Identities and
// names only; never the value or the caller's token. The strings are views: LogAudit formats
// the record before it returns.
struct AuditRecord {
  // When the reference was resolved. InfinitePast: the logger's clock at LogAudit.
  absl::Time time = absl::InfinitePast();
  absl::string_view stack;
  // The verified service identity of the caller (e.g. the token's subject).
  absl::string_view caller;
  // The service a Grafana decrypt client says it decrypts for (its
  // X-Grafana-Service-Identity-Name header), unverified; written only when not empty.
  absl::string_view reported_service;
  // The call's run context (server/run_context.h), each written only when not empty: the
  // workflow run and step ids, the W3C trace and parent span ids, and the names of the
  // run-context headers that were dropped as invalid.
  absl::string_view run_id;
  absl::string_view step_id;
  absl::string_view trace_id;
  absl::string_view span_id;
  absl::string_view dropped_metadata;
  // "CheckReferences" or "WatchSecrets" for a dry run's line; written only when not empty.
  absl::string_view method;
  // The key of the reference in the request.
  absl::string_view ref_key;
  absl::string_view secret_name;
  // The version returned; 0 when none was.
  int64_t version = 0;
  AuditDecision decision = AuditDecision::kError;
  // Logged by name: "OK", "NOT_FOUND", ...
  absl::StatusCode code = absl::StatusCode::kUnknown;
  // CacheOutcomeName ("hit", "miss", "negative_hit", "stale"), or empty when the cache was not
  // consulted.
  absl::string_view cache;
  double latency_ms = 0;
};

struct JsonLoggerOptions {
  // Source of each line's time. Not owned; never null.
  Clock* clock = Clock::Real();
  // Lines below this level are dropped. Audit lines are not subject to it.
  LogLevel min_level = LogLevel::kInfo;
  // Whether LogAudit writes anything (config logging.audit).
  bool audit = true;
  // Zero: every call writes and flushes before returning. Positive: a writer thread writes the
  // buffered lines at least this often.
  absl::Duration flush_interval = absl::ZeroDuration();
  // With a flush_interval: callers wait (rather than lines being dropped) while this many bytes
  // are buffered and not yet written.
  size_t max_buffered_bytes = size_t{4} << 20;
};

// With a flush_interval, the writer writes once this many bytes are buffered, without waiting
// for the interval.
inline constexpr size_t kWriteChunkBytes = 64 << 10;

class JsonLogger {
 public:
  // Writes to `out` (not owned, must outlive the logger; stderr in production).
  explicit JsonLogger(FILE* out, JsonLoggerOptions options = JsonLoggerOptions());
  explicit JsonLogger(std::ostream* out, JsonLoggerOptions options = JsonLoggerOptions());
  // Writes what is still buffered.
  ~JsonLogger();

  JsonLogger(const JsonLogger&) = delete;
  JsonLogger& operator=(const JsonLogger&) = delete;

  // Writes {"time", "level", "msg", fields...} when `level` is enabled. Field keys that clash
  // with the first three are written as "field_time", "field_level", "field_msg". Strings are
  // escaped as JSON requires (control characters as \u00XX); invalid UTF-8 becomes U+FFFD.
  void Log(LogLevel level, absl::string_view msg, absl::Span<const LogField> fields = {});
  void Debug(absl::string_view msg, absl::Span<const LogField> fields = {}) {
    Log(LogLevel::kDebug, msg, fields);
  }
  void Info(absl::string_view msg, absl::Span<const LogField> fields = {}) {
    Log(LogLevel::kInfo, msg, fields);
  }
  void Warning(absl::string_view msg, absl::Span<const LogField> fields = {}) {
    Log(LogLevel::kWarning, msg, fields);
  }
  void Error(absl::string_view msg, absl::Span<const LogField> fields = {}) {
    Log(LogLevel::kError, msg, fields);
  }

  // Writes {"time", "level":"info", "msg":"audit", "stack", "caller", ["reported_service"],
  // "ref_key", "secret",
  // "version", "decision", "code", "cache", "latency_ms"} unless audit lines are off. The lines
  // of one call go out in one write, so they stay together and cost one system call.
  void LogAudit(absl::Span<const AuditRecord> records);
  void LogAudit(const AuditRecord& record) { LogAudit(absl::MakeConstSpan(&record, 1)); }

  // Writes {"time", "level":"info", "msg":"audit", fields...} unless audit lines are off; not
  // subject to the minimum level. For audit events other than a reference's outcome, such as
  // a call refused as a whole.
  void LogAuditEvent(absl::Span<const LogField> fields);

  // Returns once every line logged before the call has been written and flushed.
  void Flush();
  // Flush, but waits at most `timeout` (the output may be blocked): true when flushed. For a
  // last flush before _Exit.
  bool FlushFor(absl::Duration timeout);

  bool IsEnabled(LogLevel level) const {
    return static_cast<int>(level) >= min_level_.load(std::memory_order_relaxed);
  }
  void set_min_level(LogLevel level) {
    min_level_.store(static_cast<int>(level), std::memory_order_relaxed);
  }

 private:
  // Exactly one of `file` and `stream` is not null.
  JsonLogger(FILE* file, std::ostream* stream, const JsonLoggerOptions& options);

  // Formats and writes one line of Log() or LogAuditEvent().
  void WriteLine(LogLevel level, absl::string_view msg, absl::Span<const LogField> fields);
  // Writes `lines` (each ending in a newline) now, or hands them to the writer thread.
  void Write(const std::string& lines);
  // Writes to the output and flushes it.
  void WriteNow(const std::string& lines);
  void RunWriter();

  FILE* const file_;
  std::ostream* const stream_;
  Clock* const clock_;
  const bool audit_;
  const absl::Duration flush_interval_;
  const size_t max_buffered_bytes_;
  const size_t write_chunk_bytes_;  // wake the writer at this much: kWriteChunkBytes or less
  std::atomic<int> min_level_;
  std::mutex write_mu_;  // serializes WriteNow

  // With a flush_interval; guarded by buffer_mu_.
  std::mutex buffer_mu_;
  std::condition_variable wake_writer_;
  std::condition_variable buffer_space_;
  std::condition_variable flushed_;
  std::string pending_;
  uint64_t flushes_requested_ = 0;
  uint64_t flushes_done_ = 0;
  bool stopping_ = false;
  std::thread writer_;  // last: started once the rest is constructed
};

// RFC 3339 in UTC with milliseconds: "2023-11-14T22:13:20.000Z".
std::string FormatLogTime(absl::Time time);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_JSON_LOG_H_
