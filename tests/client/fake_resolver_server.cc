#include "tests/client/fake_resolver_server.h"

#include <stdlib.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "secretresolver/v1/resolver.grpc.pb.h"

namespace secret_resolver {
namespace testing {

using ::secretresolver::v1::ResolveSecretsRequest;
using ::secretresolver::v1::ResolveSecretsResponse;

class FakeResolverServer::Service final : public secretresolver::v1::SecretResolver::Service {
 public:
  grpc::Status ResolveSecrets(grpc::ServerContext* context, const ResolveSecretsRequest* request,
                              ResolveSecretsResponse* response) override {
    SeenCall call;
    call.stack = request->stack();
    call.refs.insert(request->refs().begin(), request->refs().end());
    for (const auto& [key, value] : context->client_metadata()) {
      const std::string name(key.data(), key.size());
      if (name == "x-access-token") call.x_access_token.assign(value.data(), value.size());
      if (name == "authorization") call.authorization.assign(value.data(), value.size());
    }
    absl::Duration delay;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(std::move(call));
      delay = delay_;
      if (failures_left_ > 0) {
        --failures_left_;
        return grpc::Status(failure_code_, "injected failure");
      }
    }
    const absl::Time until = absl::Now() + delay;
    while (absl::Now() < until && !context->IsCancelled()) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");

    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, uri] : request->refs()) {
      auto& result = (*response->mutable_results())[key];
      const auto it = absl::StartsWith(uri, "secret://")
                          ? secrets_.find(uri.substr(std::string("secret://").size()))
                          : secrets_.end();
      if (it == secrets_.end()) {
        result.mutable_error()->set_code(static_cast<int>(grpc::StatusCode::NOT_FOUND));
        result.mutable_error()->set_message("not found");
        continue;
      }
      auto* secret = result.mutable_secret();
      secret->set_value(it->second.value);
      secret->set_name(it->first);
      secret->set_version(it->second.version);
      secret->mutable_redaction()->set_placeholder(
          absl::StrCat("***SECRET_REDACTED:", key, "***"));
      secret->mutable_redaction()->set_fingerprint(absl::StrCat("hmac-sha256:fake-", it->first));
    }
    return grpc::Status::OK;
  }

  struct Secret {
    std::string value;
    int64_t version;
  };

  mutable std::mutex mu_;
  std::map<std::string, Secret> secrets_;
  std::vector<SeenCall> seen_;
  int failures_left_ = 0;
  grpc::StatusCode failure_code_ = grpc::StatusCode::UNAVAILABLE;
  absl::Duration delay_;
};

absl::StatusOr<std::unique_ptr<FakeResolverServer>> FakeResolverServer::Start(
    const std::optional<FakeServerTls>& tls) {
  std::unique_ptr<FakeResolverServer> server(new FakeResolverServer());
  std::string pattern = "/tmp/fake-sr-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::FailedPreconditionError("cannot create a socket directory");
  }
  server->socket_dir_ = pattern;
  server->socket_path_ = pattern + "/resolver.sock";
  server->service_ = std::make_unique<Service>();
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (tls.has_value()) {
    grpc::SslServerCredentialsOptions ssl(
        tls->client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                               : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = tls->client_ca;
    ssl.pem_key_cert_pairs.push_back({tls->private_key, tls->cert_chain});
    credentials = grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(server->target(), credentials);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("cannot listen on ", server->target()));
  }
  return server;
}

FakeResolverServer::~FakeResolverServer() {
  if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  server_.reset();
  unlink(socket_path_.c_str());
  rmdir(socket_dir_.c_str());
}

void FakeResolverServer::AddSecret(const std::string& name, const std::string& value,
                                   int64_t version) {
  std::lock_guard<std::mutex> lock(service_->mu_);
  service_->secrets_[name] = Service::Secret{value, version};
}

void FakeResolverServer::FailNext(int count, grpc::StatusCode code) {
  std::lock_guard<std::mutex> lock(service_->mu_);
  service_->failures_left_ = count;
  service_->failure_code_ = code;
}

void FakeResolverServer::set_delay(absl::Duration delay) {
  std::lock_guard<std::mutex> lock(service_->mu_);
  service_->delay_ = delay;
}

int FakeResolverServer::calls() const {
  std::lock_guard<std::mutex> lock(service_->mu_);
  return static_cast<int>(service_->seen_.size());
}

std::vector<SeenCall> FakeResolverServer::seen() const {
  std::lock_guard<std::mutex> lock(service_->mu_);
  return service_->seen_;
}

}  // namespace testing
}  // namespace secret_resolver
