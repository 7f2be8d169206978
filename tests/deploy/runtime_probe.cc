// A gRPC client for tests/deploy/runtime_image_test.sh: checks that a sidecar started from the
// assembled runtime file set serves, through the Unix socket it created.
//
//   runtime_probe SOCKET_PATH TOKEN_FILE EXPECTED_VALUE_FILE
//
// Asks grpc.health.v1.Health/Check (must be SERVING), then ResolveSecrets for stack "stacks-1"
// and ref "api-token" -> secret://workflows/http/auth-token with the token in TOKEN_FILE as
// `authorization: Bearer`, and compares the value with EXPECTED_VALUE_FILE. Exit status 0 when
// all holds; otherwise 1 with the reason on stderr (never the value).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "secretresolver/v1/resolver.grpc.pb.h"

namespace {

bool ReadFile(const char* path, std::string* out) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return false;
  out->assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  return true;
}

int Fail(const std::string& why) {
  std::fprintf(stderr, "runtime_probe: %s\n", why.c_str());
  return 1;
}

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(10);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return Fail("usage: runtime_probe SOCKET_PATH TOKEN_FILE EXPECTED_VALUE_FILE");
  std::string token, expected;
  if (!ReadFile(argv[2], &token)) return Fail(std::string("cannot read ") + argv[2]);
  if (!ReadFile(argv[3], &expected)) return Fail(std::string("cannot read ") + argv[3]);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();

  auto channel =
      grpc::CreateChannel(std::string("unix:") + argv[1], grpc::InsecureChannelCredentials());

  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext health_context;
  health_context.set_deadline(Deadline());
  grpc::health::v1::HealthCheckRequest health_request;
  grpc::health::v1::HealthCheckResponse health_response;
  grpc::Status status = health->Check(&health_context, health_request, &health_response);
  if (!status.ok()) return Fail("Health/Check: " + status.error_message());
  if (health_response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return Fail("Health/Check: not SERVING");
  }

  auto resolver = secretresolver::v1::SecretResolver::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  context.AddMetadata("authorization", "Bearer " + token);
  secretresolver::v1::ResolveSecretsRequest request;
  request.set_stack("stacks-1");
  (*request.mutable_refs())["api-token"] = "secret://workflows/http/auth-token";
  secretresolver::v1::ResolveSecretsResponse response;
  status = resolver->ResolveSecrets(&context, request, &response);
  if (!status.ok()) return Fail("ResolveSecrets: " + status.error_message());
  auto it = response.results().find("api-token");
  if (it == response.results().end()) return Fail("ResolveSecrets: no result for api-token");
  if (!it->second.has_secret()) {
    return Fail("ResolveSecrets: api-token: error " + it->second.error().message());
  }
  if (it->second.secret().value() != expected) {
    return Fail("ResolveSecrets: api-token: the value differs from the stored one");
  }
  if (it->second.secret().redaction().fingerprint().rfind("hmac-sha256:", 0) != 0) {
    return Fail("ResolveSecrets: api-token: no fingerprint");
  }
  std::printf("runtime_probe: health SERVING; ResolveSecrets returned version %lld\n",
              static_cast<long long>(it->second.secret().version()));
  return 0;
}
