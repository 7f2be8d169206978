// Shared pieces of the fault cases: requests for one stack and service, a secret write, and a
// stub on a sidecar's socket.
//
// Thread safety: the functions are thread-safe; a Stub is used as gRPC stubs are.
#ifndef SECRET_RESOLVER_TESTS_FAULTS_FAULT_FIXTURE_H_
#define SECRET_RESOLVER_TESTS_FAULTS_FAULT_FIXTURE_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "secretresolver/v1/resolver.grpc.pb.h"

namespace secret_resolver {
namespace testing {

inline constexpr char kFaultStack[] = "stacks-15";
inline constexpr char kFaultService[] = "grafana-workflows";

// A request for `names` of kFaultStack, each under the ref key "r<i>".
inline secretresolver::v1::ResolveSecretsRequest RequestFor(
    const std::vector<std::string>& names) {
  secretresolver::v1::ResolveSecretsRequest request;
  request.set_stack(kFaultStack);
  for (size_t i = 0; i < names.size(); ++i) {
    (*request.mutable_refs())[absl::StrCat("r", i)] = absl::StrCat("secret://", names[i]);
  }
  return request;
}

// Writes `value` as the newest version of `name` in kFaultStack, decryptable by `decrypters`.
inline absl::StatusOr<int64_t> WriteSecret(SecretStore& store, const std::string& name,
                                           const std::string& value,
                                           std::vector<std::string> decrypters = {
                                               kFaultService}) {
  SecretWrite write;
  write.stack = kFaultStack;
  write.name = name;
  write.decrypters = std::move(decrypters);
  write.actor = "fault-suite";
  write.value = SecretBytes(value);
  return store.Put(write);
}

inline std::unique_ptr<secretresolver::v1::SecretResolver::Stub> StubFor(
    const std::string& target) {
  return secretresolver::v1::SecretResolver::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
}

// One call with `token` and a deadline `timeout` from now.
inline grpc::Status Call(secretresolver::v1::SecretResolver::Stub& stub, const std::string& token,
                         const secretresolver::v1::ResolveSecretsRequest& request,
                         secretresolver::v1::ResolveSecretsResponse* response,
                         absl::Duration timeout = absl::Seconds(5)) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + token);
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(timeout));
  return stub.ResolveSecrets(&context, request, response);
}

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_FAULTS_FAULT_FIXTURE_H_
