#include "server/json_log.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"

namespace secret_resolver {
namespace {

using Json = nlohmann::ordered_json;

Json ToJson(const LogField::Value& value) {
  return std::visit([](const auto& v) { return Json(v); }, value);
}

// Never throws: invalid UTF-8 is replaced rather than rejected.
std::string Dump(const Json& object) {
  return object.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// `value` escaped for the inside of a JSON string. Printable ASCII, the common case, needs no
// escaping and is returned as it is; anything else goes through the JSON library (into
// `scratch`), which also replaces invalid UTF-8.
absl::string_view JsonStringContent(absl::string_view value, std::string* scratch) {
  static constexpr auto kPlain = [] {
    std::array<bool, 256> plain{};
    for (int c = 0x20; c < 0x7f; ++c) plain[c] = c != '"' && c != '\\';
    return plain;
  }();
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return kPlain[static_cast<unsigned char>(c)]; })) {
    return value;
  }
  *scratch = Dump(Json(std::string(value)));
  return absl::string_view(*scratch).substr(1, scratch->size() - 2);  // without the quotes
}

// absl::StatusCodeToString(code), without building a string for the codes absl defines.
absl::string_view StatusCodeName(absl::StatusCode code, std::string* scratch) {
  static const auto* const kNames = [] {
    auto* names = new std::array<std::string, 17>;  // OK (0) to UNAUTHENTICATED (16)
    for (size_t i = 0; i < names->size(); ++i) {
      (*names)[i] = absl::StatusCodeToString(static_cast<absl::StatusCode>(i));
    }
    return names;
  }();
  const auto index = static_cast<size_t>(code);
  if (index < kNames->size()) return (*kNames)[index];
  *scratch = absl::StatusCodeToString(code);
  return *scratch;
}

// Copies `piece` to `out` and returns the end of the copy. (An empty view may hold a null
// pointer, which memcpy must not be given even for no bytes.)
inline char* Put(char* out, absl::string_view piece) {
  if (!piece.empty()) std::memcpy(out, piece.data(), piece.size());
  return out + piece.size();
}

// FormatLogTime, with everything up to the second remembered per thread: audit lines are
// written for every call, and formatting a time through the time-zone library costs more than
// the rest of the line.
const std::string& FormatLogTimeCached(absl::Time time) {
  thread_local int64_t cached_second = std::numeric_limits<int64_t>::min();
  thread_local std::string cached;  // "YYYY-MM-DDTHH:MM:SS.mmmZ"
  if (time == absl::InfiniteFuture() || time == absl::InfinitePast()) {
    cached = FormatLogTime(time);  // no second to remember (only a test clock gets here)
    cached_second = std::numeric_limits<int64_t>::min();
    return cached;
  }
  const int64_t millis = absl::ToUnixMillis(time);
  const int64_t second = millis / 1000 - (millis % 1000 < 0 ? 1 : 0);
  if (second != cached_second) {
    cached = FormatLogTime(time);
    cached_second = second;
    return cached;
  }
  const int64_t ms = millis - second * 1000;  // 0..999
  char* digits = &cached[cached.size() - 4];   // "mmm" before the final 'Z'
  digits[0] = static_cast<char>('0' + ms / 100);
  digits[1] = static_cast<char>('0' + ms / 10 % 10);
  digits[2] = static_cast<char>('0' + ms % 10);
  return cached;
}

}  // namespace

absl::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name) {
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
    if (name == LogLevelName(level)) return level;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("log level \"", name, "\" is not one of debug, info, warning, error"));
}

absl::string_view AuditDecisionName(AuditDecision decision) {
  switch (decision) {
    case AuditDecision::kAllowed:
      return "allowed";
    case AuditDecision::kDenied:
      return "denied";
    case AuditDecision::kError:
      return "error";
  }
  return "error";
}

std::string FormatLogTime(absl::Time time) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

JsonLogger::JsonLogger(FILE* out, JsonLoggerOptions options)
    : JsonLogger(out, nullptr, options) {}

JsonLogger::JsonLogger(std::ostream* out, JsonLoggerOptions options)
    : JsonLogger(nullptr, out, options) {}

JsonLogger::JsonLogger(FILE* file, std::ostream* stream, const JsonLoggerOptions& options)
    : file_(file),
      stream_(stream),
      clock_(options.clock),
      audit_(options.audit),
      flush_interval_(options.flush_interval),
      max_buffered_bytes_(std::max<size_t>(1, options.max_buffered_bytes)),
      write_chunk_bytes_(std::min(kWriteChunkBytes, std::max<size_t>(1, max_buffered_bytes_ / 2))),
      min_level_(static_cast<int>(options.min_level)) {
  if (flush_interval_ > absl::ZeroDuration()) writer_ = std::thread([this] { RunWriter(); });
}

JsonLogger::~JsonLogger() {
  if (!writer_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(buffer_mu_);
    stopping_ = true;
  }
  wake_writer_.notify_one();
  writer_.join();
}

void JsonLogger::Flush() { FlushFor(absl::InfiniteDuration()); }

bool JsonLogger::FlushFor(absl::Duration timeout) {
  if (!writer_.joinable()) return true;
  std::unique_lock<std::mutex> lock(buffer_mu_);
  const uint64_t ticket = ++flushes_requested_;
  wake_writer_.notify_one();
  const auto done = [&] { return flushes_done_ >= ticket; };
  if (timeout == absl::InfiniteDuration()) {
    flushed_.wait(lock, done);
    return true;
  }
  return flushed_.wait_for(lock, absl::ToChronoNanoseconds(timeout), done);
}

void JsonLogger::RunWriter() {
  std::string batch;
  std::unique_lock<std::mutex> lock(buffer_mu_);
  for (;;) {
    wake_writer_.wait_for(lock, absl::ToChronoNanoseconds(flush_interval_), [this] {
      return stopping_ || flushes_requested_ > flushes_done_ ||
             pending_.size() >= write_chunk_bytes_;
    });
    batch.swap(pending_);
    const uint64_t serving = flushes_requested_;
    const bool stop = stopping_;
    lock.unlock();
    buffer_space_.notify_all();
    if (!batch.empty()) WriteNow(batch);
    batch.clear();
    lock.lock();
    flushes_done_ = serving;
    flushed_.notify_all();
    if (stop && pending_.empty()) return;
  }
}

void JsonLogger::Log(LogLevel level, absl::string_view msg, absl::Span<const LogField> fields) {
  if (IsEnabled(level)) WriteLine(level, msg, fields);
}

void JsonLogger::LogAuditEvent(absl::Span<const LogField> fields) {
  if (audit_) WriteLine(LogLevel::kInfo, "audit", fields);
}

void JsonLogger::WriteLine(LogLevel level, absl::string_view msg,
                           absl::Span<const LogField> fields) {
  Json line = Json::object();
  line["time"] = FormatLogTime(clock_->Now());
  line["level"] = std::string(LogLevelName(level));
  line["msg"] = std::string(msg);
  for (const LogField& field : fields) {
    const std::string& key = field.key();
    const bool reserved = key == "time" || key == "level" || key == "msg";
    line[reserved ? absl::StrCat("field_", key) : key] = ToJson(field.value());
  }
  Write(Dump(line) + '\n');
}

void JsonLogger::LogAudit(absl::Span<const AuditRecord> records) {
  if (!audit_ || records.empty()) return;
  // Audit lines are written for every reference of every call, so they are formatted directly
  // rather than through a JSON object; the key order and escaping are those of Log().
  absl::string_view now;  // formatted once for the records that take the logger's time
  // A buffer per thread that keeps its capacity: a fresh string per call grows through a
  // kilobyte-sized reallocation, which makes malloc consolidate its free lists every time.
  thread_local std::string text;
  text.clear();
  std::string scratch[6];  // escaped strings and code names, in the rare case one needs them
  // Consecutive records of one call share time, stack and caller: the start of the line up to
  // the ref key is formatted once for them.
  thread_local std::string head;
  const AuditRecord* head_of = nullptr;  // the record `head` was formatted for
  // They share their latency too: formatted once (NaN, never equal, each time).
  std::string latency;
  double latency_of = std::numeric_limits<double>::quiet_NaN();
  for (const AuditRecord& record : records) {
    if (head_of == nullptr || record.time != head_of->time || record.stack != head_of->stack ||
        record.caller != head_of->caller || record.reported_service != head_of->reported_service ||
        record.run_id != head_of->run_id || record.step_id != head_of->step_id ||
        record.trace_id != head_of->trace_id || record.span_id != head_of->span_id ||
        record.dropped_metadata != head_of->dropped_metadata || record.method != head_of->method) {
      if (record.time == absl::InfinitePast() && now.empty()) {
        now = FormatLogTimeCached(clock_->Now());
      }
      head.clear();
      absl::StrAppend(&head, "{\"time\":\"",
                      record.time == absl::InfinitePast() ? now : FormatLogTime(record.time),
                      "\",\"level\":\"info\",\"msg\":\"audit\",\"stack\":\"",
                      JsonStringContent(record.stack, &scratch[0]), "\",\"caller\":\"",
                      JsonStringContent(record.caller, &scratch[1]), "\",");
      if (!record.reported_service.empty()) {
        absl::StrAppend(&head, "\"reported_service\":\"",
                        JsonStringContent(record.reported_service, &scratch[2]), "\",");
      }
      for (const auto& [key, value] :
           {std::pair{"run_id", record.run_id}, std::pair{"step_id", record.step_id},
            std::pair{"trace_id", record.trace_id}, std::pair{"span_id", record.span_id},
            std::pair{"dropped_metadata", record.dropped_metadata},
            std::pair{"method", record.method}}) {
        if (!value.empty()) {
          absl::StrAppend(&head, "\"", key, "\":\"", JsonStringContent(value, &scratch[2]),
                          "\",");
        }
      }
      head.append("\"ref_key\":\"");
      head_of = &record;
    }
    const absl::string_view ref_key = JsonStringContent(record.ref_key, &scratch[2]);
    const absl::string_view secret = JsonStringContent(record.secret_name, &scratch[3]);
    const absl::AlphaNum version(record.version);
    const absl::string_view decision = AuditDecisionName(record.decision);
    const absl::string_view code = StatusCodeName(record.code, &scratch[4]);
    const absl::string_view cache = JsonStringContent(record.cache, &scratch[5]);
    if (!(record.latency_ms == latency_of)) {
      latency.clear();
      absl::StrAppend(&latency, record.latency_ms);
      latency_of = record.latency_ms;
    }
    // The line's fixed parts are constants, whose copies compile to a few moves: a StrAppend
    // of the line's fifteen pieces costs about twice as much.
    static constexpr absl::string_view kSecret = "\",\"secret\":\"";
    static constexpr absl::string_view kVersion = "\",\"version\":";
    static constexpr absl::string_view kDecision = ",\"decision\":\"";
    static constexpr absl::string_view kCode = "\",\"code\":\"";
    static constexpr absl::string_view kCache = "\",\"cache\":\"";
    static constexpr absl::string_view kLatency = "\",\"latency_ms\":";
    static constexpr absl::string_view kEnd = "}\n";
    const size_t at = text.size();
    text.resize(at + head.size() + ref_key.size() + kSecret.size() + secret.size() +
                kVersion.size() + version.size() + kDecision.size() + decision.size() +
                kCode.size() + code.size() + kCache.size() + cache.size() + kLatency.size() +
                latency.size() + kEnd.size());
    char* out = &text[at];
    out = Put(out, head);
    out = Put(out, ref_key);
    out = Put(out, kSecret);
    out = Put(out, secret);
    out = Put(out, kVersion);
    out = Put(out, version.Piece());
    out = Put(out, kDecision);
    out = Put(out, decision);
    out = Put(out, kCode);
    out = Put(out, code);
    out = Put(out, kCache);
    out = Put(out, cache);
    out = Put(out, kLatency);
    out = Put(out, latency);
    Put(out, kEnd);
  }
  Write(text);
}

void JsonLogger::Write(const std::string& text) {
  if (!writer_.joinable()) {
    WriteNow(text);
    return;
  }
  std::unique_lock<std::mutex> lock(buffer_mu_);
  buffer_space_.wait(lock, [this] { return pending_.size() < max_buffered_bytes_ || stopping_; });
  pending_ += text;
  // A chunk's worth: write now rather than at the next interval (see kWriteChunkBytes).
  if (pending_.size() >= write_chunk_bytes_) wake_writer_.notify_one();
}

void JsonLogger::WriteNow(const std::string& text) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (file_ != nullptr) {
    std::fwrite(text.data(), 1, text.size(), file_);
    std::fflush(file_);
  } else if (stream_ != nullptr) {
    stream_->write(text.data(), static_cast<std::streamsize>(text.size()));
    stream_->flush();
  }
}

}  // namespace secret_resolver
