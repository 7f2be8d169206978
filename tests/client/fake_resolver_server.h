// FakeResolverServer: an in-process gRPC SecretResolver on a real, temporary Unix socket, with
// failure knobs, for the client library's tests. It resolves `secret://NAME` for the secrets a
// test adds (any stack, any token) and records every call it receives.
//
// Thread safety: every method may be called from any thread.
#ifndef SECRET_RESOLVER_TESTS_CLIENT_FAKE_RESOLVER_SERVER_H_
#define SECRET_RESOLVER_TESTS_CLIENT_FAKE_RESOLVER_SERVER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace secret_resolver {
namespace testing {

// What the server saw of one call.
struct SeenCall {
  std::string stack;
  std::map<std::string, std::string> refs;
  std::string x_access_token;  // "" when absent
  std::string authorization;   // "" when absent
};

// TLS for the fake server: PEM text, not file names.
struct FakeServerTls {
  std::string cert_chain;
  std::string private_key;
  std::string client_ca;  // non-empty: clients must present a certificate it signed (mTLS)
};

class FakeResolverServer {
 public:
  // Starts a server on a fresh socket in a short /tmp directory, with TLS if `tls` is set.
  static absl::StatusOr<std::unique_ptr<FakeResolverServer>> Start(
      const std::optional<FakeServerTls>& tls = std::nullopt);
  ~FakeResolverServer();

  // `unix:PATH`, for ClientOptions::target.
  std::string target() const { return "unix:" + socket_path_; }

  // `secret://NAME` resolves to `value` at `version`; the placeholder is
  // `***SECRET_REDACTED:<ref key>***`, as the sidecar's default.
  void AddSecret(const std::string& name, const std::string& value, int64_t version = 1);
  // The next `count` calls end with `code` (and nothing resolved).
  void FailNext(int count, grpc::StatusCode code);
  // Every call waits this long (or until the client gives up) before answering.
  void set_delay(absl::Duration delay);

  int calls() const;
  std::vector<SeenCall> seen() const;

  class Service;

 private:
  FakeResolverServer() = default;

  std::string socket_dir_;
  std::string socket_path_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_CLIENT_FAKE_RESOLVER_SERVER_H_
