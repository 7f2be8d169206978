// WatchChanges (secretresolver.v1.SecretChanges/WatchChanges, proto/secretresolver/v1/
// changes.proto): the change stream a central secret-resolver serves to the sidecars that fetch
// values from it (store.upstream with change_stream: true), so that their caches drop a
// changed secret within about a second. Events name (stack, name, version), never a value.
//
// ChangeHub takes the store's change feed (SecretStore::Watch, routed by server/sidecar.cc
// after the sidecar's own cache was invalidated) and fans it out on a thread of its own,
// reading each changed secret's version from the store's metadata (SecretStore::GetMetadata;
// NOT_FOUND: DELETED; another error: CHANGED with version 0), so no gRPC thread blocks on the
// store. A stream gets RESYNC first (its caller may have missed changes while it was not
// connected), then CHANGED/DELETED per change, and FEED_LOST/RESYNC as the store's own feed is
// lost and back, in the order the feed reported them. More than 1024 changes queued collapse
// into one RESYNC. A stream whose request asked for heartbeats also gets HEARTBEAT (with the
// interval) right after its RESYNC and then every heartbeat_interval, from a thread of their own
// that never waits on the store, so that its caller can tell a quiet stream from a dead
// connection; heartbeats are not counted as events sent.
//
// Callers are admitted by their verified mTLS client certificate alone (ChangeHub::Admit: a SAN
// or the subject CN listed in change_stream.allowed_clients); plaintext, Unix-socket and
// unlisted callers are refused PERMISSION_DENIED, and so is everyone when no hub is built
// (allowed_clients empty). A stream ends UNAVAILABLE on drain (ChangeHub::BeginDrain) and
// RESOURCE_EXHAUSTED when `max_streams` are open or more than `max_pending_events` events wait
// for a slow reader (cancelled instead when a write is stuck on the reader's full
// flow-control window: no status could reach it). Each admitted stream's start and end, and
// each refusal, are audit lines naming the client identity; the hub counts open streams and
// events sent for the metrics.
//
// Thread safety: ChangeHub's methods from any thread. RequestChangeCall from the thread that
// starts the services; each stream then runs on its queue's thread and is fed by the hub's
// two threads (changes, heartbeats) under its own lock (the hub's lock is always taken before
// a stream's).
#ifndef SECRET_RESOLVER_SERVER_CHANGE_STREAM_H_
#define SECRET_RESOLVER_SERVER_CHANGE_STREAM_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/async_stream.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "resolver/secret_store.h"
#include "secretresolver/v1/changes.pb.h"
#include "server/json_log.h"
#include "server/queue_tag.h"

namespace secret_resolver {

struct ChangeStreamOptions {
  // Client identities (SAN or CN of a verified client certificate) admitted.
  std::vector<std::string> allowed_clients;
  // Streams open at once (change_stream.max_streams).
  size_t max_streams = 1024;
  // Events waiting for one stream's reader before the stream is dropped.
  size_t max_pending_events = 1024;
  // How often a stream that asked for heartbeats gets one (change_stream.heartbeat_interval);
  // clamped to [kMinHeartbeatInterval, kMaxHeartbeatInterval], as the configuration is.
  absl::Duration heartbeat_interval = absl::Seconds(5);
};

inline constexpr absl::Duration kMinHeartbeatInterval = absl::Milliseconds(100);
inline constexpr absl::Duration kMaxHeartbeatInterval = absl::Minutes(1);

// What the hub needs of a registered stream. Both calls come under the hub's lock.
class ChangeSubscriber {
 public:
  virtual ~ChangeSubscriber() = default;
  // Queues `event` for the caller.
  virtual void Push(const secretresolver::v1::SecretChangeEvent& event) = 0;
  // Ends the stream with `status` once what is being written is written.
  virtual void End(const absl::Status& status) = 0;
};

class ChangeHub {
 public:
  // `store` must outlive the hub.
  ChangeHub(SecretStore* store, ChangeStreamOptions options);
  // Stops the hub's threads. Every stream must be removed by then.
  ~ChangeHub();

  ChangeHub(const ChangeHub&) = delete;
  ChangeHub& operator=(const ChangeHub&) = delete;

  // The allowed client identity that `auth`'s verified certificate carries, or
  // PERMISSION_DENIED (no verified client certificate; none of its names is allowed).
  absl::StatusOr<std::string> Admit(const grpc::AuthContext& auth) const;

  // Queues a change for the hub's thread; never blocks on the store.
  void OnChange(const SecretChange& change);

  // Ends every stream UNAVAILABLE, and refuses those that come later.
  void BeginDrain();

  // Registers a stream and queues RESYNC for it: its id, or RESOURCE_EXHAUSTED (max_streams),
  // UNAVAILABLE (drain). With `heartbeats`, a HEARTBEAT follows the RESYNC at once, and another
  // comes every heartbeat_interval.
  absl::StatusOr<uint64_t> Add(ChangeSubscriber* subscriber, bool heartbeats);
  // After Remove returns, the hub no longer calls `id`'s subscriber.
  void Remove(uint64_t id);

  // One event went to a caller.
  void CountSent() { events_sent_.fetch_add(1, std::memory_order_relaxed); }

  const ChangeStreamOptions& options() const { return options_; }
  // For the metrics: streams registered now; events sent since start.
  size_t active_streams() const;
  uint64_t events_sent() const { return events_sent_.load(std::memory_order_relaxed); }

 private:
  void Run();
  // Sends `change` to every registered stream (reading its version first for a change to one
  // secret).
  void Deliver(const SecretChange& change);
  void PushToAll(const secretresolver::v1::SecretChangeEvent& event);  // under mu_
  // The heartbeat thread: pushes a HEARTBEAT to each stream that asked, every interval, never
  // waiting on the store (the other thread may be).
  void RunHeartbeats();
  secretresolver::v1::SecretChangeEvent Heartbeat() const;
  // options_.heartbeat_interval within [kMinHeartbeatInterval, kMaxHeartbeatInterval].
  absl::Duration HeartbeatInterval() const;

  SecretStore* const store_;
  const ChangeStreamOptions options_;
  const std::set<std::string> allowed_;
  mutable std::mutex mu_;
  std::condition_variable work_;            // jobs_ or stopping_: for Run
  std::condition_variable heartbeat_stop_;  // stopping_: for RunHeartbeats
  bool stopping_ = false;  // guarded by mu_
  bool draining_ = false;  // guarded by mu_
  std::deque<SecretChange> jobs_;  // guarded by mu_
  uint64_t next_id_ = 1;  // guarded by mu_
  struct Subscriber {
    ChangeSubscriber* stream;
    bool heartbeats;
  };
  std::map<uint64_t, Subscriber> subscribers_;  // guarded by mu_
  std::atomic<uint64_t> events_sent_{0};
  std::thread thread_;
  std::thread heartbeat_thread_;
};

// What WatchChanges streams need from the services that host them.
struct ChangeStreams {
  using Writer = grpc::ServerAsyncWriter<grpc::ByteBuffer>;

  ChangeHub* hub = nullptr;  // null: every caller is refused PERMISSION_DENIED
  JsonLogger* log = nullptr;  // the audit lines; may be null
  CallObserver observer;      // may be empty
  std::function<void(grpc::ServerContext*, grpc::ByteBuffer*, Writer*,
                     grpc::ServerCompletionQueue*, void* tag)>
      request;
  std::function<bool()> is_draining;
  std::function<void()> call_started;
  std::function<void()> call_ended;
};

// Asks `queue` for the next WatchChanges stream; each one requests the next once it arrives.
void RequestChangeCall(ChangeStreams* streams, grpc::ServerCompletionQueue* queue);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_CHANGE_STREAM_H_
