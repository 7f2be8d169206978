// RedactLogs (secretresolver.v1.SecretResolver/RedactLogs, contract.md section 2): the
// bidirectional stream that redacts a caller's logs inside the sidecar, in the completion-queue
// style of grpc_services.cc, which registers the method raw and requests the streams.
//
// A stream's first message (`start`) is checked and resolved by ResolveHandler::StartRedaction,
// on the queue thread when the caches can answer it, otherwise on the worker pool; any error
// finishes the stream. Then, in turn, one chunk is read, redacted (client::RedactionStream, with
// EmitDecided, so fewer than the longest pattern's length of bytes stay held back) and answered,
// and only then is the next chunk read: a caller that does not read its answers stops its stream
// (HTTP/2 flow control holds it back) rather than making the sidecar buffer. An answer longer
// than `max_message_bytes` goes out in several responses. When the caller half-closes, what was
// held back goes out and the stream finishes OK. At most `max_streams` streams run at once; one
// more is refused RESOURCE_EXHAUSTED. Values stay in the Redactor; the held-back bytes are wiped.
//
// Shutdown: once the services drain, a stream no longer reads: EndReadingRedactStreams ends
// those waiting for a chunk, the others end once their current answer is out; what was held back
// goes out first and the stream finishes UNAVAILABLE. AbandonRedactStarts answers UNAVAILABLE the
// streams whose start is still on a (blocked) worker; that worker's answer is then dropped.
//
// Thread safety: RequestRedactCall from the thread that starts the services; each stream then
// runs on its queue's thread (and once on a pool thread), one operation at a time, except that
// EndReadingRedactStreams and AbandonRedactStarts (any thread) finish streams under `mu`.
#ifndef SECRET_RESOLVER_SERVER_REDACT_CALL_H_
#define SECRET_RESOLVER_SERVER_REDACT_CALL_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <unordered_set>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/async_stream.h>

#include "server/queue_tag.h"
#include "server/resolve_handler.h"

namespace secret_resolver {

class RedactCall;  // redact_call.cc

struct RedactLimits {
  // RedactLogs streams open at once (limits.max_redact_streams).
  size_t max_streams = 64;
  // The most bytes of redacted text in one response (limits.max_message_bytes).
  size_t max_message_bytes = size_t{1} << 20;
};

// What RedactLogs streams need from the services that host them, and share.
struct RedactStreams {
  using Stream = grpc::ServerAsyncReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;

  ResolveHandler* handler = nullptr;
  CallObserver observer;  // may be empty
  RedactLimits limits;
  // Requests the next RedactLogs stream on `queue`, returning `tag` when one arrives.
  std::function<void(grpc::ServerContext*, Stream*, grpc::ServerCompletionQueue*, void* tag)>
      request;
  // The credential metadata of a call.
  std::function<CallCredentials(const grpc::ServerContext&)> credentials_of;
  // Hands a task to the worker pool; false when not taken (full, or draining).
  std::function<bool(std::function<void()>)> dispatch;
  // A stream was matched at this time (for the drain's settling).
  std::function<void(absl::Time)> matched;
  // True once the services began to drain.
  std::function<bool()> is_draining;
  // A stream came into existence, and went; the services wait for every call to go.
  std::function<void()> call_started;
  std::function<void()> call_ended;

  std::atomic<size_t> active{0};  // streams past their limit check and not yet over

  std::mutex mu;
  std::unordered_set<RedactCall*> reading;   // guarded by mu: waiting for the next chunk
  std::unordered_set<RedactCall*> starting;  // guarded by mu: their start is on the pool
};

// Asks `queue` for the next RedactLogs stream. Each stream requests the next one once it
// arrives, so one is always requested per queue.
void RequestRedactCall(RedactStreams* streams, grpc::ServerCompletionQueue* queue);

// Once `is_draining` is true: ends every stream waiting for its next chunk (what it held back
// goes out, then UNAVAILABLE).
void EndReadingRedactStreams(RedactStreams* streams);

// Answers UNAVAILABLE every stream whose start is still on the pool (its worker blocked).
void AbandonRedactStarts(RedactStreams* streams);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_REDACT_CALL_H_
