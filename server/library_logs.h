// LibraryLogRoute: gRPC's and protobuf's own log messages as the sidecar's JSON lines.
//
// Both libraries write free text to stderr by default: gRPC its errors, protobuf its complaint
// about a request string that is not UTF-8, which any caller can provoke. That would break the
// sidecar's one JSON object per line. While a LibraryLogRoute exists, their messages go to its
// JsonLogger instead, as {"level", "msg", "source": "grpc" or "protobuf", "file", "line"}. A
// message the process dies after (a failed gRPC assertion, protobuf's FATAL) is marked "fatal"
// and written before the call returns, not left in the logger's buffer. The libraries' messages
// name fields, peers and errors; the sidecar never hands them a secret value to log. (gRPC's
// tracing, GRPC_TRACE, prints request headers when an operator turns it on.)
//
// Thread safety: the libraries may log from any thread; construct the route before the gRPC
// servers start and destroy it after they are gone, one route at a time.
#ifndef SECRET_RESOLVER_SERVER_LIBRARY_LOGS_H_
#define SECRET_RESOLVER_SERVER_LIBRARY_LOGS_H_

#include "server/json_log.h"

namespace secret_resolver {

class LibraryLogRoute {
 public:
  // Routes both libraries' messages to `log`, which must outlive the route.
  explicit LibraryLogRoute(JsonLogger* log);
  // Back to both libraries' own text on stderr.
  ~LibraryLogRoute();

  LibraryLogRoute(const LibraryLogRoute&) = delete;
  LibraryLogRoute& operator=(const LibraryLogRoute&) = delete;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_LIBRARY_LOGS_H_
