#include "server/watch_call.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <grpcpp/alarm.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "resolver/access_policy.h"
#include "server/status_mapping.h"

namespace secret_resolver {

using secretresolver::v1::WatchSecretsEvent;

namespace {
constexpr size_t kMaxQueuedChanges = 1024;
}  // namespace

WatchHub::WatchHub(SecretStore* store, WatchLimits limits)
    : store_(store), limits_(limits), thread_([this] { Run(); }) {}

WatchHub::~WatchHub() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_.notify_all();
  thread_.join();
}

void WatchHub::OnChange(const SecretChange& change) {
  if (change.feed_lost) return;  // the resync that follows the recovery sends what was missed
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (subscribers_.empty()) return;
    if (jobs_.size() >= kMaxQueuedChanges) {
      jobs_.erase(std::remove_if(jobs_.begin(), jobs_.end(),
                                 [](const Job& job) { return job.initial_for == 0; }),
                  jobs_.end());
      jobs_.push_back(Job{SecretChange::Resync("too many changes queued"), 0});
    } else {
      jobs_.push_back(Job{change, 0});
    }
  }
  work_.notify_one();
}

void WatchHub::BeginDrain() {
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
  for (auto& [id, subscriber] : subscribers_) {
    subscriber->End(absl::UnavailableError("the sidecar is shutting down"));
  }
}

absl::StatusOr<uint64_t> WatchHub::Add(WatchSubscriber* subscriber) {
  const size_t per_caller_limit = std::max<size_t>(1, limits_.max_streams / 4);
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (draining_) return absl::UnavailableError("the sidecar is shutting down");
    if (subscribers_.size() >= limits_.max_streams) {
      return absl::ResourceExhaustedError(
          absl::StrCat("too many WatchSecrets streams (limits.max_watch_streams is ",
                       limits_.max_streams, "); retry with backoff"));
    }
    size_t& held = per_caller_[subscriber->session().caller];
    if (held >= per_caller_limit) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "too many WatchSecrets streams for this caller (a quarter of "
          "limits.max_watch_streams, ",
          per_caller_limit, "); retry with backoff"));
    }
    ++held;
    id = next_id_++;
    subscribers_.emplace(id, subscriber);
    jobs_.push_back(Job{SecretChange(), id});
  }
  work_.notify_one();
  return id;
}

void WatchHub::Remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = subscribers_.find(id);
  if (it == subscribers_.end()) return;
  auto held = per_caller_.find(it->second->session().caller);
  if (held != per_caller_.end() && --held->second == 0) per_caller_.erase(held);
  subscribers_.erase(it);
}

void WatchHub::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    const Job job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    Process(job);
    lock.lock();
  }
}

void WatchHub::Process(const Job& job) {
  // The (stack, name) pairs to look up, read under the lock; looked up without it.
  std::set<std::pair<std::string, std::string>> targets;
  if (job.initial_for != 0 || job.change.resync) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, subscriber] : subscribers_) {
      if (job.initial_for != 0 && id != job.initial_for) continue;
      const WatchSession& session = subscriber->session();
      for (const WatchSession::Ref& ref : session.refs) {
        targets.emplace(CanonicalStack(session.stack), ref.name);
      }
    }
  } else {
    targets.emplace(job.change.stack, job.change.name);
  }
  for (const auto& [stack, name] : targets) Deliver(stack, name, job.initial_for);
}

void WatchHub::Deliver(const std::string& stack, const std::string& name, uint64_t only) {
  const absl::StatusOr<SecretMetadata> metadata = store_->GetMetadata(stack, name);
  const bool deleted = !metadata.ok() && metadata.status().code() == absl::StatusCode::kNotFound;
  // A first event the store cannot answer now carries the version the check read.
  if (!metadata.ok() && !deleted && only == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, subscriber] : subscribers_) {
    if (only != 0 && id != only) continue;
    const WatchSession& session = subscriber->session();
    if (!SameStack(session.stack, stack)) continue;
    for (const WatchSession::Ref& ref : session.refs) {
      if (ref.name != name) continue;
      WatchSecretsEvent event;
      event.set_ref_key(ref.key);
      event.set_name(ref.name);
      event.set_deleted(deleted);
      if (metadata.ok()) {
        event.set_version(metadata->version);
      } else if (!deleted) {
        event.set_version(ref.version);
      }
      subscriber->Push(std::move(event));
    }
  }
}

namespace {

// One WatchSecrets stream. Until it is registered with the hub only one thread touches it at a
// time (the queue's, then a pool thread's); from then on its state is under `mu_`, as the
// hub's thread pushes events and every completion comes on the queue's thread. Each push or
// end wakes the queue's thread through an alarm, which writes one pending event at a time or
// finishes. The call is deleted only once gRPC returned its finish and done tags and no alarm
// is pending.
class WatchCall final : public QueueTag, public WatchSubscriber {
 public:
  static void Request(WatchStreams* streams, grpc::ServerCompletionQueue* queue) {
    auto* call = new WatchCall(streams, queue);
    streams->request(&call->context_, &call->request_, &call->writer_, queue, call);
  }

  void Proceed(bool ok) override {
    if (!matched_) {
      if (!ok) {
        delete this;  // shutting down, never matched: no done tag comes
        return;
      }
      matched_ = true;
      Matched();
      return;
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (finishing_) {
      finish_returned_ = true;
      CompleteIfDone(&lock);
      return;
    }
    writing_ = false;
    if (!ok && !end_status_.has_value()) end_status_ = absl::CancelledError("the caller went away");
    Pump();
  }

  const WatchSession& session() const override { return session_; }

  void Push(WatchSecretsEvent event) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (finishing_ || end_status_.has_value()) return;
    if (pending_.size() >= streams_->hub->limits().max_pending_events) {
      pending_.clear();
      end_status_ = absl::ResourceExhaustedError(absl::StrCat(
          "WatchSecrets: the caller read too slowly (more than ",
          streams_->hub->limits().max_pending_events, " events pending); reconnect"));
      // A write stuck on the reader's full window would hold the stream: no status can reach
      // such a reader anyway.
      if (writing_) context_.TryCancel();
    } else {
      pending_.push_back(std::move(event));
    }
    Wake();
  }

  void End(const absl::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (finishing_ || end_status_.has_value()) return;
    end_status_ = status;
    Wake();
  }

  ~WatchCall() override { streams_->call_ended(); }

 private:
  WatchCall(WatchStreams* streams, grpc::ServerCompletionQueue* queue)
      : streams_(streams),
        queue_(queue),
        writer_(&context_),
        done_tag_(this, &WatchCall::OnDone),
        wake_tag_(this, &WatchCall::OnWake),
        expiry_tag_(this, &WatchCall::OnExpiry) {
    streams_->call_started();
    context_.AsyncNotifyWhenDone(&done_tag_);
  }

  // A tag that runs one of the call's methods with the operation's outcome.
  class Tag final : public QueueTag {
   public:
    Tag(WatchCall* call, void (WatchCall::*method)(bool)) : call_(call), method_(method) {}
    void Proceed(bool ok) override { (call_->*method_)(ok); }

   private:
    WatchCall* const call_;
    void (WatchCall::*const method_)(bool);
  };

  void Matched() {
    start_ = absl::Now();
    if (streams_->is_draining()) {
      FinishNow(absl::UnavailableError("the sidecar is shutting down"));
      return;
    }
    Request(streams_, queue_);  // keep a stream of this kind requested
    if (streams_->hub == nullptr) {
      FinishNow(absl::UnimplementedError("WatchSecrets is not served here"));
      return;
    }
    auto request = std::make_shared<secretresolver::v1::WatchSecretsRequest>();
    bool parsed = false;
    {
      grpc::ProtoBufferReader reader(&request_);
      parsed = reader.status().ok() && request->ParseFromZeroCopyStream(&reader);
    }
    request_.Clear();
    if (!parsed) {
      FinishNow(absl::InvalidArgumentError("WatchSecrets: the request does not parse"));
      return;
    }
    const absl::Time deadline = absl::FromChrono(context_.deadline());
    const bool accepted = streams_->dispatch([this, request, deadline] {
      const CallCredentials credentials = streams_->credentials_of(context_);
      Started(streams_->handler->StartWatch(credentials, *request, deadline));
    });
    if (!accepted) {
      FinishNow(streams_->is_draining()
                    ? absl::UnavailableError("the sidecar is shutting down")
                    : absl::ResourceExhaustedError(
                          "the sidecar is overloaded; retry with backoff"));
    }
  }

  // On the pool: registers the checked stream with the hub, which sends the first events, and
  // sets the alarm for the token's expiry.
  void Started(absl::StatusOr<WatchSession> session) {
    if (!session.ok()) {
      FinishNow(session.status());
      return;
    }
    session_ = *std::move(session);
    // Not under mu_: the hub takes its lock before a stream's.
    absl::StatusOr<uint64_t> id = streams_->hub->Add(this);
    std::lock_guard<std::mutex> lock(mu_);
    if (!id.ok()) {
      end_status_ = id.status();
      Pump();
      return;
    }
    id_ = *id;
    // A drain may have ended the stream since it registered: then no alarm is set any more.
    if (!finishing_ && !end_status_.has_value() && session_.expires != absl::InfiniteFuture()) {
      expiry_pending_ = true;
      expiry_alarm_.Set(queue_, absl::ToChronoTime(session_.expires), &expiry_tag_);
    }
    if (context_.IsCancelled() && !end_status_.has_value()) {
      end_status_ = absl::CancelledError("the caller went away");
      Pump();
    }
  }

  // Before registration (one thread): finishes with `status`.
  void FinishNow(const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    end_status_ = status;
    Pump();
  }

  void OnDone(bool) {
    std::unique_lock<std::mutex> lock(mu_);
    done_returned_ = true;
    if (id_ != 0 && !end_status_.has_value()) {
      end_status_ = absl::CancelledError("the caller went away");
      Pump();
    }
    CompleteIfDone(&lock);
  }

  void OnWake(bool) {
    std::unique_lock<std::mutex> lock(mu_);
    wake_pending_ = false;
    Pump();
    CompleteIfDone(&lock);
  }

  void OnExpiry(bool ok) {
    std::unique_lock<std::mutex> lock(mu_);
    expiry_pending_ = false;
    if (ok && !end_status_.has_value()) {
      end_status_ = absl::UnauthenticatedError(
          "the access token expired; reconnect with a fresh token");
    }
    Pump();
    CompleteIfDone(&lock);
  }

  // Under mu_: lets the queue's thread write or finish (at most one alarm pending).
  void Wake() {
    if (wake_pending_ || finishing_) return;
    wake_pending_ = true;
    wake_alarm_.Set(queue_, gpr_now(GPR_CLOCK_MONOTONIC), &wake_tag_);
  }

  // Under mu_, with no write outstanding: finishes if the stream is to end, otherwise writes
  // the next pending event.
  void Pump() {
    if (finishing_ || writing_) return;
    if (end_status_.has_value()) {
      finishing_ = true;
      sent_code_ = end_status_->code();
      if (expiry_pending_) expiry_alarm_.Cancel();
      writer_.Finish(ToGrpcStatus(*end_status_), this);
      return;
    }
    if (pending_.empty()) return;
    const std::string bytes = pending_.front().SerializeAsString();
    pending_.pop_front();
    const grpc::Slice slice(bytes);
    out_buffer_ = grpc::ByteBuffer(&slice, 1);
    writing_ = true;
    writer_.Write(out_buffer_, this);
  }

  // Deletes the call once nothing of gRPC's refers to it any more.
  void CompleteIfDone(std::unique_lock<std::mutex>* lock) {
    if (!finish_returned_ || !done_returned_ || wake_pending_ || expiry_pending_) return;
    lock->unlock();
    if (id_ != 0) streams_->hub->Remove(id_);
    if (streams_->observer) {
      const bool died_first = context_.IsCancelled() &&
                              sent_code_ != absl::StatusCode::kResourceExhausted;
      streams_->observer(kName, died_first ? absl::StatusCode::kCancelled : sent_code_,
                         absl::Now() - start_);
    }
    delete this;
  }

  static constexpr absl::string_view kName = "WatchSecrets";

  WatchStreams* const streams_;
  grpc::ServerCompletionQueue* const queue_;
  grpc::ServerContext context_;
  grpc::ByteBuffer request_;
  grpc::ServerAsyncWriter<grpc::ByteBuffer> writer_;
  Tag done_tag_;
  Tag wake_tag_;
  Tag expiry_tag_;
  grpc::Alarm wake_alarm_;
  grpc::Alarm expiry_alarm_;
  bool matched_ = false;  // the queue's thread only
  WatchSession session_;  // set before registration, then read only
  absl::Time start_;

  std::mutex mu_;
  uint64_t id_ = 0;  // the hub's id, once registered
  std::deque<WatchSecretsEvent> pending_;
  std::optional<absl::Status> end_status_;
  bool writing_ = false;
  bool finishing_ = false;
  bool wake_pending_ = false;
  bool expiry_pending_ = false;
  bool finish_returned_ = false;
  bool done_returned_ = false;
  absl::StatusCode sent_code_ = absl::StatusCode::kUnknown;
  grpc::ByteBuffer out_buffer_;
};

}  // namespace

void RequestWatchCall(WatchStreams* streams, grpc::ServerCompletionQueue* queue) {
  WatchCall::Request(streams, queue);
}

}  // namespace secret_resolver
