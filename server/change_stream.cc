#include "server/change_stream.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include <grpc/grpc_security_constants.h>
#include <grpcpp/alarm.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/status_mapping.h"

namespace secret_resolver {

using secretresolver::v1::SecretChangeEvent;

namespace {

constexpr size_t kMaxQueuedChanges = 1024;
// Names of a refused certificate quoted in its error and audit line.
constexpr size_t kMaxNamesQuoted = 4;

// The certificate properties a client identity is matched against: every SAN (DNS names and
// URIs among them), then the subject's CN.
constexpr const char* kIdentityProperties[] = {GRPC_X509_SAN_PROPERTY_NAME,
                                               GRPC_X509_CN_PROPERTY_NAME};

SecretChangeEvent EventOfKind(SecretChangeEvent::Kind kind) {
  SecretChangeEvent event;
  event.set_kind(kind);
  return event;
}

}  // namespace

ChangeHub::ChangeHub(SecretStore* store, ChangeStreamOptions options)
    : store_(store),
      options_(std::move(options)),
      allowed_(options_.allowed_clients.begin(), options_.allowed_clients.end()),
      thread_([this] { Run(); }),
      heartbeat_thread_([this] { RunHeartbeats(); }) {}

ChangeHub::~ChangeHub() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_.notify_all();
  heartbeat_stop_.notify_all();
  thread_.join();
  heartbeat_thread_.join();
}

absl::StatusOr<std::string> ChangeHub::Admit(const grpc::AuthContext& auth) const {
  if (!auth.IsPeerAuthenticated()) {
    return absl::PermissionDeniedError(
        "WatchChanges: the caller presented no verified client certificate; the change stream "
        "is served to mTLS clients listed in change_stream.allowed_clients");
  }
  std::vector<std::string> presented;
  for (const char* property : kIdentityProperties) {
    for (const grpc::string_ref& value : auth.FindPropertyValues(property)) {
      std::string name(value.data(), value.size());
      if (allowed_.count(name) > 0) return name;
      if (presented.size() < kMaxNamesQuoted) presented.push_back(std::move(name));
    }
  }
  return absl::PermissionDeniedError(
      absl::StrCat("WatchChanges: the client certificate (", absl::StrJoin(presented, ", "),
                   ") is not listed in change_stream.allowed_clients"));
}

void ChangeHub::OnChange(const SecretChange& change) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (subscribers_.empty()) return;  // a new stream starts with RESYNC anyway
    if (jobs_.size() >= kMaxQueuedChanges) {
      jobs_.clear();
      jobs_.push_back(SecretChange::Resync("too many changes queued for the change stream"));
    } else {
      jobs_.push_back(change);
    }
  }
  work_.notify_one();
}

void ChangeHub::BeginDrain() {
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
  for (auto& [id, subscriber] : subscribers_) {
    subscriber.stream->End(absl::UnavailableError("the server is shutting down; reconnect"));
  }
}

absl::StatusOr<uint64_t> ChangeHub::Add(ChangeSubscriber* subscriber, bool heartbeats) {
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_) return absl::UnavailableError("the server is shutting down; reconnect");
  if (subscribers_.size() >= options_.max_streams) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many WatchChanges streams (change_stream.max_streams is ",
                     options_.max_streams, "); retry with backoff"));
  }
  const uint64_t id = next_id_++;
  subscribers_.emplace(id, Subscriber{subscriber, heartbeats});
  // Before any change the hub delivers from now on.
  subscriber->Push(EventOfKind(SecretChangeEvent::RESYNC));
  // At once, so that the caller times the stream from its start.
  if (heartbeats) subscriber->Push(Heartbeat());
  return id;
}

void ChangeHub::Remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  subscribers_.erase(id);
}

size_t ChangeHub::active_streams() const {
  std::lock_guard<std::mutex> lock(mu_);
  return subscribers_.size();
}

void ChangeHub::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    const SecretChange change = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    Deliver(change);
    lock.lock();
  }
}

void ChangeHub::Deliver(const SecretChange& change) {
  if (change.feed_lost || change.resync) {
    std::lock_guard<std::mutex> lock(mu_);
    PushToAll(EventOfKind(change.feed_lost ? SecretChangeEvent::FEED_LOST
                                           : SecretChangeEvent::RESYNC));
    return;
  }
  const absl::StatusOr<SecretMetadata> metadata = store_->GetMetadata(change.stack, change.name);
  const bool deleted = !metadata.ok() && metadata.status().code() == absl::StatusCode::kNotFound;
  SecretChangeEvent event =
      EventOfKind(deleted ? SecretChangeEvent::DELETED : SecretChangeEvent::CHANGED);
  event.set_stack(change.stack);
  event.set_name(change.name);
  // A store that cannot answer now does not make the change less real: version 0.
  if (metadata.ok()) event.set_version(metadata->version);
  std::lock_guard<std::mutex> lock(mu_);
  PushToAll(event);
}

void ChangeHub::PushToAll(const SecretChangeEvent& event) {
  for (auto& [id, subscriber] : subscribers_) subscriber.stream->Push(event);
}

SecretChangeEvent ChangeHub::Heartbeat() const {
  SecretChangeEvent heartbeat = EventOfKind(SecretChangeEvent::HEARTBEAT);
  heartbeat.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(HeartbeatInterval()));
  return heartbeat;
}

absl::Duration ChangeHub::HeartbeatInterval() const {
  return std::clamp(options_.heartbeat_interval, kMinHeartbeatInterval, kMaxHeartbeatInterval);
}

void ChangeHub::RunHeartbeats() {
  const SecretChangeEvent heartbeat = Heartbeat();
  const auto interval = absl::ToChronoNanoseconds(HeartbeatInterval());
  std::unique_lock<std::mutex> lock(mu_);
  // The steady clock: a wall clock set back must not hold the heartbeats back.
  auto next = std::chrono::steady_clock::now() + interval;
  for (;;) {
    heartbeat_stop_.wait_until(lock, next, [this] { return stopping_; });
    if (stopping_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now < next) continue;
    for (auto& [id, subscriber] : subscribers_) {
      if (subscriber.heartbeats) subscriber.stream->Push(heartbeat);
    }
    // At a fixed rate; after a pause longer than an interval, from now.
    next += interval;
    if (next <= now) next = now + interval;
  }
}

namespace {

// One WatchChanges stream, in the completion-queue style of server/watch_call.cc. It is
// admitted and registered on its queue's thread (no blocking work: the identity is in the
// connection's auth context); from then on its state is under `mu_`, as the hub's thread
// pushes events and every completion comes on the queue's thread. Each push or end wakes the
// queue's thread through an alarm, which writes one pending event at a time or finishes. The
// call is deleted only once gRPC returned its finish and done tags and no alarm is pending.
class ChangeCall final : public QueueTag, public ChangeSubscriber {
 public:
  static void Request(ChangeStreams* streams, grpc::ServerCompletionQueue* queue) {
    auto* call = new ChangeCall(streams, queue);
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

  void Push(const SecretChangeEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (finishing_ || end_status_.has_value()) return;
    const size_t limit = streams_->hub->options().max_pending_events;
    if (pending_.size() >= limit) {
      pending_.clear();
      end_status_ = absl::ResourceExhaustedError(
          absl::StrCat("WatchChanges: the caller read too slowly (more than ", limit,
                       " events pending); reconnect"));
      // A write stuck on the reader's full window would hold the stream: no status can reach
      // such a reader anyway.
      if (writing_) context_.TryCancel();
    } else {
      pending_.push_back(event);
    }
    Wake();
  }

  void End(const absl::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (finishing_ || end_status_.has_value()) return;
    end_status_ = status;
    Wake();
  }

  ~ChangeCall() override { streams_->call_ended(); }

 private:
  ChangeCall(ChangeStreams* streams, grpc::ServerCompletionQueue* queue)
      : streams_(streams),
        queue_(queue),
        writer_(&context_),
        done_tag_(this, &ChangeCall::OnDone),
        wake_tag_(this, &ChangeCall::OnWake) {
    streams_->call_started();
    context_.AsyncNotifyWhenDone(&done_tag_);
  }

  // A tag that runs one of the call's methods with the operation's outcome.
  class Tag final : public QueueTag {
   public:
    Tag(ChangeCall* call, void (ChangeCall::*method)(bool)) : call_(call), method_(method) {}
    void Proceed(bool ok) override { (call_->*method_)(ok); }

   private:
    ChangeCall* const call_;
    void (ChangeCall::*const method_)(bool);
  };

  void Matched() {
    start_ = absl::Now();
    if (streams_->is_draining()) {
      FinishNow(absl::UnavailableError("the server is shutting down; reconnect"));
      return;
    }
    Request(streams_, queue_);  // keep a stream of this kind requested
    if (streams_->hub == nullptr) {
      Refuse(absl::PermissionDeniedError(
          "WatchChanges: this server serves no change stream (change_stream.allowed_clients "
          "is empty)"));
      return;
    }
    secretresolver::v1::WatchChangesRequest request;
    bool parsed = false;
    {
      grpc::ProtoBufferReader reader(&request_);
      parsed = reader.status().ok() && request.ParseFromZeroCopyStream(&reader);
    }
    request_.Clear();
    if (!parsed) {
      FinishNow(absl::InvalidArgumentError("WatchChanges: the request does not parse"));
      return;
    }
    absl::StatusOr<std::string> client = streams_->hub->Admit(*context_.auth_context());
    if (!client.ok()) {
      Refuse(client.status());
      return;
    }
    client_ = *std::move(client);
    // Not under mu_: the hub takes its lock before a stream's.
    absl::StatusOr<uint64_t> id = streams_->hub->Add(this, request.heartbeats());
    if (!id.ok()) {
      Refuse(id.status());  // too many streams, or draining
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    id_ = *id;
    Audit({LogField("decision", "allowed"), LogField("phase", "start")});
    if (context_.IsCancelled() && !end_status_.has_value()) {
      end_status_ = absl::CancelledError("the caller went away");
      Pump();
    }
  }

  // Before admission: an audit line, then finishes with `status`.
  void Refuse(const absl::Status& status) {
    Audit({LogField("decision", "denied"),
           LogField("code", absl::StatusCodeToString(status.code())),
           LogField("reason", status.message())});
    FinishNow(status);
  }

  // Before registration (one thread): finishes with `status`.
  void FinishNow(const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    end_status_ = status;
    Pump();
  }

  // An audit line about this stream: the method, the client identity (empty until admitted),
  // the peer's address, and `fields`.
  void Audit(std::initializer_list<LogField> fields) {
    if (streams_->log == nullptr) return;
    std::vector<LogField> line = {LogField("method", kName), LogField("client", client_),
                                  LogField("peer", context_.peer())};
    line.insert(line.end(), fields.begin(), fields.end());
    streams_->log->LogAuditEvent(line);
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
      writer_.Finish(ToGrpcStatus(*end_status_), this);
      return;
    }
    if (pending_.empty()) return;
    const std::string bytes = pending_.front().SerializeAsString();
    if (pending_.front().kind() != SecretChangeEvent::HEARTBEAT) {
      ++events_sent_;
      streams_->hub->CountSent();
    }
    pending_.pop_front();
    const grpc::Slice slice(bytes);
    out_buffer_ = grpc::ByteBuffer(&slice, 1);
    writing_ = true;
    writer_.Write(out_buffer_, this);
  }

  // Deletes the call once nothing of gRPC's refers to it any more.
  void CompleteIfDone(std::unique_lock<std::mutex>* lock) {
    if (!finish_returned_ || !done_returned_ || wake_pending_) return;
    lock->unlock();
    const bool died_first =
        context_.IsCancelled() && sent_code_ != absl::StatusCode::kResourceExhausted;
    const absl::StatusCode code = died_first ? absl::StatusCode::kCancelled : sent_code_;
    if (id_ != 0) {
      streams_->hub->Remove(id_);
      Audit({LogField("decision", "allowed"), LogField("phase", "end"),
             LogField("code", absl::StatusCodeToString(code)),
             LogField("events_sent", events_sent_),
             LogField("seconds", absl::ToDoubleSeconds(absl::Now() - start_))});
    }
    if (streams_->observer) streams_->observer(kName, code, absl::Now() - start_);
    delete this;
  }

  static constexpr absl::string_view kName = "WatchChanges";

  ChangeStreams* const streams_;
  grpc::ServerCompletionQueue* const queue_;
  grpc::ServerContext context_;
  grpc::ByteBuffer request_;
  grpc::ServerAsyncWriter<grpc::ByteBuffer> writer_;
  Tag done_tag_;
  Tag wake_tag_;
  grpc::Alarm wake_alarm_;
  bool matched_ = false;  // the queue's thread only
  std::string client_;    // set on admission, then read only
  absl::Time start_;

  std::mutex mu_;
  uint64_t id_ = 0;  // the hub's id, once registered
  std::deque<SecretChangeEvent> pending_;
  std::optional<absl::Status> end_status_;
  bool writing_ = false;
  bool finishing_ = false;
  bool wake_pending_ = false;
  bool finish_returned_ = false;
  bool done_returned_ = false;
  int64_t events_sent_ = 0;
  absl::StatusCode sent_code_ = absl::StatusCode::kUnknown;
  grpc::ByteBuffer out_buffer_;
};

}  // namespace

void RequestChangeCall(ChangeStreams* streams, grpc::ServerCompletionQueue* queue) {
  ChangeCall::Request(streams, queue);
}

}  // namespace secret_resolver
