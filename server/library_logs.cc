#include "server/library_logs.h"

#include <cstdio>
#include <mutex>
#include <shared_mutex>
#include <string>

#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>

#include "absl/strings/string_view.h"

namespace secret_resolver {
namespace {

// The route's logger, null when there is none. Readers are the libraries' logging threads; the
// lock keeps a message from reaching a logger that is being unrouted.
std::shared_mutex route_mu;
JsonLogger* route_log = nullptr;
google::protobuf::LogHandler* protobuf_default = nullptr;

void Write(LogLevel level, const char* source, const char* file, int line,
           absl::string_view message) {
  std::shared_lock<std::shared_mutex> lock(route_mu);
  if (route_log != nullptr) {
    route_log->Log(level, message,
                   {LogField("source", source), LogField("file", file), LogField("line", line)});
    return;
  }
  std::fprintf(stderr, "%s %s:%d] %.*s\n", source, file, line, static_cast<int>(message.size()),
               message.data());
}

void FromGrpc(gpr_log_func_args* args) {
  const LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR  ? LogLevel::kError
                         : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                   : LogLevel::kDebug;
  Write(level, "grpc", args->file, args->line, args->message);
}

void FromProtobuf(google::protobuf::LogLevel severity, const char* file, int line,
                  const std::string& message) {
  const LogLevel level = severity == google::protobuf::LOGLEVEL_INFO      ? LogLevel::kInfo
                         : severity == google::protobuf::LOGLEVEL_WARNING ? LogLevel::kWarning
                                                                          : LogLevel::kError;
  Write(level, "protobuf", file, line, message);
}

}  // namespace

LibraryLogRoute::LibraryLogRoute(JsonLogger* log) {
  {
    std::unique_lock<std::shared_mutex> lock(route_mu);
    route_log = log;
  }
  protobuf_default = google::protobuf::SetLogHandler(&FromProtobuf);
  gpr_set_log_function(&FromGrpc);
}

LibraryLogRoute::~LibraryLogRoute() {
  google::protobuf::SetLogHandler(protobuf_default);
  std::unique_lock<std::shared_mutex> lock(route_mu);
  route_log = nullptr;
}

}  // namespace secret_resolver
