#include "resolver/upstream/upstream_change_feed.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "secretresolver/v1/changes.grpc.pb.h"

namespace secret_resolver {

using secretresolver::v1::SecretChangeEvent;
using secretresolver::v1::SecretChanges;

grpc::ChannelArguments UpstreamChannelArguments() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  // gRPC's name for the shortest time a connection attempt is given (its default is 20 s).
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 3000);
  // A gRPC server (the central tier too) refuses pings more often than every 5 minutes on a
  // connection without data, and closes the connection after a few.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 300000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  return args;
}

UpstreamChangeFeed::UpstreamChangeFeed(ChannelFactory channels, ChangeListener listener,
                                       UpstreamChangeFeedOptions options)
    : channels_(std::move(channels)),
      listener_(std::move(listener)),
      options_(std::move(options)),
      thread_([this] { Run(); }),
      watchdog_([this] { WatchSilence(); }) {}

UpstreamChangeFeed::UpstreamChangeFeed(std::shared_ptr<grpc::Channel> channel,
                                       ChangeListener listener,
                                       UpstreamChangeFeedOptions options)
    : UpstreamChangeFeed([channel] { return channel; }, std::move(listener),
                         std::move(options)) {}

UpstreamChangeFeed::~UpstreamChangeFeed() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (current_ != nullptr) current_->TryCancel();
  }
  stopped_.notify_all();
  timed_.notify_all();
  thread_.join();
  watchdog_.join();
}

void UpstreamChangeFeed::Run() {
  absl::BitGen random;
  absl::Duration backoff = options_.initial_backoff;
  for (;;) {
    bool delivered = false;
    const absl::Status ended = Stream(channels_(), &delivered);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    if (options_.on_stream_end) options_.on_stream_end(ended);
    if (!lost_) {
      lost_ = true;
      listener_(SecretChange::FeedLost(absl::StrCat(
          "the upstream change stream broke (", absl::StatusCodeToString(ended.code()),
          "); changes may go unannounced until it is back")));
    }
    if (delivered) backoff = options_.initial_backoff;
    const int64_t most = absl::ToInt64Nanoseconds(backoff);
    if (!Wait(absl::Nanoseconds(absl::Uniform<int64_t>(random, most / 2, most + 1)))) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status UpstreamChangeFeed::Stream(const std::shared_ptr<grpc::Channel>& channel,
                                        bool* delivered) {
  grpc::ClientContext context;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::CancelledError("stopping");
    current_ = &context;
    silence_limit_ = {};
    silenced_ = false;
  }
  std::unique_ptr<SecretChanges::Stub> stub = SecretChanges::NewStub(channel);
  secretresolver::v1::WatchChangesRequest request;
  request.set_heartbeats(true);
  std::unique_ptr<grpc::ClientReader<SecretChangeEvent>> reader =
      stub->WatchChanges(&context, request);
  SecretChangeEvent event;
  while (reader->Read(&event)) {
    *delivered = true;
    Heard(event);
    switch (event.kind()) {
      case SecretChangeEvent::HEARTBEAT:
        break;
      case SecretChangeEvent::CHANGED:
      case SecretChangeEvent::DELETED:
        listener_(SecretChange::Of(event.stack(), event.name()));
        break;
      case SecretChangeEvent::FEED_LOST:
        if (!lost_) {
          lost_ = true;
          listener_(SecretChange::FeedLost("the upstream's own change feed is lost"));
        }
        break;
      default:  // RESYNC, and kinds this client does not know: drop everything
        lost_ = false;
        listener_(SecretChange::Resync("the upstream change stream (re)started or resynced"));
        break;
    }
  }
  const grpc::Status status = reader->Finish();
  std::lock_guard<std::mutex> lock(mu_);
  current_ = nullptr;
  // The watchdog's cancellation, not the server's end of a stream it cancelled at that moment.
  if (silenced_ && status.error_code() == grpc::StatusCode::CANCELLED) {
    return absl::DeadlineExceededError(absl::StrCat(
        "no event for ", absl::FormatDuration(absl::FromChrono(silence_limit_)),
        " (three heartbeat intervals, at least 1s): the connection is taken for dead"));
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

void UpstreamChangeFeed::Heard(const SecretChangeEvent& event) {
  std::lock_guard<std::mutex> lock(mu_);
  last_heard_ = std::chrono::steady_clock::now();
  if (event.kind() != SecretChangeEvent::HEARTBEAT || event.heartbeat_interval_ms() <= 0) return;
  const bool was_timed = silence_limit_ != std::chrono::steady_clock::duration{};
  // Three of the server's intervals (within the range its configuration allows, 100 ms to
  // 1 min), and never under a second: a loaded machine may well pause a few hundred ms.
  silence_limit_ = std::max<std::chrono::steady_clock::duration>(
      3 * std::chrono::milliseconds(std::clamp<int64_t>(event.heartbeat_interval_ms(), 100, 60000)),
      std::chrono::seconds(1));
  if (!was_timed) timed_.notify_all();
}

void UpstreamChangeFeed::WatchSilence() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (current_ == nullptr || silenced_ ||
        silence_limit_ == std::chrono::steady_clock::duration{}) {
      timed_.wait(lock);
      continue;
    }
    const std::chrono::steady_clock::time_point due = last_heard_ + silence_limit_;
    if (std::chrono::steady_clock::now() < due) {
      timed_.wait_until(lock, due);
      continue;
    }
    silenced_ = true;
    current_->TryCancel();
  }
}

bool UpstreamChangeFeed::Wait(absl::Duration d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !stopped_.wait_for(lock, absl::ToChronoNanoseconds(d), [this] { return stopping_; });
}

}  // namespace secret_resolver
