// What every call on the gRPC services' completion queues shares (grpc_services.cc and
// redact_call.cc): the tag type one polling loop serves every kind of call through, and the
// observer that hears of each call once it is over.
//
// Thread safety: Proceed runs on the thread that took the tag from its queue. The observer may
// be called from any queue thread, concurrently.
#ifndef SECRET_RESOLVER_SERVER_QUEUE_TAG_H_
#define SECRET_RESOLVER_SERVER_QUEUE_TAG_H_

#include <functional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace secret_resolver {

class QueueTag {
 public:
  virtual ~QueueTag() = default;
  // The queue returned this tag; `ok` is the operation's outcome.
  virtual void Proceed(bool ok) = 0;
};

// Told of every call once it is over: the method name, the status code its caller got and how
// long it took. A call whose deadline passed, or which was cancelled, before its answer was sent
// is told as DEADLINE_EXCEEDED or CANCELLED, whatever the handler had answered.
using CallObserver =
    std::function<void(absl::string_view method, absl::StatusCode code, absl::Duration latency)>;

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_QUEUE_TAG_H_
