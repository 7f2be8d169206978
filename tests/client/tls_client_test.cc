// SecretResolverClient over TLS and mTLS, against the in-process server with TLS credentials.
// The certificates are made per test run with the openssl command: a test CA, a server
// certificate for "localhost", a client certificate, and a second CA that signed nothing the
// server holds. Handshake failures are UNAVAILABLE in gRPC, so the client's retry policy runs;
// the fake clock and a no-op sleep keep that instant.
#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "client/secret_resolver_client.h"
#include "tests/client/fake_resolver_server.h"
#include "tests/fakes/fake_clock.h"

namespace secret_resolver {
namespace client {
namespace {

using ::secret_resolver::testing::FakeResolverServer;
using ::secret_resolver::testing::FakeServerTls;

constexpr char kValue[] = "fake-tls-value-0b7e";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class TlsClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/tls-XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = new std::string(pattern);
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    const std::string script = absl::StrCat(
        "set -e; cd '", *dir_, "';",
        "openssl req -x509 ", key, " -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca",
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign;",
        "openssl req -x509 ", key, " -keyout other-ca.key -out other-ca.pem -days 1",
        " -subj /CN=other-ca -addext basicConstraints=critical,CA:TRUE;",
        "openssl req ", key, " -keyout server.key -out server.csr -subj /CN=localhost;",
        "printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > server.ext;",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial",
        " -out server.pem -days 1 -extfile server.ext;",
        "openssl req ", key, " -keyout client.key -out client.csr -subj /CN=grafana-workflows;",
        "printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > client.ext;",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial",
        " -out client.pem -days 1 -extfile client.ext;");
    {
      std::ofstream out(*dir_ + "/make-certs.sh");
      out << script << "\n";
    }
    const std::string command =
        absl::StrCat("/bin/sh '", *dir_, "/make-certs.sh' >'", *dir_, "/openssl.log' 2>&1");
    ASSERT_EQ(std::system(command.c_str()), 0) << ReadFile(*dir_ + "/openssl.log");
  }

  static void TearDownTestSuite() { delete dir_; }

  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }

  void StartServer(bool require_client_certificate) {
    FakeServerTls tls;
    tls.cert_chain = ReadFile(Path("server.pem"));
    tls.private_key = ReadFile(Path("server.key"));
    if (require_client_certificate) tls.client_ca = ReadFile(Path("ca.pem"));
    absl::StatusOr<std::unique_ptr<FakeResolverServer>> server = FakeResolverServer::Start(tls);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    server_->AddSecret("workflows/api", kValue, 1);
  }

  absl::StatusOr<ResolvedSecrets> Resolve(TlsOptions tls) {
    ClientOptions options;
    options.target = server_->target();
    options.tls = std::move(tls);
    options.tls->server_name_override = "localhost";
    options.token_provider = []() -> absl::StatusOr<std::string> {
      return std::string("test-token");
    };
    options.clock = &clock_;
    options.sleep = [this](absl::Duration d) { clock_.Advance(d); };
    options.retry.max_attempts = 2;
    absl::StatusOr<std::unique_ptr<SecretResolverClient>> client =
        SecretResolverClient::Create(std::move(options));
    if (!client.ok()) return client.status();
    return (*client)->ResolveSecrets("stacks-1", {{"api", "secret://workflows/api"}});
  }

  static std::string* dir_;
  std::unique_ptr<FakeResolverServer> server_;
  FakeClock clock_{absl::Now()};
};

std::string* TlsClientTest::dir_ = nullptr;

TEST_F(TlsClientTest, ResolvesOverTls) {
  StartServer(/*require_client_certificate=*/false);
  absl::StatusOr<ResolvedSecrets> results = Resolve(TlsOptions{Path("ca.pem"), "", "", ""});
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_TRUE(results->at("api").ok());
  EXPECT_TRUE(results->at("api")->value.Equals(absl::string_view(kValue)));
}

TEST_F(TlsClientTest, ServerSignedByAnotherCaIsRefused) {
  StartServer(false);
  absl::StatusOr<ResolvedSecrets> results =
      Resolve(TlsOptions{Path("other-ca.pem"), "", "", ""});
  EXPECT_EQ(results.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(server_->calls(), 0);
}

TEST_F(TlsClientTest, MutualTlsNeedsTheClientCertificate) {
  StartServer(/*require_client_certificate=*/true);
  absl::StatusOr<ResolvedSecrets> without = Resolve(TlsOptions{Path("ca.pem"), "", "", ""});
  EXPECT_EQ(without.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(server_->calls(), 0);

  absl::StatusOr<ResolvedSecrets> with =
      Resolve(TlsOptions{Path("ca.pem"), Path("client.pem"), Path("client.key"), ""});
  ASSERT_TRUE(with.ok()) << with.status();
  ASSERT_TRUE(with->at("api").ok());
  EXPECT_EQ(server_->calls(), 1);
}

}  // namespace
}  // namespace client
}  // namespace secret_resolver
