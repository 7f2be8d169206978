#include "server/grpc_services.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include <grpcpp/support/proto_buffer_reader.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/queue_tag.h"
#include "server/status_mapping.h"

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
  for (const auto& [key, value] : context.client_metadata()) {
    const absl::string_view name(key.data(), key.size());
    if (name == "x-access-token") {
      SetOnce(&credentials.x_access_token, value, &credentials.conflicting);
    } else if (name == "authorization") {
      SetOnce(&credentials.authorization, value, &credentials.conflicting);
    } else if (name == "x-grafana-service-identity-name") {
      credentials.grafana_service_name = absl::string_view(value.data(), value.size());
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
  std::atomic<int> live_calls{0};  // calls (UnaryCall, RedactCall) in existence
  RedactStreams redact_streams;

  // Hands `task` to the pool unless draining; false when not taken.
  bool Dispatch(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mu);
    return !draining.load(std::memory_order_relaxed) && pool->TrySchedule(std::move(task));
  }
  bool IsDraining() const { return draining.load(std::memory_order_acquire); }
  // A call is gone; Stop() waits for the last one.
  void CallEnded() {
    if (live_calls.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu);
      calls_gone.notify_all();
    }
  }
  secretresolver::v1::SecretResolver::WithRawMethod_ResolveSecrets<
      secretresolver::v1::SecretResolver::WithRawMethod_RedactLogs<
          secretresolver::v1::SecretResolver::Service>>
      resolver;
  decryptv1beta1::SecureValueDecrypter::WithRawMethod_DecryptSecureValues<
      decryptv1beta1::SecureValueDecrypter::Service>
      decrypter;
  decryptv1::SecureValueDecrypter::WithRawMethod_DecryptSecureValues<
      decryptv1::SecureValueDecrypter::Service>
      decrypter_v1;

  void RequestCall(ResolveMethod, grpc::ServerContext* context, grpc::ByteBuffer* request,
                   grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* responder,
                   grpc::ServerCompletionQueue* queue, void* tag) {
    resolver.RequestResolveSecrets(context, request, responder, queue, queue, tag);
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
  template <typename Method>
  absl::Status Work(Method, const CallCredentials& credentials,
                    const decryptv1beta1::SecureValueDecryptRequest& request, absl::Time deadline,
                    grpc::ByteBuffer* response) {
    return handler->DecryptSecureValues(credentials, request, deadline, response);
  }
};

namespace {

// One call of `Method`: requested from the queue, answered (here or on the pool), finished,
// deleted. While it is requested, exactly one more of its kind is requested on its queue.
template <typename Method>
class UnaryCall final : public QueueTag {
 public:
  // Asks the queue for the next call of `Method`.
  static void Request(GrpcServices::Shared* shared, grpc::ServerCompletionQueue* queue) {
    auto* call = new UnaryCall(shared, queue);
    shared->RequestCall(Method(), &call->context_, &call->request_bytes_, &call->responder_,
                        queue, call);
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
      delete this;
      return;
    }
    matched_ = true;
    start_ = absl::Now();
    if (shared_->IsDraining()) {
      // Matched just before the server shut down: answer, and request no more.
      Finish(absl::UnavailableError("the sidecar is shutting down"));
      return;
    }
    Request(shared_, queue_);  // keep a call of this kind requested
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
    const bool accepted =
        shared_->Dispatch([this, credentials = std::move(credentials), deadline] {
          // Calls still queued when shutdown began are not worked on. (One whose deadline has
          // passed is refused by the handler before any work.)
          if (shared_->IsDraining()) {
            Finish(absl::UnavailableError("the sidecar is shutting down"));
            return;
          }
          Finish(shared_->Work(Method(), credentials, *request_, deadline, &response_));
        });
    if (!accepted) {
      Finish(shared_->IsDraining()
                 ? absl::UnavailableError("the sidecar is shutting down")
                 : absl::ResourceExhaustedError("the sidecar is overloaded; retry with backoff"));
    }
  }

  ~UnaryCall() override { shared_->CallEnded(); }

 private:
  UnaryCall(GrpcServices::Shared* shared, grpc::ServerCompletionQueue* queue)
      : shared_(shared),
        queue_(queue),
        arena_(arena_block_, sizeof(arena_block_)),
        request_(google::protobuf::Arena::CreateMessage<typename Method::Request>(&arena_)),
        responder_(&context_),
        done_tag_(this) {
    shared_->live_calls.fetch_add(1, std::memory_order_relaxed);
    // Before the call is requested, as gRPC requires. The tag comes back once a matched call
    // is over (answered or cancelled), and never for a call that was not matched.
    context_.AsyncNotifyWhenDone(&done_tag_);
  }

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
    delete this;
  }

  // The status the caller saw: ours if it was sent before the deadline (a caller's library
  // gives up at its deadline, even when gRPC here has not yet noticed); CANCELLED if the call
  // died before its answer, well before its deadline; otherwise DEADLINE_EXCEEDED.
  absl::StatusCode OutcomeForCaller() {
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
  // tag once that is done.
  void Finish(const absl::Status& status) {
    sent_code_ = status.code();
    finished_at_ = absl::Now();
    responder_.Finish(response_, ToGrpcStatus(status), this);
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
  // Set and read on the call's queue thread only, except `sent_code_` and `finished_at_`, which
  // Finish sets before the finish tag can come back.
  bool matched_ = false;
  bool finish_returned_ = false;
  bool finish_ok_ = false;
  bool done_returned_ = false;
  absl::StatusCode sent_code_ = absl::StatusCode::kUnknown;
  absl::Time finished_at_;
  absl::Time done_at_;
  absl::Time start_;
};

}  // namespace

GrpcServices::GrpcServices(ResolveHandler* handler, ThreadPool* pool, CallObserver observer,
                           int queue_threads, RedactLimits redact_limits)
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
    return shared->Dispatch(std::move(task));
  };
  streams.is_draining = [shared] { return shared->IsDraining(); };
  streams.call_started = [shared] {
    shared->live_calls.fetch_add(1, std::memory_order_relaxed);
  };
  streams.call_ended = [shared] { shared->CallEnded(); };
}

GrpcServices::~GrpcServices() { Stop(); }

void GrpcServices::Register(grpc::ServerBuilder* builder) {
  builder->RegisterService(&shared_->resolver);
  builder->RegisterService(&shared_->decrypter);
  builder->RegisterService(&shared_->decrypter_v1);
  for (int i = 0; i < queue_threads_; ++i) queues_.push_back(builder->AddCompletionQueue());
}

void GrpcServices::Start() {
  for (auto& queue : queues_) {
    grpc::ServerCompletionQueue* q = queue.get();
    UnaryCall<ResolveMethod>::Request(shared_.get(), q);
    UnaryCall<DecryptMethod>::Request(shared_.get(), q);
    UnaryCall<DecryptV1Method>::Request(shared_.get(), q);
    RequestRedactCall(&shared_->redact_streams, q);
    threads_.emplace_back([q] {
      void* tag = nullptr;
      bool ok = false;
      while (q->Next(&tag, &ok)) static_cast<QueueTag*>(tag)->Proceed(ok);
    });
  }
}

void GrpcServices::BeginDrain() {
  std::lock_guard<std::mutex> lock(shared_->mu);
  shared_->draining.store(true, std::memory_order_release);
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
