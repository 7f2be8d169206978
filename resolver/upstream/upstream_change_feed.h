// UpstreamChangeFeed: the client of a central secret-resolver's change stream
// (secretresolver.v1.SecretChanges/WatchChanges, proto/secretresolver/v1/changes.proto). A
// sidecar whose store is that central tier (store.upstream with change_stream: true) turns its
// events into the SecretChange notifications its cache already understands, as any store's
// Watch does:
//   - CHANGED and DELETED: SecretChange::Of(stack, name);
//   - RESYNC (the first event of every stream, and the central store's feed back): Resync;
//   - FEED_LOST (the central store's own feed lost), and the stream breaking or failing to
//     start (central tier down, restarting, PERMISSION_DENIED for this client's certificate):
//     FeedLost, once per outage; the RESYNC of the next stream ends the outage.
// A broken stream is retried with jittered exponential backoff (from `initial_backoff`,
// doubling, capped at `max_backoff`; reset once a stream delivers an event).
// The feed asks for heartbeats. Once a stream has sent one (a central tier sends the first
// right after RESYNC), a silence of three of the intervals it names, and at least a second
// (15 s at the central tier's default 5 s), counts as a broken stream: a
// watchdog thread cancels it, and it is reported FeedLost and retried like any other, so a
// central tier that vanished without closing the connection (a frozen process, a dropped
// route) is noticed within seconds, not at the next keepalive ping (300 s). A server that sends
// no heartbeats (an older one) is not timed.
//
// The channel decides transport and identity: an mTLS channel whose client certificate is in
// the central tier's change_stream.allowed_clients. Give the feed a ChannelFactory: after a
// stream broke it makes the next attempt on a new channel, which re-reads rotated certificate
// files, and does not inherit the old channel's state (measured: a channel that had talked to
// a central tier before its restart had every TLS handshake with the restarted process stall
// until the connection attempt timed out, tests/integration/upstream_change_feed_test.cc,
// while a new channel connected at once). Build channels with UpstreamChannelArguments():
// with gRPC's defaults a channel that lost its server fails every call at once for up to
// 120 s of its own reconnection backoff, and a hung connection attempt lasts 20 s, so a central
// tier that is back would be seen late; and without keepalive a peer that vanished without
// closing the connection would not be noticed.
//
// Thread safety: the listener is called from the feed's own thread, one call at a time, never
// after the destructor returned. Construct and destroy from any one thread.
#ifndef SECRET_RESOLVER_RESOLVER_UPSTREAM_UPSTREAM_CHANGE_FEED_H_
#define SECRET_RESOLVER_RESOLVER_UPSTREAM_UPSTREAM_CHANGE_FEED_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "resolver/secret_store.h"
#include "secretresolver/v1/changes.pb.h"

namespace secret_resolver {

// Channel arguments for a channel to a central tier: reconnection backoff from 100 ms up to
// 5 s, a 3 s bound on each connection attempt, keepalive pings every 300 s (10 s to answer;
// a gRPC server refuses more frequent pings on a connection without data).
grpc::ChannelArguments UpstreamChannelArguments();

struct UpstreamChangeFeedOptions {
  // The first wait after a broken stream; each failure in a row doubles it, up to max_backoff.
  // Each wait is drawn uniformly from [half of it, all of it].
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // Told why each stream ended (for the operator's log); may be empty. Called on the feed's
  // thread. The status carries the server's message, never a value.
  std::function<void(const absl::Status&)> on_stream_end;
};

class UpstreamChangeFeed {
 public:
  // Makes a channel to the central tier; called on the feed's thread before the first stream
  // and before each attempt after a broken one.
  using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>()>;

  // Starts watching on a thread of its own, reporting to `listener`. Constructors do not fail:
  // a channel that does not work is retried, reported as FeedLost.
  UpstreamChangeFeed(ChannelFactory channels, ChangeListener listener,
                     UpstreamChangeFeedOptions options = UpstreamChangeFeedOptions());
  // The same on one channel for every attempt (see above for what that costs).
  UpstreamChangeFeed(std::shared_ptr<grpc::Channel> channel, ChangeListener listener,
                     UpstreamChangeFeedOptions options = UpstreamChangeFeedOptions());
  // Cancels the stream and joins the thread; the listener is not called afterwards.
  ~UpstreamChangeFeed();

  UpstreamChangeFeed(const UpstreamChangeFeed&) = delete;
  UpstreamChangeFeed& operator=(const UpstreamChangeFeed&) = delete;

 private:
  void Run();
  // One WatchChanges stream on `channel`, to its end: its status, and whether it delivered any
  // event.
  absl::Status Stream(const std::shared_ptr<grpc::Channel>& channel, bool* delivered);
  // Waits `d` unless stopped first; false when stopped.
  bool Wait(absl::Duration d);
  // Notes an event of the current stream: when it came and, for a heartbeat, its interval.
  void Heard(const secretresolver::v1::SecretChangeEvent& event);
  // The watchdog's thread: cancels the current stream once it was silent too long.
  void WatchSilence();

  const ChannelFactory channels_;
  const ChangeListener listener_;
  const UpstreamChangeFeedOptions options_;
  bool lost_ = false;  // the feed's thread only: FeedLost reported, no RESYNC since

  std::mutex mu_;
  std::condition_variable stopped_;
  // Wakes the watchdog: the current stream became timed, or the feed is stopping.
  std::condition_variable timed_;
  bool stopping_ = false;                   // guarded by mu_
  grpc::ClientContext* current_ = nullptr;  // guarded by mu_: the stream in progress
  // Guarded by mu_, about the current stream: the silence after which the watchdog cancels it
  // (zero until a heartbeat came), its last event, and whether the watchdog cancelled it.
  std::chrono::steady_clock::duration silence_limit_{};
  std::chrono::steady_clock::time_point last_heard_;
  bool silenced_ = false;
  std::thread thread_;
  std::thread watchdog_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_UPSTREAM_UPSTREAM_CHANGE_FEED_H_
