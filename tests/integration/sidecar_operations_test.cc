// End-to-end tests of the sidecar's operational behaviour, each on the real binary through the
// generated stubs: an update made with the real secretctl binary seen within a second; stale
// values served while a real PostgreSQL store is down; TLS and mTLS on the TCP listener with
// certificate reload; the probe-only health listener.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"
#include "tests/integration/test_pki.h"
#include "tests/testing/postgres_server.h"
#include "tests/tools/secretctl/secretctl_runner.h"

namespace secret_resolver {
namespace {

using ::secretresolver::v1::ResolveSecretsRequest;
using ::secretresolver::v1::ResolveSecretsResponse;
using ::secretresolver::v1::SecretResolver;

constexpr char kStack[] = "stacks-7";
constexpr char kService[] = "grafana-workflows";
constexpr char kName[] = "workflows/http/auth-token";
// Stand-ins for production credentials.
constexpr char kValue[] = "planted-ops-token-51d2";
constexpr char kRotatedValue[] = "planted-ops-token-rotated-9ac0";

ResolveSecretsRequest OneRef() {
  ResolveSecretsRequest request;
  request.set_stack(kStack);
  (*request.mutable_refs())["token"] = absl::StrCat("secret://", kName);
  return request;
}

grpc::Status Resolve(SecretResolver::Stub& stub, const std::string& token,
                     ResolveSecretsResponse* response) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + token);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return stub.ResolveSecrets(&context, OneRef(), response);
}

void PutSecret(SecretStore& store, const std::string& value) {
  SecretWrite write;
  write.stack = kStack;
  write.name = kName;
  write.decrypters = {kService};
  write.actor = "integration-test";
  write.value = SecretBytes(value);
  ASSERT_TRUE(store.Put(write).ok());
}

TEST(SidecarOperationsTest, UpdateMadeWithSecretctlIsSeenWithinOneSecond) {
  absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create();
  ASSERT_TRUE(state.ok()) << state.status();
  {
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(state->store_path, &state->key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    PutSecret(**store, kValue);
  }
  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
      testing::SidecarProcess::Start(*state);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  auto stub = SecretResolver::NewStub(
      grpc::CreateChannel((*sidecar)->target(), grpc::InsecureChannelCredentials()));
  const std::string token = state->Token(kStack, kService);
  ResolveSecretsResponse response;
  ASSERT_TRUE(Resolve(*stub, token, &response).ok());
  ASSERT_EQ(response.results().at("token").secret().version(), 1);

  testing::SecretctlRun run;
  run.args = {"update",   absl::StrCat("--store=sqlite:", state->store_path),
              "--kek-file", state->kek_file,
              "--stack",    kStack,
              "--name",     kName,
              "--decrypter", kService};
  run.stdin_data = kRotatedValue;
  const testing::SecretctlResult updated = testing::RunSecretctl(run);
  ASSERT_EQ(updated.exit_code, 0) << updated.Describe({kValue, kRotatedValue});
  const absl::Time written = absl::Now();

  int64_t version = 1;
  while (absl::Now() - written < absl::Seconds(1)) {
    response.Clear();
    ASSERT_TRUE(Resolve(*stub, token, &response).ok());
    version = response.results().at("token").secret().version();
    if (version == 2) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(version, 2);
  EXPECT_TRUE(response.results().at("token").secret().value() == kRotatedValue);
}

TEST(SidecarOperationsTest, StaleValueIsServedWhileThePostgresStoreIsDown) {
  absl::StatusOr<std::unique_ptr<PostgresServer>> postgres = PostgresServer::Start();
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  // Refresh-ahead and its jitter are made negligible so that the only store call after the
  // first is the one that finds the store gone.
  absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create(
      "cache:\n  ttl: 1s\n  refresh_ahead: 1ms\n  refresh_jitter: 1ms\n  max_stale: 60s\n",
      (*postgres)->dsn());
  ASSERT_TRUE(state.ok()) << state.status();
  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
      testing::SidecarProcess::Start(*state);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  {
    // The sidecar created the schema; write through the same store code a writer would use.
    testing::SecretctlRun run;
    run.args = {"create", absl::StrCat("--store=postgres:", (*postgres)->dsn()),
                "--kek-file", state->kek_file, "--stack", kStack, "--name", kName,
                "--decrypter", kService};
    run.stdin_data = kValue;
    const testing::SecretctlResult created = testing::RunSecretctl(run);
    ASSERT_EQ(created.exit_code, 0) << created.Describe({kValue});
  }
  auto stub = SecretResolver::NewStub(
      grpc::CreateChannel((*sidecar)->target(), grpc::InsecureChannelCredentials()));
  const std::string token = state->Token(kStack, kService);

  ResolveSecretsResponse fresh;
  ASSERT_TRUE(Resolve(*stub, token, &fresh).ok());
  ASSERT_TRUE(fresh.results().at("token").has_secret());
  EXPECT_FALSE(fresh.results().at("token").secret().stale());

  ASSERT_TRUE((*postgres)->Stop().ok());
  absl::SleepFor(absl::Milliseconds(1300));  // past the TTL
  ResolveSecretsResponse stale;
  ASSERT_TRUE(Resolve(*stub, token, &stale).ok());
  ASSERT_TRUE(stale.results().at("token").has_secret())
      << stale.results().at("token").error().message();
  EXPECT_TRUE(stale.results().at("token").secret().stale());
  EXPECT_TRUE(stale.results().at("token").secret().value() == kValue);
  EXPECT_EQ(stale.results().at("token").secret().version(), 1);

  // Once the store is back, values are fresh again.
  ASSERT_TRUE((*postgres)->Restart().ok());
  bool fresh_again = false;
  for (int i = 0; i < 100 && !fresh_again; ++i) {
    ResolveSecretsResponse response;
    ASSERT_TRUE(Resolve(*stub, token, &response).ok());
    fresh_again = response.results().at("token").has_secret() &&
                  !response.results().at("token").secret().stale();
    if (!fresh_again) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(fresh_again);
}

class SidecarTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    pki_ = std::make_unique<testing::TestPki>(tmp != nullptr ? tmp : "/tmp");
    ASSERT_TRUE(pki_->MakeCa("ca") && pki_->MakeCa("other-ca") && pki_->MakeLeaf("server", "ca") &&
                pki_->MakeLeaf("client", "ca") && pki_->MakeLeaf("stranger", "other-ca"));
    absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create(
        "", "",
        absl::StrCat("  tcp_address: 127.0.0.1:0\n  tls:\n    cert_file: ",
                     pki_->Path("server", "crt"), "\n    key_file: ", pki_->Path("server", "key"),
                     "\n    client_ca_file: ", pki_->Path("ca", "crt"),
                     "\n    require_client_cert: true\n    reload_interval: 1s\n"));
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = std::make_unique<testing::SidecarState>(*std::move(state));
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(state_->store_path, &state_->key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    PutSecret(**store, kValue);
  }

  // A call over TLS trusting `ca`, presenting `client` ("" for no client certificate).
  grpc::Status CallAs(const std::string& ca, const std::string& client) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pki_->Read(ca, "crt");
    if (!client.empty()) {
      options.pem_private_key = pki_->Read(client, "key");
      options.pem_cert_chain = pki_->Read(client, "crt");
    }
    // An IP target: no DNS resolution (whose library leaks under LeakSanitizer), and the
    // certificate names 127.0.0.1.
    const std::string port = target_.substr(target_.rfind(':') + 1);
    auto stub = SecretResolver::NewStub(
        grpc::CreateChannel("ipv4:127.0.0.1:" + port, grpc::SslCredentials(options)));
    ResolveSecretsResponse response;
    grpc::Status status = Resolve(*stub, state_->Token(kStack, kService), &response);
    if (status.ok() && !response.results().at("token").has_secret()) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "no secret in the response");
    }
    return status;
  }

  std::unique_ptr<testing::TestPki> pki_;
  std::unique_ptr<testing::SidecarState> state_;
  std::string target_;
};

TEST_F(SidecarTlsTest, MutualTlsAcceptsOnlyClientsOfTheConfiguredCa) {
  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
      testing::SidecarProcess::Start(*state_);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  target_ = (*sidecar)->ServingAddress("tcp");
  ASSERT_FALSE(target_.empty()) << (*sidecar)->Log();

  EXPECT_TRUE(CallAs("ca", "client").ok());
  EXPECT_EQ(CallAs("ca", "").error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(CallAs("ca", "stranger").error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(CallAs("other-ca", "client").error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SidecarTlsTest, RotatedServerCertificateIsServedWithoutARestart) {
  ASSERT_TRUE(pki_->MakeLeaf("rotated", "other-ca"));
  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
      testing::SidecarProcess::Start(*state_);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  target_ = (*sidecar)->ServingAddress("tcp");
  ASSERT_TRUE(CallAs("ca", "client").ok());

  // Replace key and certificate the way a certificate manager does: each file renamed into place.
  for (const char* ext : {"key", "crt"}) {
    const std::string staged = pki_->Path("server", absl::StrCat(ext, ".new"));
    std::ofstream(staged) << pki_->Read("rotated", ext);
    ASSERT_EQ(std::rename(staged.c_str(), pki_->Path("server", ext).c_str()), 0);
  }
  // reload_interval is 1 s; new connections get the new certificate soon after.
  bool rotated = false;
  for (int i = 0; i < 50 && !rotated; ++i) {
    rotated = CallAs("other-ca", "client").ok();
    if (!rotated) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(rotated);
  EXPECT_EQ(CallAs("ca", "client").error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(SidecarHealthListenerTest, ServesHealthAndNothingElse) {
  absl::StatusOr<testing::SidecarState> state =
      testing::SidecarState::Create("", "", "  health_address: 127.0.0.1:0\n");
  ASSERT_TRUE(state.ok()) << state.status();
  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
      testing::SidecarProcess::Start(*state);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  const std::string target = (*sidecar)->ServingAddress("health");
  ASSERT_FALSE(target.empty()) << (*sidecar)->Log();
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());

  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckResponse reply;
  ASSERT_TRUE(health->Check(&context, grpc::health::v1::HealthCheckRequest(), &reply).ok());
  EXPECT_EQ(reply.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  auto stub = SecretResolver::NewStub(channel);
  ResolveSecretsResponse response;
  EXPECT_EQ(Resolve(*stub, state->Token(kStack, kService), &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

}  // namespace
}  // namespace secret_resolver
