#include "client/secret_watch.h"

#include <grpcpp/grpcpp.h>
#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"
#include "secretresolver/v1/resolver.grpc.pb.h"

namespace secret_resolver {
namespace client {
namespace {

// Refusals a new stream would get again.
bool Permanent(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::UNIMPLEMENTED:
      return true;
    default:
      return false;
  }
}

}  // namespace

SecretWatch::SecretWatch(std::shared_ptr<grpc::Channel> channel, Hooks hooks, std::string stack,
                         std::map<std::string, std::string> refs, WatchCallback on_event,
                         WatchEndCallback on_end)
    : channel_(std::move(channel)),
      hooks_(std::move(hooks)),
      stack_(std::move(stack)),
      refs_(std::move(refs)),
      on_event_(std::move(on_event)),
      on_end_(std::move(on_end)),
      thread_([this] { Run(); }) {}

SecretWatch::~SecretWatch() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    if (current_ != nullptr) current_->TryCancel();
  }
  stop_signal_.notify_all();
  thread_.join();
}

void SecretWatch::Run() {
  int failures = 0;
  for (;;) {
    grpc::Status status;
    if (Stream(&status)) failures = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
    }
    if (Permanent(status.error_code())) {
      if (on_end_) {
        on_end_(absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                             status.error_message()));
      }
      return;
    }
    const absl::Duration wait = hooks_.backoff(++failures);
    std::unique_lock<std::mutex> lock(mu_);
    stop_signal_.wait_for(lock, absl::ToChronoNanoseconds(wait), [this] { return stopped_; });
    if (stopped_) return;
  }
}

bool SecretWatch::Stream(grpc::Status* status) {
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> metadata = hooks_.metadata();
  if (!metadata.ok()) {
    // The token provider's error: retried like an unavailable sidecar.
    *status = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                           absl::StrCat("token provider: ", metadata.status().message()));
    return false;
  }
  auto context = std::make_shared<grpc::ClientContext>();
  for (auto& [key, value] : *metadata) {
    context->AddMetadata(key, value);
    OPENSSL_cleanse(value.data(), value.size());  // the token
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return false;
    current_ = context;
  }
  secretresolver::v1::WatchSecretsRequest request;
  request.set_stack(stack_);
  request.mutable_refs()->insert(refs_.begin(), refs_.end());
  auto stub = secretresolver::v1::SecretResolver::NewStub(channel_);
  std::unique_ptr<grpc::ClientReader<secretresolver::v1::WatchSecretsEvent>> reader =
      stub->WatchSecrets(context.get(), request);
  bool delivered = false;
  secretresolver::v1::WatchSecretsEvent event;
  while (reader->Read(&event)) {
    delivered = true;
    on_event_(WatchEvent{event.ref_key(), event.name(), event.version(), event.deleted()});
  }
  *status = reader->Finish();
  std::lock_guard<std::mutex> lock(mu_);
  current_ = nullptr;
  return delivered;
}

}  // namespace client
}  // namespace secret_resolver
