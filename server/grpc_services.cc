#include "server/grpc_services.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpcpp/impl/codegen/completion_queue_tag.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/run_context.h"
#include "server/queue_tag.h"
#include "server/status_mapping.h"

// Exported by gRPC 1.51's core (see CheckMessageFraming).
uint32_t grpc_call_test_only_get_message_flags(grpc_call* call);
grpc_compression_algorithm grpc_call_test_only_get_compression_algorithm(grpc_call* call);

namespace secret_resolver {
namespace {

// Sets `*slot` to `value`, or flags a conflict if it already holds a different one.
void SetOnce(std::optional<absl::string_view>* slot, grpc::string_ref value, bool* conflicting) {
  const absl::string_view text(value.data(), value.size());
  if (slot->has_value() && **slot != text) *conflicting = true;
  *slot = text;
}

// Views of the context's metadata, which lives as long as the call.
CallCredentials CredentialsOf(const grpc::ServerContext& context) {
  CallCredentials credentials;
  RunMetadata& run = credentials.run;
  for (const auto& [key, value] : context.client_metadata()) {
    const absl::string_view name(key.data(), key.size());
    if (name == "x-access-token") {
      SetOnce(&credentials.x_access_token, value, &credentials.conflicting);
    } else if (name == "authorization") {
      SetOnce(&credentials.authorization, value, &credentials.conflicting);
    } else if (name == "x-grafana-service-identity-name") {
      credentials.grafana_service_name = absl::string_view(value.data(), value.size());
    } else if (name == kRunIdHeader) {
      SetOnce(&run.run_id, value, &run.run_id_repeated);
    } else if (name == kStepIdHeader) {
      SetOnce(&run.step_id, value, &run.step_id_repeated);
    } else if (name == kTraceparentHeader) {
      SetOnce(&run.traceparent, value, &run.traceparent_repeated);
    }
  }
  return credentials;
}

// A caller whose deadline passes cancels its call, and that reaches us a little before our copy
// of the deadline (which is the caller's timeout counted from when the call arrived): a call
// that dies this close to its deadline ran out of time.
constexpr absl::Duration kDeadlineSlack = absl::Milliseconds(250);

// One method's request type, its name (the metrics label) and the request's full message name
// (for the error when it does not parse). Every method is registered raw: the call parses its
// request itself, and the handler answers with the response's wire bytes.
struct ResolveMethod {
  using Request = secretresolver::v1::ResolveSecretsRequest;
  static constexpr absl::string_view kName = "ResolveSecrets";
  static constexpr absl::string_view kRequestType = "secretresolver.v1.ResolveSecretsRequest";
};

// The dry run: always answered on the pool (it reads the store).
struct CheckMethod {
  using Request = secretresolver::v1::CheckReferencesRequest;
  static constexpr absl::string_view kName = "CheckReferences";
  static constexpr absl::string_view kRequestType = "secretresolver.v1.CheckReferencesRequest";
};

// Grafana's two packages: their messages are the same on the wire, so both are parsed as
// decryptv1beta1's and answered by one handler method, under one metrics label.
struct DecryptMethod {
  using Request = decryptv1beta1::SecureValueDecryptRequest;
  static constexpr absl::string_view kName = "DecryptSecureValues";
  static constexpr absl::string_view kRequestType = "decryptv1beta1.SecureValueDecryptRequest";
};

struct DecryptV1Method {
  using Request = decryptv1beta1::SecureValueDecryptRequest;
  static constexpr absl::string_view kName = "DecryptSecureValues";
  static constexpr absl::string_view kRequestType = "decryptv1.SecureValueDecryptRequest";
};

// A call handed to the worker pool, which shutdown may have to answer without its worker.
class PooledCall {
 public:
  virtual ~PooledCall() = default;
  // Answers UNAVAILABLE now, unless answered already; the worker's answer, if it ever comes,
  // is dropped. The call stays in memory until its worker returns.
  virtual void AnswerUnavailable() = 0;
};

// After a drain begins, calls that gRPC has received but not yet handed to the services keep
// being matched and answered UNAVAILABLE; once none has arrived for this long they are taken
// to be all answered (at most kMaxSettle after the drain began), and the server may shut down
// without cancelling any.
constexpr absl::Duration kQuietForSettle = absl::Milliseconds(100);
constexpr absl::Duration kMaxSettle = absl::Seconds(1);

}  // namespace

struct GrpcServices::Shared {
  ResolveHandler* handler;
  ThreadPool* pool;
  CallObserver observer;

  // Setting `draining`, and checking it together with handing a call to the pool, happen
  // under `mu`, so once BeginDrain() returns nothing reaches the pool any more. The other
  // reads are lock-free: every call makes them.
  std::mutex mu;
  std::condition_variable calls_gone;  // notified under `mu` when live_calls reaches 0
  std::atomic<bool> draining{false};
  std::atomic<int> live_calls{0};  // calls requested or running, not yet over
  std::atomic<int64_t> last_match_ns{0};  // when a call was last matched (Unix nanoseconds)
  absl::Time drain_began;  // guarded by mu
  std::unordered_set<PooledCall*> on_pool;  // guarded by mu: handed to the pool, not returned
  RedactStreams redact_streams;
  WatchStreams watch_streams;
  ChangeStreams change_streams;

  // Hands `task`, which runs `call`, to the pool unless draining; false when not taken.
  bool Dispatch(PooledCall* call, std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mu);
    if (draining.load(std::memory_order_relaxed)) return false;
    on_pool.insert(call);
    if (pool->TrySchedule(std::move(task))) return true;
    on_pool.erase(call);
    return false;
  }
  // Hands a RedactLogs stream's `task` to the pool unless draining; false when not taken. Not
  // tracked in `on_pool`: the stream is in redact_streams.starting (see AbandonWork).
  bool DispatchStreamWork(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mu);
    if (draining.load(std::memory_order_relaxed)) return false;
    return pool->TrySchedule(std::move(task));
  }
  // The pool's task for `call` has returned.
  void LeavePool(PooledCall* call) {
    std::lock_guard<std::mutex> lock(mu);
    on_pool.erase(call);
  }
  // A call is over: its last event is through, or it was never matched.
  void CallOver() {
    if (live_calls.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu);
      calls_gone.notify_all();
    }
  }
  bool IsDraining() const { return draining.load(std::memory_order_acquire); }
  secretresolver::v1::SecretResolver::WithRawMethod_ResolveSecrets<
      secretresolver::v1::SecretResolver::WithRawMethod_CheckReferences<
      secretresolver::v1::SecretResolver::WithRawMethod_RedactLogs<
      secretresolver::v1::SecretResolver::WithRawMethod_WatchSecrets<
          secretresolver::v1::SecretResolver::Service>>>>
      resolver;
  decryptv1beta1::SecureValueDecrypter::WithRawMethod_DecryptSecureValues<
      decryptv1beta1::SecureValueDecrypter::Service>
      decrypter;
  decryptv1::SecureValueDecrypter::WithRawMethod_DecryptSecureValues<
      decryptv1::SecureValueDecrypter::Service>
      decrypter_v1;
  secretresolver::v1::SecretChanges::WithRawMethod_WatchChanges<
      secretresolver::v1::SecretChanges::Service>
      changes;

  void RequestCall(ResolveMethod, grpc::ServerContext* context, grpc::ByteBuffer* request,
                   grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* responder,
                   grpc::ServerCompletionQueue* queue, void* tag) {
    resolver.RequestResolveSecrets(context, request, responder, queue, queue, tag);
  }
  void RequestCall(CheckMethod, grpc::ServerContext* context, grpc::ByteBuffer* request,
                   grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* responder,
                   grpc::ServerCompletionQueue* queue, void* tag) {
    resolver.RequestCheckReferences(context, request, responder, queue, queue, tag);
  }
  void RequestCall(DecryptMethod, grpc::ServerContext* context, grpc::ByteBuffer* request,
                   grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* responder,
                   grpc::ServerCompletionQueue* queue, void* tag) {
    decrypter.RequestDecryptSecureValues(context, request, responder, queue, queue, tag);
  }
  void RequestCall(DecryptV1Method, grpc::ServerContext* context, grpc::ByteBuffer* request,
                   grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* responder,
                   grpc::ServerCompletionQueue* queue, void* tag) {
    decrypter_v1.RequestDecryptSecureValues(context, request, responder, queue, queue, tag);
  }
  std::optional<absl::Status> TryHere(ResolveMethod, const CallCredentials& credentials,
                                      const ResolveMethod::Request& request, absl::Time deadline,
                                      grpc::ByteBuffer* response) {
    return handler->TryResolveSecretsWithoutBlocking(credentials, request, deadline, response);
  }
  std::optional<absl::Status> TryHere(CheckMethod, const CallCredentials&,
                                      const CheckMethod::Request&, absl::Time,
                                      grpc::ByteBuffer*) {
    return std::nullopt;
  }
  template <typename Method>
  std::optional<absl::Status> TryHere(Method, const CallCredentials& credentials,
                                      const decryptv1beta1::SecureValueDecryptRequest& request,
                                      absl::Time deadline, grpc::ByteBuffer* response) {
    return handler->TryDecryptSecureValuesWithoutBlocking(credentials, request, deadline,
                                                          response);
  }
  absl::Status Work(ResolveMethod, const CallCredentials& credentials,
                    const ResolveMethod::Request& request, absl::Time deadline,
                    grpc::ByteBuffer* response) {
    return handler->ResolveSecrets(credentials, request, deadline, response);
  }
  absl::Status Work(CheckMethod, const CallCredentials& credentials,
                    const CheckMethod::Request& request, absl::Time deadline,
                    grpc::ByteBuffer* response) {
    return handler->CheckReferences(credentials, request, deadline, response);
  }
  template <typename Method>
  absl::Status Work(Method, const CallCredentials& credentials,
                    const decryptv1beta1::SecureValueDecryptRequest& request, absl::Time deadline,
                    grpc::ByteBuffer* response) {
    return handler->DecryptSecureValues(credentials, request, deadline, response);
  }
};

namespace {

// The compressed flag of a gRPC message (its first byte) as gRPC's core keeps it in a
// message's flags (src/core/lib/transport/transport.h), and the flag a decompressing filter
// leaves in its place.
constexpr uint32_t kMessageCompressed = 0x80000000u;
constexpr uint32_t kMessageWasCompressed = 0x40000000u;

// A request message whose compressed flag is set without a compression algorithm (no
// `grpc-encoding`, or `identity`) is refused INTERNAL, as gRPC's Go server does: gRPC 1.51
// would read the bytes as uncompressed. It keeps the flags of the last message received and
// the call's algorithm in the core call only, readable through these two exported functions
// (declared in its uninstalled call_test_only.h; a gRPC without them fails to link).
absl::Status CheckMessageFraming(grpc_call* call) {
  const uint32_t flags = grpc_call_test_only_get_message_flags(call);
  if ((flags & (kMessageCompressed | kMessageWasCompressed)) != 0 &&
      grpc_call_test_only_get_compression_algorithm(call) == GRPC_COMPRESS_NONE) {
    return absl::InternalError(
        "the request message is flagged compressed but the call names no grpc-encoding");
  }
  return absl::OkStatus();
}

// One call of `Method`: requested from the queue, answered (here or on the pool), finished,
// deleted. While it is requested, exactly one more of its kind is requested on its queue.
template <typename Method>
class UnaryCall final : public QueueTag, public PooledCall {
 public:
  // Asks the queue for the next call of `Method`.
  static void Request(GrpcServices::Shared* shared, grpc::ServerCompletionQueue* queue) {
    auto* call = new UnaryCall(shared, queue);
    shared->RequestCall(Method(), &call->context_, &call->request_bytes_, &call->responder_,
                        queue, static_cast<QueueTag*>(call));
  }

  void Proceed(bool ok) override {
    if (matched_) {
      // Finish is through: the response was sent (`ok`) or the call had died first.
      finish_ok_ = ok;
      finish_returned_ = true;
      CompleteIfDone();
      return;
    }
    if (!ok) {
      // The server is shutting down and this call was never matched: no done tag comes.
      shared_->CallOver();
      Release();
      return;
    }
    matched_ = true;
    start_ = absl::Now();
    shared_->last_match_ns.store(absl::ToUnixNanos(start_), std::memory_order_relaxed);
    // Keep a call of this kind requested, during a drain too: a call gRPC has received but not
    // matched when the server shuts down would be cancelled.
    Request(shared_, queue_);
    if (shared_->IsDraining()) {
      Finish(absl::UnavailableError("the sidecar is shutting down"));
      return;
    }
    if (absl::Status framing = CheckMessageFraming(context_.c_call()); !framing.ok()) {
      Finish(framing);
      return;
    }
    // A unary request is one message: read on to the end of the request, and answer once it
    // is there (as gRPC's Java and Go servers do).
    grpc_op op{};
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &extra_message_;
    if (grpc_call_start_batch(context_.c_call(), &op, 1, static_cast<void*>(&end_tag_),
                              nullptr) != GRPC_CALL_OK) {
      Finish(absl::InternalError("cannot read the end of the request"));
    }
  }

  ~UnaryCall() override {
    if (extra_message_ != nullptr) grpc_byte_buffer_destroy(extra_message_);
  }

  void AnswerUnavailable() override {
    Finish(absl::UnavailableError("the sidecar is shutting down"));
  }

 private:
  // The request's end has been read (`ok`), or the call has died.
  void OnRequestEnd(bool ok) {
    if (!ok) {
      Finish(absl::CancelledError("the call ended before its request did"));
      return;
    }
    if (extra_message_ != nullptr) {
      grpc_byte_buffer_destroy(extra_message_);
      extra_message_ = nullptr;
      Finish(absl::InternalError("more than one request message in a unary call"));
      return;
    }
    Serve();
  }

  // Parses the request and answers it: here when the handler can without blocking, otherwise
  // on the pool.
  void Serve() {
    if (!ParseRequest()) {
      Finish(absl::InvalidArgumentError(
          absl::StrCat("the request is not a valid ", Method::kRequestType, " message")));
      return;
    }
    const absl::Time deadline = absl::FromChrono(context_.deadline());
    CallCredentials credentials = CredentialsOf(context_);
    if (std::optional<absl::Status> answered =
            shared_->TryHere(Method(), credentials, *request_, deadline, &response_)) {
      Finish(*answered);
      return;
    }
    holders_.fetch_add(1, std::memory_order_relaxed);  // the pool's task
    const bool accepted =
        shared_->Dispatch(this, [this, credentials = std::move(credentials), deadline] {
          // Calls still queued when shutdown began are not worked on. (One whose deadline has
          // passed is refused by the handler before any work.)
          if (shared_->IsDraining()) {
            Finish(absl::UnavailableError("the sidecar is shutting down"));
          } else {
            Finish(shared_->Work(Method(), credentials, *request_, deadline, &response_));
          }
          shared_->LeavePool(this);
          Release();
        });
    if (!accepted) {
      holders_.fetch_sub(1, std::memory_order_relaxed);
      Finish(shared_->IsDraining()
                 ? absl::UnavailableError("the sidecar is shutting down")
                 : absl::ResourceExhaustedError("the sidecar is overloaded; retry with backoff"));
    }
  }

  UnaryCall(GrpcServices::Shared* shared, grpc::ServerCompletionQueue* queue)
      : shared_(shared),
        queue_(queue),
        arena_(arena_block_, sizeof(arena_block_)),
        request_(google::protobuf::Arena::CreateMessage<typename Method::Request>(&arena_)),
        responder_(&context_),
        done_tag_(this),
        end_tag_(this) {
    shared_->live_calls.fetch_add(1, std::memory_order_relaxed);
    // Before the call is requested, as gRPC requires. The tag comes back once a matched call
    // is over (answered or cancelled), and never for a call that was not matched.
    context_.AsyncNotifyWhenDone(&done_tag_);
  }

  // The tag of the read of the request's end, a batch started on the core call: the queue
  // hands it to FinalizeResult, which gives the queue loop this QueueTag.
  class EndTag final : public grpc::internal::CompletionQueueTag, public QueueTag {
   public:
    explicit EndTag(UnaryCall* call) : call_(call) {}
    bool FinalizeResult(void** tag, bool*) override {
      *tag = static_cast<QueueTag*>(this);
      return true;
    }
    void Proceed(bool ok) override { call_->OnRequestEnd(ok); }

   private:
    UnaryCall* const call_;
  };

  // Returned by the queue once the call is over, whatever became of it.
  class DoneTag final : public QueueTag {
   public:
    explicit DoneTag(UnaryCall* call) : call_(call) {}
    void Proceed(bool) override {
      call_->done_returned_ = true;
      call_->done_at_ = absl::Now();
      call_->CompleteIfDone();
    }

   private:
    UnaryCall* const call_;
  };

  // Once both the finish tag and the done tag are back (both on this call's queue thread), the
  // observer is told what the caller got, and the call goes. The response's buffer is wiped
  // once gRPC has let go of it too.
  void CompleteIfDone() {
    if (!finish_returned_ || !done_returned_) return;
    if (shared_->observer) {
      shared_->observer(Method::kName, OutcomeForCaller(), absl::Now() - start_);
    }
    shared_->CallOver();
    Release();
  }

  // Drops a holder's reference; the last one deletes the call. The holders are the queue (until
  // the call is over) and the pool's task (until it returns), so a call answered by shutdown
  // while its worker is blocked stays valid for that worker.
  void Release() {
    if (holders_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // The status the caller saw: ours if it was sent before the deadline (a caller's library
  // gives up at its deadline, even when gRPC here has not yet noticed); CANCELLED if the call
  // died before its answer, well before its deadline; otherwise DEADLINE_EXCEEDED.
  absl::StatusCode OutcomeForCaller() {
    finish_called_.load(std::memory_order_acquire);
    const absl::Time deadline = absl::FromChrono(context_.deadline());
    const bool died_first = !finish_ok_ || context_.IsCancelled();
    if (!died_first && finished_at_ < deadline) return sent_code_;
    if (died_first && done_at_ < deadline - kDeadlineSlack) return absl::StatusCode::kCancelled;
    return absl::StatusCode::kDeadlineExceeded;
  }

  // Parses the request's bytes into the arena's message, and lets go of them.
  bool ParseRequest() {
    bool parsed = false;
    {
      grpc::ProtoBufferReader reader(&request_bytes_);  // gone before the bytes are
      parsed = reader.status().ok() && request_->ParseFromZeroCopyStream(&reader);
    }
    request_bytes_.Clear();
    return parsed;
  }

  // Sends the response (or only the status, when it is not OK); the queue returns this call's
  // tag once that is done. Only the first answer counts: the worker and shutdown may both
  // answer (AnswerUnavailable), and gRPC takes one Finish per call.
  void Finish(const absl::Status& status) {
    if (answered_.exchange(true, std::memory_order_acq_rel)) return;
    sent_code_ = status.code();
    finished_at_ = absl::Now();
    // The finish tag's return orders the two writes above before their reads on the queue
    // thread, but through gRPC's completion queue, which ThreadSanitizer cannot see (the
    // system's gRPC is not instrumented); this release and the acquire in OutcomeForCaller say so
    // where it can.
    finish_called_.store(true, std::memory_order_release);
    responder_.Finish(response_, ToGrpcStatus(status), static_cast<QueueTag*>(this));
  }

  GrpcServices::Shared* const shared_;
  grpc::ServerCompletionQueue* const queue_;
  grpc::ServerContext context_;
  grpc::ByteBuffer request_bytes_;  // as received; cleared once parsed
  // The request is parsed onto the call's arena, whose first block is part of this object
  // (about 2 KB without it, an allocation of that class anyway): a call with a few references
  // parses its request without allocating any of it.
  alignas(8) char arena_block_[2048];
  google::protobuf::Arena arena_;
  typename Method::Request* const request_;
  grpc::ByteBuffer response_;  // the handler's wire bytes
  grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> responder_;
  DoneTag done_tag_;
  EndTag end_tag_;
  grpc_byte_buffer* extra_message_ = nullptr;  // a second request message, if one came
  std::atomic<bool> answered_{false};  // Finish has been called
  std::atomic<int> holders_{1};        // see Release()
  // Set and read on the call's queue thread only, except `sent_code_` and `finished_at_`, which
  // Finish sets (on the queue thread or a worker) before the finish tag can come back, and
  // publishes with `finish_called_`.
  bool matched_ = false;
  bool finish_returned_ = false;
  bool finish_ok_ = false;
  bool done_returned_ = false;
  absl::StatusCode sent_code_ = absl::StatusCode::kUnknown;
  absl::Time finished_at_;
  std::atomic<bool> finish_called_{false};
  absl::Time done_at_;
  absl::Time start_;
};

}  // namespace

GrpcServices::GrpcServices(ResolveHandler* handler, ThreadPool* pool, CallObserver observer,
                           int queue_threads, RedactLimits redact_limits, WatchHub* watch_hub,
                           ChangeHub* change_hub, JsonLogger* log)
    : shared_(std::make_unique<Shared>()), queue_threads_(std::max(1, queue_threads)) {
  shared_->handler = handler;
  shared_->pool = pool;
  shared_->observer = std::move(observer);
  RedactStreams& streams = shared_->redact_streams;
  Shared* shared = shared_.get();
  streams.handler = handler;
  streams.observer = shared_->observer;
  streams.limits = redact_limits;
  streams.request = [shared](grpc::ServerContext* context, RedactStreams::Stream* stream,
                             grpc::ServerCompletionQueue* queue, void* tag) {
    shared->resolver.RequestRedactLogs(context, stream, queue, queue, tag);
  };
  streams.credentials_of = CredentialsOf;
  streams.dispatch = [shared](std::function<void()> task) {
    return shared->DispatchStreamWork(std::move(task));
  };
  streams.matched = [shared](absl::Time at) {
    shared->last_match_ns.store(absl::ToUnixNanos(at), std::memory_order_relaxed);
  };
  streams.is_draining = [shared] { return shared->IsDraining(); };
  streams.call_started = [shared] {
    shared->live_calls.fetch_add(1, std::memory_order_relaxed);
  };
  streams.call_ended = [shared] { shared->CallOver(); };
  WatchStreams& watch = shared_->watch_streams;
  watch.handler = handler;
  watch.hub = watch_hub;
  watch.observer = shared_->observer;
  watch.request = [shared](grpc::ServerContext* context, grpc::ByteBuffer* request,
                           WatchStreams::Writer* writer, grpc::ServerCompletionQueue* queue,
                           void* tag) {
    shared->resolver.RequestWatchSecrets(context, request, writer, queue, queue, tag);
  };
  watch.credentials_of = CredentialsOf;
  watch.dispatch = streams.dispatch;
  watch.is_draining = streams.is_draining;
  watch.call_started = streams.call_started;
  watch.call_ended = streams.call_ended;
  ChangeStreams& changes = shared_->change_streams;
  changes.hub = change_hub;
  changes.log = log;
  changes.observer = shared_->observer;
  changes.request = [shared](grpc::ServerContext* context, grpc::ByteBuffer* request,
                             ChangeStreams::Writer* writer, grpc::ServerCompletionQueue* queue,
                             void* tag) {
    shared->changes.RequestWatchChanges(context, request, writer, queue, queue, tag);
  };
  changes.is_draining = streams.is_draining;
  changes.call_started = streams.call_started;
  changes.call_ended = streams.call_ended;
}

GrpcServices::~GrpcServices() { Stop(); }

void GrpcServices::Register(grpc::ServerBuilder* builder) {
  builder->RegisterService(&shared_->resolver);
  builder->RegisterService(&shared_->decrypter);
  builder->RegisterService(&shared_->decrypter_v1);
  builder->RegisterService(&shared_->changes);
  for (int i = 0; i < queue_threads_; ++i) queues_.push_back(builder->AddCompletionQueue());
}

void GrpcServices::Start() {
  for (auto& queue : queues_) {
    grpc::ServerCompletionQueue* q = queue.get();
    UnaryCall<ResolveMethod>::Request(shared_.get(), q);
    UnaryCall<CheckMethod>::Request(shared_.get(), q);
    UnaryCall<DecryptMethod>::Request(shared_.get(), q);
    UnaryCall<DecryptV1Method>::Request(shared_.get(), q);
    RequestRedactCall(&shared_->redact_streams, q);
    RequestWatchCall(&shared_->watch_streams, q);
    RequestChangeCall(&shared_->change_streams, q);
    threads_.emplace_back([q] {
      void* tag = nullptr;
      bool ok = false;
      while (q->Next(&tag, &ok)) static_cast<QueueTag*>(tag)->Proceed(ok);
    });
  }
}

void GrpcServices::BeginDrain() {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (!shared_->draining.load(std::memory_order_relaxed)) shared_->drain_began = absl::Now();
    shared_->draining.store(true, std::memory_order_release);
  }
  // Watch streams never end by themselves: they end UNAVAILABLE now.
  if (shared_->watch_streams.hub != nullptr) shared_->watch_streams.hub->BeginDrain();
  if (shared_->change_streams.hub != nullptr) shared_->change_streams.hub->BeginDrain();
  EndReadingRedactStreams(&shared_->redact_streams);
}

bool GrpcServices::AwaitDrained(absl::Time deadline) {
  for (;;) {
    const absl::Time now = absl::Now();
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      const absl::Time last_match = absl::FromUnixNanos(
          shared_->last_match_ns.load(std::memory_order_relaxed));
      const bool settled = now - last_match >= kQuietForSettle ||
                           now - shared_->drain_began >= kMaxSettle;
      // A RedactLogs stream ends once the answer to its current chunk is out (BeginDrain ended
      // those waiting for a chunk); until then it holds the drain like a call on the pool.
      const bool idle = shared_->on_pool.empty() &&
                        shared_->redact_streams.active.load(std::memory_order_relaxed) == 0;
      if (idle && settled) return true;
      if (now >= deadline) return idle;
    }
    absl::SleepFor(std::min(absl::Milliseconds(10), deadline - now));
  }
}

void GrpcServices::AbandonWork() {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    for (PooledCall* call : shared_->on_pool) call->AnswerUnavailable();
  }
  AbandonRedactStarts(&shared_->redact_streams);
}

void GrpcServices::Stop() {
  BeginDrain();
  {
    // Every call still in existence finishes on a queue, which must stay open until it has:
    // requested ones come back cancelled once the server is shut down, running ones finish.
    // Bounded, so a stuck call cannot hold the process past its grace period for ever.
    std::unique_lock<std::mutex> lock(shared_->mu);
    if (!threads_.empty()) {
      shared_->calls_gone.wait_for(lock, std::chrono::seconds(30),
                                   [this] { return shared_->live_calls == 0; });
    }
  }
  for (auto& queue : queues_) queue->Shutdown();
  for (std::thread& thread : threads_) thread.join();  // each drains its queue first
  if (threads_.empty()) {
    // Never started (the server failed to start): drain here; a queue must be empty to go.
    for (auto& queue : queues_) {
      void* tag = nullptr;
      bool ok = false;
      while (queue->Next(&tag, &ok)) static_cast<QueueTag*>(tag)->Proceed(ok);
    }
  }
  threads_.clear();
  queues_.clear();
}

}  // namespace secret_resolver
