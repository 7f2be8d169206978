#include "server/grpc_services.h"

#include <optional>
#include <string>
#include <utility>

#include <openssl/crypto.h>

#include "absl/time/clock.h"
#include "server/status_mapping.h"

namespace secret_resolver {
namespace {

using decryptv1beta1::SecureValueDecryptResponseCollection;
using secretresolver::v1::ResolveSecretsResponse;

void Wipe(std::string* bytes) {
  if (!bytes->empty()) OPENSSL_cleanse(bytes->data(), bytes->size());
}

void WipeValues(ResolveSecretsResponse* response) {
  for (auto& [key, result] : *response->mutable_results()) {
    if (result.has_secret()) Wipe(result.mutable_secret()->mutable_value());
  }
}

void WipeValues(SecureValueDecryptResponseCollection* response) {
  for (auto& [name, result] : *response->mutable_decrypted_values()) {
    if (result.has_value()) Wipe(result.mutable_value());
  }
}

// Finishes a call and, once gRPC is done with the response, wipes its values. gRPC keeps the
// response alive until OnDone.
template <typename Response>
class WipingReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit WipingReactor(Response* response) : response_(response) {}

  void OnDone() override {
    WipeValues(response_);
    delete this;
  }

 private:
  Response* const response_;
};

// Sets `*slot` to `value`, or flags a conflict if it already holds a different one.
void SetOnce(std::optional<std::string>* slot, grpc::string_ref value, bool* conflicting) {
  std::string text(value.data(), value.size());
  if (slot->has_value() && **slot != text) *conflicting = true;
  *slot = std::move(text);
}

CallCredentials CredentialsOf(const grpc::CallbackServerContext& context) {
  CallCredentials credentials;
  for (const auto& [key, value] : context.client_metadata()) {
    const absl::string_view name(key.data(), key.size());
    if (name == "x-access-token") {
      SetOnce(&credentials.x_access_token, value, &credentials.conflicting);
    } else if (name == "authorization") {
      SetOnce(&credentials.authorization, value, &credentials.conflicting);
    }
  }
  return credentials;
}

// The common shape of both methods: answer here if `try_here` can without blocking, else
// schedule `work` on the pool; finish with the status.
template <typename Response, typename TryHere, typename Work>
grpc::ServerUnaryReactor* Serve(absl::string_view method, grpc::CallbackServerContext* context,
                                Response* response, WorkerPool* pool,
                                const CallObserver& observer, TryHere try_here, Work work) {
  auto* reactor = new WipingReactor<Response>(response);
  const absl::Time start = absl::Now();
  const absl::Time deadline = absl::FromChrono(context->deadline());
  auto finish = [reactor, method, start, observer](const absl::Status& status) {
    if (observer) observer(method, status.code(), absl::Now() - start);
    reactor->Finish(ToGrpcStatus(status));
  };
  CallCredentials credentials = CredentialsOf(*context);
  if (std::optional<absl::Status> answered = try_here(credentials, deadline)) {
    finish(*answered);
    return reactor;
  }
  const bool accepted = pool->TrySchedule(
      [finish, work = std::move(work), credentials = std::move(credentials), deadline]() mutable {
        finish(work(credentials, deadline));
      });
  if (!accepted) {
    finish(absl::ResourceExhaustedError("the sidecar is overloaded; retry with backoff"));
  }
  return reactor;
}

}  // namespace

SecretResolverService::SecretResolverService(ResolveHandler* handler, WorkerPool* pool,
                                             CallObserver observer)
    : handler_(handler), pool_(pool), observer_(std::move(observer)) {}

grpc::ServerUnaryReactor* SecretResolverService::ResolveSecrets(
    grpc::CallbackServerContext* context,
    const secretresolver::v1::ResolveSecretsRequest* request, ResolveSecretsResponse* response) {
  return Serve(
      "ResolveSecrets", context, response, pool_, observer_,
      [this, request, response](const CallCredentials& credentials, absl::Time deadline) {
        return handler_->TryResolveSecretsWithoutBlocking(credentials, *request, deadline,
                                                          response);
      },
      [this, request, response](const CallCredentials& credentials, absl::Time deadline) {
        return handler_->ResolveSecrets(credentials, *request, deadline, response);
      });
}

SecureValueDecrypterService::SecureValueDecrypterService(ResolveHandler* handler,
                                                         WorkerPool* pool,
                                                         CallObserver observer)
    : handler_(handler), pool_(pool), observer_(std::move(observer)) {}

grpc::ServerUnaryReactor* SecureValueDecrypterService::DecryptSecureValues(
    grpc::CallbackServerContext* context,
    const decryptv1beta1::SecureValueDecryptRequest* request,
    SecureValueDecryptResponseCollection* response) {
  return Serve(
      "DecryptSecureValues", context, response, pool_, observer_,
      [this, request, response](const CallCredentials& credentials, absl::Time deadline) {
        return handler_->TryDecryptSecureValuesWithoutBlocking(credentials, *request, deadline,
                                                               response);
      },
      [this, request, response](const CallCredentials& credentials, absl::Time deadline) {
        return handler_->DecryptSecureValues(credentials, *request, deadline, response);
      });
}

}  // namespace secret_resolver
