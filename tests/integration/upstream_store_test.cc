// store.upstream through real binaries: an "edge" sidecar whose store is a "central" sidecar (on
// SQLite, serving Grafana's decrypt API over TLS that requires a client certificate), reached
// over mTLS with certificates made by the test; and an edge whose upstream is a small server in
// this test that serves only decryptv1beta1, for the fallback and the forwarded token.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "decrypt/v1beta1/decrypt.grpc.pb.h"
#include "gtest/gtest.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"
#include "tests/testing/test_pki.h"

namespace secret_resolver {
namespace {

using secretresolver::v1::ResolveSecretsRequest;
using secretresolver::v1::ResolveSecretsResponse;
using secretresolver::v1::SecretResolver;

constexpr char kStack[] = "stacks-42";
constexpr char kWorkflows[] = "grafana-workflows";
constexpr char kK6[] = "k6";
// Stand-ins for production values: tests assert they never reach a log.
constexpr char kWorkflowsValue[] = "planted-upstream-value-5e1a";
constexpr char kSharedValue[] = "planted-shared-value-93c2";

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// `process`'s log once `needle` appears in it `at_least` times, or after 2 s (audit lines are
// written in batches every 50 ms).
std::string LogOnceSeen(const testing::SidecarProcess& process, const std::string& needle,
                        int at_least) {
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  std::string log = process.Log();
  while (Count(log, needle) < at_least && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    log = process.Log();
  }
  return log;
}

// One reference's outcome through an edge sidecar.
struct Outcome {
  grpc::Status call;
  bool has_secret = false;
  std::string value;
  bool stale = false;
  int64_t version = -1;
  int code = 0;  // the per-reference error's code
  std::string message;
};

Outcome ResolveOne(const std::string& target, const std::string& token, const std::string& name) {
  auto stub = SecretResolver::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.AddMetadata("x-access-token", token);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ResolveSecretsRequest request;
  request.set_stack(kStack);
  (*request.mutable_refs())["ref"] = absl::StrCat("secret://", name);
  ResolveSecretsResponse response;
  Outcome out;
  out.call = stub->ResolveSecrets(&context, request, &response);
  if (!out.call.ok()) return out;
  const auto& result = response.results().at("ref");
  out.has_secret = result.has_secret();
  out.value = result.secret().value();
  out.stale = result.secret().stale();
  out.version = result.secret().version();
  out.code = result.error().code();
  out.message = result.error().message();
  return out;
}

class UpstreamStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    pki_ = std::make_unique<testing::TestPki>(tmp != nullptr ? tmp : "/tmp");
    ASSERT_TRUE(pki_->MakeCa("ca") && pki_->MakeCa("other-ca") &&
                pki_->MakeLeaf("central", "ca") && pki_->MakeLeaf("edge", "ca") &&
                pki_->MakeLeaf("stranger", "other-ca"));
    // The central serves its change stream to the edge's certificate (CN=edge).
    absl::StatusOr<testing::SidecarState> central = testing::SidecarState::Create(
        "change_stream:\n  allowed_clients: [edge]\n", "",
        absl::StrCat("  tcp_address: 127.0.0.1:0\n  tls:\n    cert_file: ",
                     pki_->Path("central", "crt"), "\n    key_file: ",
                     pki_->Path("central", "key"), "\n    client_ca_file: ",
                     pki_->Path("ca", "crt"), "\n    require_client_cert: true\n"));
    ASSERT_TRUE(central.ok()) << central.status();
    central_state_ = std::make_unique<testing::SidecarState>(*std::move(central));
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(central_state_->store_path, &central_state_->key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    central_store_ = *std::move(store);
    Put(*central_store_, "api-token", kWorkflowsValue, {kWorkflows});
    Put(*central_store_, "shared", kSharedValue, {kWorkflows, kK6});
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> process =
        testing::SidecarProcess::Start(*central_state_);
    ASSERT_TRUE(process.ok()) << process.status();
    central_ = *std::move(process);
    const std::string tcp = central_->ServingAddress("tcp");
    ASSERT_FALSE(tcp.empty()) << central_->Log();
    central_address_ = absl::StrCat("127.0.0.1:", tcp.substr(tcp.rfind(':') + 1));
  }

  static void Put(SecretStore& store, const std::string& name, const std::string& value,
                  std::vector<std::string> decrypters) {
    SecretWrite write;
    write.stack = kStack;
    write.name = name;
    write.decrypters = std::move(decrypters);
    write.actor = "integration-test";
    write.value = SecretBytes(value);
    ASSERT_TRUE(store.Put(write).ok());
  }

  // Starts an edge sidecar on `store_yaml` (the whole store section; no KEK), trusting the
  // central's signing key.
  void StartEdge(const std::string& store_yaml, const std::string& extra_yaml = "") {
    absl::StatusOr<testing::SidecarState> edge =
        testing::SidecarState::Create(extra_yaml, "", "", store_yaml);
    ASSERT_TRUE(edge.ok()) << edge.status();
    edge_state_ = std::make_unique<testing::SidecarState>(*std::move(edge));
    // Tokens are minted by the central's key and verified by both.
    std::ifstream jwks(central_state_->jwks_file);
    std::ofstream(edge_state_->jwks_file)
        << std::string(std::istreambuf_iterator<char>(jwks), std::istreambuf_iterator<char>());
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> process =
        testing::SidecarProcess::Start(*edge_state_);
    ASSERT_TRUE(process.ok()) << process.status();
    edge_ = *std::move(process);
  }

  // The store section of an edge that reaches the central over mTLS as `client`.
  std::string MutualTlsStore(const std::string& client) const {
    return absl::StrCat("  upstream:\n    address: ", central_address_, "\n    ca_file: ",
                        pki_->Path("ca", "crt"), "\n    cert_file: ", pki_->Path(client, "crt"),
                        "\n    key_file: ", pki_->Path(client, "key"), "\n");
  }

  std::string Token(const std::string& service) const {
    return central_state_->Token(kStack, service);
  }

  // Resolves `name` through the edge until `done` holds for the outcome, at most `within`.
  template <typename Done>
  Outcome ResolveUntil(const std::string& token, const std::string& name, Done done,
                       absl::Duration within) {
    const absl::Time deadline = absl::Now() + within;
    Outcome out = ResolveOne(edge_->target(), token, name);
    while (!done(out) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(100));
      out = ResolveOne(edge_->target(), token, name);
    }
    return out;
  }

  std::unique_ptr<testing::TestPki> pki_;
  std::unique_ptr<testing::SidecarState> central_state_;
  // The central's database, for writes while it runs.
  std::unique_ptr<SqliteSecretStore> central_store_;
  std::unique_ptr<testing::SidecarProcess> central_;
  std::string central_address_;
  std::unique_ptr<testing::SidecarState> edge_state_;
  std::unique_ptr<testing::SidecarProcess> edge_;
};

TEST_F(UpstreamStoreTest, ResolvesThroughTheUpstreamWithItsPerNameErrors) {
  StartEdge(MutualTlsStore("edge"));
  const std::string workflows = Token(kWorkflows);

  const Outcome resolved = ResolveOne(edge_->target(), workflows, "api-token");
  ASSERT_TRUE(resolved.call.ok()) << resolved.call.error_message();
  ASSERT_TRUE(resolved.has_secret) << resolved.message << "\n" << edge_->Log();
  EXPECT_TRUE(resolved.value == kWorkflowsValue);
  EXPECT_FALSE(resolved.stale);
  EXPECT_EQ(resolved.version, 0);  // Grafana's API carries no version

  const Outcome missing = ResolveOne(edge_->target(), workflows, "no-such-secret");
  ASSERT_TRUE(missing.call.ok());
  EXPECT_EQ(missing.code, static_cast<int>(grpc::StatusCode::NOT_FOUND)) << missing.message;

  // The central decides: k6 is not a decrypter of api-token.
  const Outcome refused = ResolveOne(edge_->target(), Token(kK6), "api-token");
  ASSERT_TRUE(refused.call.ok());
  EXPECT_EQ(refused.code, static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_EQ(refused.message, "not authorized");

  // CheckReferences needs metadata, which Grafana's API does not give: per reference.
  {
    auto stub = SecretResolver::NewStub(
        grpc::CreateChannel(edge_->target(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.AddMetadata("x-access-token", workflows);
    secretresolver::v1::CheckReferencesRequest request;
    request.set_stack(kStack);
    (*request.mutable_refs())["ref"] = "secret://api-token";
    secretresolver::v1::CheckReferencesResponse response;
    ASSERT_TRUE(stub->CheckReferences(&context, request, &response).ok());
    EXPECT_EQ(response.results().at("ref").error().code(),
              static_cast<int>(grpc::StatusCode::UNIMPLEMENTED));
  }

  // The central saw the edge's callers' own tokens: its audit names both identities.
  const std::string central_log = LogOnceSeen(*central_, "\"caller\":\"k6\"", 1);
  EXPECT_EQ(Count(central_log, "\"caller\":\"grafana-workflows\""), 2) << central_log;
  EXPECT_EQ(Count(central_log, "\"caller\":\"k6\""), 1) << central_log;
  const std::string edge_log = edge_->Log();
  EXPECT_FALSE(absl::StrContains(edge_log, kWorkflowsValue));
  EXPECT_FALSE(absl::StrContains(edge_log, workflows));
}

TEST_F(UpstreamStoreTest, CachedAnswersAreKeptPerCallerIdentity) {
  StartEdge(MutualTlsStore("edge"));
  // Identity A's allowed value is cached at the edge...
  const Outcome first = ResolveOne(edge_->target(), Token(kWorkflows), "shared");
  ASSERT_TRUE(first.has_secret) << first.message;
  const Outcome again = ResolveOne(edge_->target(), Token(kWorkflows), "shared");
  ASSERT_TRUE(again.has_secret) << again.message;

  // ...and identity B, though also allowed, is asked about at the central, not served A's entry.
  const Outcome other = ResolveOne(edge_->target(), Token(kK6), "shared");
  ASSERT_TRUE(other.has_secret) << other.message;
  EXPECT_TRUE(other.value == kSharedValue);
  const std::string log = LogOnceSeen(*central_, "\"caller\":\"k6\"", 1);
  EXPECT_EQ(Count(log, "\"caller\":\"k6\""), 1) << log;
  // A's second read was a cache hit at the edge: the central saw "shared" once per identity.
  EXPECT_EQ(Count(log, "\"secret\":\"shared\""), 2) << log;

  // A value cached for A is never served to B, whom the central refuses.
  ASSERT_TRUE(ResolveOne(edge_->target(), Token(kWorkflows), "api-token").has_secret);
  const Outcome refused = ResolveOne(edge_->target(), Token(kK6), "api-token");
  EXPECT_FALSE(refused.has_secret);
  EXPECT_EQ(refused.code, static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));
}

TEST_F(UpstreamStoreTest, AClientCertificateTheUpstreamDoesNotTrustIsUnavailable) {
  StartEdge(MutualTlsStore("stranger"));
  const Outcome refused = ResolveOne(edge_->target(), Token(kWorkflows), "api-token");
  ASSERT_TRUE(refused.call.ok()) << refused.call.error_message();
  EXPECT_EQ(refused.code, static_cast<int>(grpc::StatusCode::UNAVAILABLE));
  EXPECT_TRUE(absl::StrContains(refused.message, "correlation id")) << refused.message;
  // The detail is in the edge's log, under that correlation id.
  const std::string id = refused.message.substr(refused.message.rfind(' ') + 1);
  const std::string with_id = absl::StrCat("\"correlation_id\":\"", id, "\"");
  const std::string log = LogOnceSeen(*edge_, with_id, 1);
  EXPECT_TRUE(absl::StrContains(log, with_id)) << log;
  EXPECT_TRUE(absl::StrContains(log, "store.upstream: the call failed")) << log;
}

TEST_F(UpstreamStoreTest, UpstreamDownServesStaleWithinMaxStaleThenUnavailable) {
  StartEdge(MutualTlsStore("edge"),
            "cache:\n  ttl: 1s\n  refresh_ahead: 0s\n  refresh_jitter: 0s\n  max_stale: 3s\n");
  const std::string token = Token(kWorkflows);
  ASSERT_TRUE(ResolveOne(edge_->target(), token, "api-token").has_secret) << edge_->Log();
  central_->Terminate();

  const Outcome stale = ResolveUntil(
      token, "api-token", [](const Outcome& o) { return o.stale || !o.has_secret; },
      absl::Seconds(5));
  ASSERT_TRUE(stale.has_secret) << stale.message;
  EXPECT_TRUE(stale.stale);
  EXPECT_TRUE(stale.value == kWorkflowsValue);

  const Outcome gone = ResolveUntil(
      token, "api-token", [](const Outcome& o) { return !o.has_secret; }, absl::Seconds(10));
  EXPECT_FALSE(gone.has_secret);
  EXPECT_EQ(gone.code, static_cast<int>(grpc::StatusCode::UNAVAILABLE)) << gone.message;
}

TEST_F(UpstreamStoreTest, ChangesOnTheCentralReachTheEdgeThroughItsChangeStream) {
  // The default TTL (300 s): only the change stream can make the edge drop its entries.
  StartEdge(MutualTlsStore("edge") + "    change_stream: true\n");
  const std::string workflows = Token(kWorkflows);
  ASSERT_TRUE(ResolveOne(edge_->target(), workflows, "api-token").has_secret) << edge_->Log();
  const Outcome before = ResolveOne(edge_->target(), workflows, "shared");
  ASSERT_TRUE(before.has_secret) << before.message;
  // The edge's feed is subscribed once the central logs the stream's start.
  LogOnceSeen(*central_, "\"method\":\"WatchChanges\"", 1);

  // A revoked decrypter is refused within 1 s of the write.
  Put(*central_store_, "api-token", kWorkflowsValue, {kK6});
  const Outcome revoked = ResolveUntil(
      workflows, "api-token", [](const Outcome& o) { return !o.has_secret; }, absl::Seconds(1));
  EXPECT_FALSE(revoked.has_secret) << "api-token still served 1 s after its decrypter was removed";
  EXPECT_EQ(revoked.code, static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));

  // A new value is served within 1 s of the write.
  const std::string rotated = "rotated-shared-value";
  Put(*central_store_, "shared", rotated, {kWorkflows, kK6});
  const Outcome after = ResolveUntil(
      workflows, "shared", [&](const Outcome& o) { return o.value == rotated; },
      absl::Seconds(1));
  EXPECT_TRUE(after.value == rotated) << "the old value was still served 1 s after the update";
}

// An upstream that serves only decryptv1beta1, as older Grafana versions do, and records the
// token each call presented.
class V1beta1Only final : public decryptv1beta1::SecureValueDecrypter::Service {
 public:
  grpc::Status DecryptSecureValues(
      grpc::ServerContext* context, const decryptv1beta1::SecureValueDecryptRequest* request,
      decryptv1beta1::SecureValueDecryptResponseCollection* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto token = context->client_metadata().find("x-access-token");
      tokens_.push_back(token == context->client_metadata().end()
                            ? ""
                            : std::string(token->second.data(), token->second.size()));
    }
    for (const std::string& name : request->names()) {
      auto& result = (*response->mutable_decrypted_values())[name];
      if (request->namespace_() == kStack && name == "api-token") {
        result.set_value(kWorkflowsValue);
      } else {
        result.set_error_message("not found");
      }
    }
    return grpc::Status::OK;
  }

  std::vector<std::string> tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> tokens_;
};

TEST_F(UpstreamStoreTest, FallsBackToV1beta1AndForwardsTheCallersToken) {
  V1beta1Only service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  StartEdge(absl::StrCat("  upstream:\n    address: 127.0.0.1:", port,
                         "\n    allow_insecure: true\n"));
  const std::string token = Token(kWorkflows);

  const Outcome resolved = ResolveOne(edge_->target(), token, "api-token");
  ASSERT_TRUE(resolved.has_secret) << resolved.message << "\n" << edge_->Log();
  EXPECT_TRUE(resolved.value == kWorkflowsValue);
  const Outcome missing = ResolveOne(edge_->target(), token, "other");
  EXPECT_EQ(missing.code, static_cast<int>(grpc::StatusCode::NOT_FOUND)) << missing.message;

  const std::vector<std::string> seen = service.tokens();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0] == token && seen[1] == token);
  server->Shutdown();
}

}  // namespace
}  // namespace secret_resolver
