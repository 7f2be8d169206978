// WatchSecrets (secretresolver.v1.SecretResolver/WatchSecrets, contract.md section 10): a server
// stream that tells a caller when a secret one of its refs names changes, never its value.
//
// WatchHub takes the store's change feed (SecretStore::Watch, routed by server/sidecar.cc) and
// fans it out to the open streams on a thread of its own, reading each changed secret's current
// version from the store's metadata (SecretStore::GetMetadata), so no gRPC thread blocks on the
// store. A stream, once registered, gets one event per ref key with the current version (read
// after it registered, so no write between its check and its registration goes unseen); then
// one per ref naming a changed secret (NOT_FOUND from the store: `deleted`); after a resync of
// the feed, one per ref key again. Events the store cannot answer (UNAVAILABLE) are skipped; the
// resync that follows the feed's recovery sends them.
//
// A stream (WatchCall, in the completion-queue style of server/redact_call.h) is checked on the
// worker pool by ResolveHandler::StartWatch; any error finishes it with that error. Then it
// writes its pending events one at a time. It ends UNAUTHENTICATED at the token's `exp`,
// UNAVAILABLE on drain (WatchHub::BeginDrain), and RESOURCE_EXHAUSTED when more than
// `max_pending_events` events wait for a slow reader (when a write is already stuck on the
// reader's full flow-control window the stream is cancelled instead: no status could reach it).
// At most `max_streams` streams are registered, and at most a quarter of them (at least 1) per
// caller (token serviceIdentity); one more is refused RESOURCE_EXHAUSTED.
//
// Thread safety: WatchHub's methods from any thread. RequestWatchCall from the thread that
// starts the services; each stream then runs on its queue's thread, a pool thread once, and is
// fed by the hub's thread under its own lock.
#ifndef SECRET_RESOLVER_SERVER_WATCH_CALL_H_
#define SECRET_RESOLVER_SERVER_WATCH_CALL_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/async_stream.h>

#include "absl/status/status.h"
#include "resolver/secret_store.h"
#include "secretresolver/v1/resolver.pb.h"
#include "server/queue_tag.h"
#include "server/resolve_handler.h"

namespace secret_resolver {

struct WatchLimits {
  // Streams registered at once (limits.max_watch_streams); a caller may hold a quarter.
  size_t max_streams = 256;
  // Events waiting for one stream's reader before the stream is dropped.
  size_t max_pending_events = 64;
};

// What the hub needs of a registered stream. Both calls come under the hub's lock.
class WatchSubscriber {
 public:
  virtual ~WatchSubscriber() = default;
  virtual const WatchSession& session() const = 0;
  // Queues `event` for the caller.
  virtual void Push(secretresolver::v1::WatchSecretsEvent event) = 0;
  // Ends the stream with `status` once what is being written is written.
  virtual void End(const absl::Status& status) = 0;
};

class WatchHub {
 public:
  // `store` must outlive the hub.
  WatchHub(SecretStore* store, WatchLimits limits);
  // Stops the hub's thread. Every stream must be removed by then.
  ~WatchHub();

  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Queues a change for the hub's thread; never blocks on the store. More than 1024 queued
  // changes collapse into one resync.
  void OnChange(const SecretChange& change);

  // Ends every stream UNAVAILABLE, and refuses those that come later.
  void BeginDrain();

  // Registers a checked stream: its id, or RESOURCE_EXHAUSTED (a limit), UNAVAILABLE (drain).
  absl::StatusOr<uint64_t> Add(WatchSubscriber* subscriber);
  // After Remove returns, the hub no longer calls `id`'s subscriber.
  void Remove(uint64_t id);

  const WatchLimits& limits() const { return limits_; }

 private:
  struct Job {
    SecretChange change;
    uint64_t initial_for = 0;  // nonzero: send this stream every ref's current version
  };
  void Run();
  void Process(const Job& job);
  // Sends (stack, name)'s current state to the registered streams watching it (only to
  // `only` when nonzero). False when the store could not answer.
  void Deliver(const std::string& stack, const std::string& name, uint64_t only);

  SecretStore* const store_;
  const WatchLimits limits_;
  std::mutex mu_;
  std::condition_variable work_;
  bool stopping_ = false;   // guarded by mu_
  bool draining_ = false;   // guarded by mu_
  std::deque<Job> jobs_;    // guarded by mu_
  uint64_t next_id_ = 1;    // guarded by mu_
  std::map<uint64_t, WatchSubscriber*> subscribers_;  // guarded by mu_
  std::map<std::string, size_t> per_caller_;          // guarded by mu_
  std::thread thread_;
};

// What WatchSecrets streams need from the services that host them.
struct WatchStreams {
  using Writer = grpc::ServerAsyncWriter<grpc::ByteBuffer>;

  ResolveHandler* handler = nullptr;
  WatchHub* hub = nullptr;  // null: WatchSecrets is UNIMPLEMENTED
  CallObserver observer;    // may be empty
  std::function<void(grpc::ServerContext*, grpc::ByteBuffer*, Writer*,
                     grpc::ServerCompletionQueue*, void* tag)>
      request;
  std::function<CallCredentials(const grpc::ServerContext&)> credentials_of;
  // Hands a task to the worker pool; false when not taken (full, or draining).
  std::function<bool(std::function<void()>)> dispatch;
  std::function<bool()> is_draining;
  std::function<void()> call_started;
  std::function<void()> call_ended;
};

// Asks `queue` for the next WatchSecrets stream; each one requests the next once it arrives.
void RequestWatchCall(WatchStreams* streams, grpc::ServerCompletionQueue* queue);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_WATCH_CALL_H_
