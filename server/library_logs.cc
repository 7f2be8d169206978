#include "server/library_logs.h"

#include <cstdio>
#include <mutex>
#include <shared_mutex>
#include <string>

#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace secret_resolver {
namespace {

// The route's logger, null when there is none. Readers are the libraries' logging threads; the
// lock keeps a message from reaching a logger that is being unrouted. Never destroyed: a
// library thread may still log while the process exits.
std::shared_mutex& RouteMutex() {
  static auto* const mu = new std::shared_mutex();
  return *mu;
}
JsonLogger* route_log = nullptr;
google::protobuf::LogHandler* protobuf_default = nullptr;

// `fatal`: the process is about to die, so the line is written before this returns.
void Write(LogLevel level, bool fatal, const char* source, const char* file, int line,
           absl::string_view message) {
  std::shared_lock<std::shared_mutex> lock(RouteMutex());
  if (route_log == nullptr) {  // a message that raced the route's end
    std::fprintf(stderr, "%s %s:%d] %.*s\n", source, file, line,
                 static_cast<int>(message.size()), message.data());
    return;
  }
  const LogField fields[] = {LogField("source", source), LogField("file", file),
                             LogField("line", line), LogField("fatal", true)};
  route_log->Log(level, message, absl::MakeConstSpan(fields, fatal ? 4 : 3));
  if (fatal) route_log->Flush();
}

void FromGrpc(gpr_log_func_args* args) {
  const LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR  ? LogLevel::kError
                         : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                   : LogLevel::kDebug;
  // GPR_ASSERT logs this, then aborts.
  const bool fatal = absl::StartsWith(args->message, "assertion failed");
  Write(level, fatal, "grpc", args->file, args->line, args->message);
}

void FromProtobuf(google::protobuf::LogLevel severity, const char* file, int line,
                  const std::string& message) {
  const LogLevel level = severity == google::protobuf::LOGLEVEL_INFO      ? LogLevel::kInfo
                         : severity == google::protobuf::LOGLEVEL_WARNING ? LogLevel::kWarning
                                                                          : LogLevel::kError;
  Write(level, severity == google::protobuf::LOGLEVEL_FATAL, "protobuf", file, line, message);
}

}  // namespace

LibraryLogRoute::LibraryLogRoute(JsonLogger* log) {
  {
    std::unique_lock<std::shared_mutex> lock(RouteMutex());
    route_log = log;
  }
  protobuf_default = google::protobuf::SetLogHandler(&FromProtobuf);
  gpr_set_log_function(&FromGrpc);
}

LibraryLogRoute::~LibraryLogRoute() {
  google::protobuf::SetLogHandler(protobuf_default);
  gpr_set_log_function(nullptr);  // gRPC's own function again
  std::unique_lock<std::shared_mutex> lock(RouteMutex());
  route_log = nullptr;
}

}  // namespace secret_resolver
