// SecretWatch: the client library's side of WatchSecrets (contract.md section 10), a callback
// per change of a watched secret (never a value), made by SecretResolverClient::WatchSecrets.
//
// A thread of the watch's own keeps one WatchSecrets stream open, with a fresh token from the
// client's token provider on every connection, and calls `on_event` for each event, in order.
// When the stream ends the watch reconnects after a backoff (the client's RetryPolicy, full
// jitter, counting failures since the last event, so the token's expiry or the sidecar's restart
// costs one short wait); every new stream first reports each ref's current version again, so a
// change made while disconnected is not missed. A refusal that a retry would not change
// (PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED) stops the watch and goes to
// `on_end`. Destroying the handle stops the watch: no callback runs once the destructor returned.
//
// Thread safety: callbacks run on the watch's thread, one at a time; they must not destroy the
// handle. The client that made the watch must outlive it.
#ifndef SECRET_RESOLVER_CLIENT_SECRET_WATCH_H_
#define SECRET_RESOLVER_CLIENT_SECRET_WATCH_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grpc {
class Channel;
class ClientContext;
class Status;
}  // namespace grpc

namespace secret_resolver {
namespace client {

// One change: the secret `ref_key` names is now at `version`, or deleted (version 0).
struct WatchEvent {
  std::string ref_key;
  std::string name;
  int64_t version = 0;
  bool deleted = false;
};

using WatchCallback = std::function<void(const WatchEvent&)>;
// The watch stopped for good, with the sidecar's refusal.
using WatchEndCallback = std::function<void(const absl::Status&)>;

class SecretWatch {
 public:
  // What the watch asks of its client: the metadata of one connection (the token), and the
  // wait before reconnection attempt n (1-based).
  struct Hooks {
    std::function<absl::StatusOr<std::vector<std::pair<std::string, std::string>>>()> metadata;
    std::function<absl::Duration(int)> backoff;
  };

  // Starts watching `refs` of `stack` on `channel`. `on_end` may be empty.
  SecretWatch(std::shared_ptr<grpc::Channel> channel, Hooks hooks, std::string stack,
              std::map<std::string, std::string> refs, WatchCallback on_event,
              WatchEndCallback on_end);
  // Stops the watch and waits for its thread.
  ~SecretWatch();

  SecretWatch(const SecretWatch&) = delete;
  SecretWatch& operator=(const SecretWatch&) = delete;

 private:
  void Run();
  // One stream until it ends; true if it delivered an event.
  bool Stream(grpc::Status* status);

  const std::shared_ptr<grpc::Channel> channel_;
  const Hooks hooks_;
  const std::string stack_;
  const std::map<std::string, std::string> refs_;
  const WatchCallback on_event_;
  const WatchEndCallback on_end_;
  std::mutex mu_;
  std::condition_variable stop_signal_;
  bool stopped_ = false;                           // guarded by mu_
  std::shared_ptr<grpc::ClientContext> current_;  // guarded by mu_: the open stream's
  std::thread thread_;
};

}  // namespace client
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_CLIENT_SECRET_WATCH_H_
