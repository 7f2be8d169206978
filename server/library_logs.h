// LibraryLogRoute: gRPC's and protobuf's own log messages as the sidecar's JSON lines.
//
// Both libraries write free text to stderr by default: gRPC its errors, protobuf its complaint
// about a request string that is not UTF-8, which any caller can provoke. That would break the
// sidecar's one JSON object per line. While a LibraryLogRoute exists, their messages go to its
// JsonLogger instead, as {"level", "msg", "source": "grpc" or "protobuf", "file", "line"}. The
// libraries' messages name fields, peers and errors; the sidecar never hands them a secret value
// to log, and their verbose tracing (GRPC_TRACE) stays off unless an operator turns it on.
//
// Thread safety: the libraries may log from any thread at any time; construct and destroy the
// route on one thread, one route at a time.
#ifndef SECRET_RESOLVER_SERVER_LIBRARY_LOGS_H_
#define SECRET_RESOLVER_SERVER_LIBRARY_LOGS_H_

#include "server/json_log.h"

namespace secret_resolver {

class LibraryLogRoute {
 public:
  // Routes both libraries' messages to `log`, which must outlive the route.
  explicit LibraryLogRoute(JsonLogger* log);
  // Back to text on stderr: protobuf's own handler, and gRPC's format (gRPC's default function
  // is not public, so the route's function stays installed and writes text).
  ~LibraryLogRoute();

  LibraryLogRoute(const LibraryLogRoute&) = delete;
  LibraryLogRoute& operator=(const LibraryLogRoute&) = delete;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_LIBRARY_LOGS_H_
