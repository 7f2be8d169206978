// The gRPC services: thin adapters from gRPC's callback API to ResolveHandler.
//   - SecretResolverService: secretresolver.v1.SecretResolver
//   - SecureValueDecrypterService: decryptv1beta1.SecureValueDecrypter (Grafana's API)
// Each call copies its credential metadata and deadline. If the handler can answer without
// blocking (a verified token and every reference in the caches), it does so on gRPC's thread;
// otherwise the call goes to the WorkerPool, so blocking work (store I/O, signature checks, a
// JWKS fetch) never runs on a gRPC thread. Either way it finishes with the handler's status
// mapped one-to-one. A full pool answers RESOURCE_EXHAUSTED at once. When a call is done, the secret
// values in its response message are wiped.
//
// Thread safety: gRPC calls the methods concurrently; the services hold no mutable state.
#ifndef SECRET_RESOLVER_SERVER_GRPC_SERVICES_H_
#define SECRET_RESOLVER_SERVER_GRPC_SERVICES_H_

#include <functional>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "decrypt/v1beta1/decrypt.grpc.pb.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "server/resolve_handler.h"
#include "server/worker_pool.h"

namespace secret_resolver {

// Told of every finished call: the method name, its status code and how long it took.
using CallObserver =
    std::function<void(absl::string_view method, absl::StatusCode code, absl::Duration latency)>;

class SecretResolverService final : public secretresolver::v1::SecretResolver::CallbackService {
 public:
  // `handler` and `pool` must outlive the service. `observer` may be empty.
  SecretResolverService(ResolveHandler* handler, WorkerPool* pool, CallObserver observer);

  grpc::ServerUnaryReactor* ResolveSecrets(
      grpc::CallbackServerContext* context,
      const secretresolver::v1::ResolveSecretsRequest* request,
      secretresolver::v1::ResolveSecretsResponse* response) override;

 private:
  ResolveHandler* const handler_;
  WorkerPool* const pool_;
  const CallObserver observer_;
};

class SecureValueDecrypterService final
    : public decryptv1beta1::SecureValueDecrypter::CallbackService {
 public:
  // `handler` and `pool` must outlive the service. `observer` may be empty.
  SecureValueDecrypterService(ResolveHandler* handler, WorkerPool* pool, CallObserver observer);

  grpc::ServerUnaryReactor* DecryptSecureValues(
      grpc::CallbackServerContext* context,
      const decryptv1beta1::SecureValueDecryptRequest* request,
      decryptv1beta1::SecureValueDecryptResponseCollection* response) override;

 private:
  ResolveHandler* const handler_;
  WorkerPool* const pool_;
  const CallObserver observer_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_GRPC_SERVICES_H_
