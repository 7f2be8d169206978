#include "server/json_log.h"

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
    : file_(out),
      stream_(nullptr),
      clock_(options.clock),
      audit_(options.audit),
      min_level_(static_cast<int>(options.min_level)) {}

JsonLogger::JsonLogger(std::ostream* out, JsonLoggerOptions options)
    : file_(nullptr),
      stream_(out),
      clock_(options.clock),
      audit_(options.audit),
      min_level_(static_cast<int>(options.min_level)) {}

void JsonLogger::Log(LogLevel level, absl::string_view msg, absl::Span<const LogField> fields) {
  if (!IsEnabled(level)) return;
  Json line = Json::object();
  line["time"] = FormatLogTime(clock_->Now());
  line["level"] = std::string(LogLevelName(level));
  line["msg"] = std::string(msg);
  for (const LogField& field : fields) {
    const std::string& key = field.key();
    const bool reserved = key == "time" || key == "level" || key == "msg";
    line[reserved ? absl::StrCat("field_", key) : key] = ToJson(field.value());
  }
  WriteLine(Dump(line));
}

void JsonLogger::LogAudit(const AuditRecord& record) {
  if (!audit_) return;
  const absl::Time time = record.time == absl::InfinitePast() ? clock_->Now() : record.time;
  Json line = Json::object();
  line["time"] = FormatLogTime(time);
  line["level"] = "info";
  line["msg"] = "audit";
  line["stack"] = record.stack;
  line["caller"] = record.caller;
  line["ref_key"] = record.ref_key;
  line["secret"] = record.secret_name;
  line["version"] = record.version;
  line["decision"] = std::string(AuditDecisionName(record.decision));
  line["code"] = absl::StatusCodeToString(record.code);
  line["cache"] = record.cache;
  line["latency_ms"] = record.latency_ms;
  WriteLine(Dump(line));
}

void JsonLogger::WriteLine(const std::string& line) {
  std::string text = line;
  text += '\n';
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
