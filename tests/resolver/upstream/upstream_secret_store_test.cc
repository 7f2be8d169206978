// UpstreamSecretStore against a SecureValueDecrypter server in this process, over real gRPC on a
// loopback port: Grafana's per-name strings and whole-call failures mapped to our codes, the
// tokens it presents (the caller's, or the newest unexpired one remembered for refreshes), the
// v1beta1 fallback, health, what it refuses to do and the options it refuses to open with.
#include "resolver/upstream/upstream_secret_store.h"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "decrypt/v1/decrypt.grpc.pb.h"
#include "decrypt/v1beta1/decrypt.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"
#include "tests/testing/status_matchers.h"

namespace secret_resolver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kStack[] = "stacks-7";
constexpr char kIdentity[] = "grafana-workflows";

// Answers each name from `results` ("value:..." for a value, anything else an error string),
// or fails the whole call with `call_status`; records the tokens presented.
class Decrypter final : public decryptv1::SecureValueDecrypter::Service {
 public:
  grpc::Status DecryptSecureValues(
      grpc::ServerContext* context, const decryptv1::SecureValueDecryptRequest* request,
      decryptv1::SecureValueDecryptResponseCollection* response) override {
    std::lock_guard<std::mutex> lock(mu);
    auto token = context->client_metadata().find("x-access-token");
    tokens.push_back(token == context->client_metadata().end()
                         ? ""
                         : std::string(token->second.data(), token->second.size()));
    if (!call_status.ok()) return call_status;
    for (const std::string& name : request->names()) {
      auto it = results.find(absl::StrCat(request->namespace_(), "/", name));
      auto& result = (*response->mutable_decrypted_values())[name];
      if (it == results.end()) {
        result.set_error_message("not found");
      } else if (it->second.rfind("value:", 0) == 0) {
        result.set_value(it->second.substr(6));
      } else {
        result.set_error_message(it->second);
      }
    }
    return grpc::Status::OK;
  }

  void Fail(grpc::Status status) {
    std::lock_guard<std::mutex> lock(mu);
    call_status = std::move(status);
  }

  std::mutex mu;
  std::map<std::string, std::string> results;
  grpc::Status call_status;
  std::vector<std::string> tokens;
};

// A server with only decryptv1beta1, as older Grafana versions have.
class OldDecrypter final : public decryptv1beta1::SecureValueDecrypter::Service {
 public:
  grpc::Status DecryptSecureValues(
      grpc::ServerContext*, const decryptv1beta1::SecureValueDecryptRequest* request,
      decryptv1beta1::SecureValueDecryptResponseCollection* response) override {
    ++calls;
    (*response->mutable_decrypted_values())[request->names(0)].set_value("planted-old-value");
    return grpc::Status::OK;
  }
  std::atomic<int> calls{0};
};

class UpstreamSecretStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&decrypter_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    clock_.SetTime(absl::Now());
    decrypter_.results[absl::StrCat(kStack, "/db")] = "value:planted-db-value";
    decrypter_.results[absl::StrCat(kStack, "/denied")] = "not authorized";
    decrypter_.results[absl::StrCat(kStack, "/broken")] = "decryption failed";
    decrypter_.results[absl::StrCat(kStack, "/odd")] = "something else";
  }

  void TearDown() override { server_->Shutdown(); }

  UpstreamStoreOptions Options() {
    UpstreamStoreOptions options;
    options.address = absl::StrCat("127.0.0.1:", port_);
    options.allow_insecure = true;
    options.clock = &clock_;
    return options;
  }

  std::unique_ptr<UpstreamSecretStore> Open(UpstreamStoreOptions options) {
    absl::StatusOr<std::unique_ptr<UpstreamSecretStore>> store =
        UpstreamSecretStore::Open(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::vector<std::string> Tokens() {
    std::lock_guard<std::mutex> lock(decrypter_.mu);
    return decrypter_.tokens;
  }

  Decrypter decrypter_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  FakeClock clock_;
};

TEST_F(UpstreamSecretStoreTest, MapsGrafanasPerNameAnswersToOurCodes) {
  std::unique_ptr<UpstreamSecretStore> store = Open(Options());
  absl::StatusOr<StoredSecret> value = store->GetFor(kIdentity, "token-a", kStack, "db");
  ASSERT_THAT(value.status(), IsOk());
  EXPECT_TRUE(value->value.Equals("planted-db-value"));
  EXPECT_EQ(value->version, 0);
  EXPECT_THAT(value->decrypters, ElementsAre(kIdentity));
  EXPECT_EQ(value->stack, kStack);
  EXPECT_EQ(value->name, "db");

  EXPECT_THAT(store->GetFor(kIdentity, "token-a", kStack, "missing").status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->GetFor(kIdentity, "token-a", kStack, "denied").status(),
              StatusIs(absl::StatusCode::kPermissionDenied, "not authorized"));
  EXPECT_THAT(store->GetFor(kIdentity, "token-a", kStack, "broken").status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("decryption failed")));
  EXPECT_THAT(store->GetFor(kIdentity, "token-a", kStack, "odd").status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("unknown error")));
  EXPECT_THAT(store->GetFor(kIdentity, "token-a", "Not A Stack", "db").status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Tokens(), ::testing::Each(std::string("token-a")));
}

TEST_F(UpstreamSecretStoreTest, MapsWholeCallFailures) {
  std::unique_ptr<UpstreamSecretStore> store = Open(Options());
  decrypter_.Fail(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token"));
  EXPECT_THAT(store->GetFor(kIdentity, "token-a", kStack, "db").status(),
              StatusIs(absl::StatusCode::kPermissionDenied, "not authorized"));
  decrypter_.Fail(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no"));
  EXPECT_THAT(store->GetFor(kIdentity, "token-a", kStack, "db").status(),
              StatusIs(absl::StatusCode::kPermissionDenied, "not authorized"));
  decrypter_.Fail(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "slow down"));
  EXPECT_THAT(store->GetFor(kIdentity, "token-a", kStack, "db").status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("slow down")));
  server_->Shutdown();
  EXPECT_THAT(store->GetFor(kIdentity, "token-a", kStack, "db").status(),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(UpstreamSecretStoreTest, RefreshesPresentTheNewestUnexpiredTokenOfThatStackAndIdentity) {
  std::unique_ptr<UpstreamSecretStore> store = Open(Options());
  const absl::Time now = clock_.Now();
  store->NoteCredential(kStack, kIdentity, "token-1h", now + absl::Hours(1));
  store->NoteCredential(kStack, kIdentity, "token-2h", now + absl::Hours(2));
  store->NoteCredential(kStack, kIdentity, "token-30m", now + absl::Minutes(30));  // older
  store->NoteCredential("stacks-8", kIdentity, "token-other-stack", now + absl::Hours(3));
  store->NoteCredential(kStack, "k6", "token-other-identity", now + absl::Hours(3));

  ASSERT_THAT(store->GetFor(kIdentity, "", kStack, "db").status(), IsOk());
  EXPECT_THAT(Tokens(), ElementsAre("token-2h"));
  // A caller's own token is presented as it is.
  ASSERT_THAT(store->GetFor(kIdentity, "token-own", kStack, "db").status(), IsOk());
  EXPECT_THAT(Tokens(), ElementsAre("token-2h", "token-own"));

  // Once every token has expired, refreshes stop: nothing is sent.
  clock_.Advance(absl::Hours(2));
  EXPECT_THAT(store->GetFor(kIdentity, "", kStack, "db").status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no unexpired access token")));
  EXPECT_EQ(Tokens().size(), 2u);
}

TEST_F(UpstreamSecretStoreTest, RemembersAtMostMaxCredentialsDroppingTheFirstToExpire) {
  UpstreamStoreOptions options = Options();
  options.max_credentials = 2;
  std::unique_ptr<UpstreamSecretStore> store = Open(std::move(options));
  const absl::Time now = clock_.Now();
  store->NoteCredential(kStack, "a", "token-a", now + absl::Hours(1));
  store->NoteCredential(kStack, "b", "token-b", now + absl::Hours(3));
  store->NoteCredential(kStack, "c", "token-c", now + absl::Hours(2));
  EXPECT_THAT(store->GetFor("a", "", kStack, "db").status(),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store->GetFor("b", "", kStack, "db").status(), IsOk());
  EXPECT_THAT(store->GetFor("c", "", kStack, "db").status(), IsOk());
}

TEST_F(UpstreamSecretStoreTest, FallsBackToV1beta1OnceAndRemembers) {
  OldDecrypter old;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&old);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  UpstreamStoreOptions options = Options();
  options.address = absl::StrCat("127.0.0.1:", port);
  std::unique_ptr<UpstreamSecretStore> store = Open(std::move(options));
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<StoredSecret> value = store->GetFor(kIdentity, "token-a", kStack, "x");
    ASSERT_THAT(value.status(), IsOk());
    EXPECT_TRUE(value->value.Equals("planted-old-value"));
  }
  EXPECT_EQ(old.calls.load(), 3);
  server->Shutdown();
}

TEST_F(UpstreamSecretStoreTest, HealthFollowsTheServer) {
  std::unique_ptr<UpstreamSecretStore> store = Open(Options());
  EXPECT_THAT(store->CheckHealth(), IsOk());
  server_->Shutdown();
  EXPECT_THAT(store->CheckHealth(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(UpstreamSecretStoreTest, WhatTheApiCannotDoIsUnimplemented) {
  std::unique_ptr<UpstreamSecretStore> store = Open(Options());
  const auto unimplemented = StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("store.upstream"));
  EXPECT_THAT(store->Get(kStack, "db").status(), unimplemented);
  EXPECT_THAT(store->GetVersion(kStack, "db", 1).status(), unimplemented);
  EXPECT_THAT(store->GetMetadata(kStack, "db").status(), unimplemented);
  EXPECT_THAT(store->Put(SecretWrite{}).status(), unimplemented);
  EXPECT_THAT(store->Delete(kStack, "db", "me"), unimplemented);
  EXPECT_THAT(store->List(kStack).status(), unimplemented);
  EXPECT_THAT(store->Watch([](const SecretChange&) {}), IsOk());
  EXPECT_EQ(store->caller_scoped_reads(), store.get());
}

TEST_F(UpstreamSecretStoreTest, RefusesToOpenWithBadOptions) {
  UpstreamStoreOptions no_address = Options();
  no_address.address.clear();
  EXPECT_THAT(UpstreamSecretStore::Open(no_address).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("address")));
  UpstreamStoreOptions plaintext = Options();
  plaintext.allow_insecure = false;
  EXPECT_THAT(UpstreamSecretStore::Open(plaintext).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ca_file")));
  UpstreamStoreOptions half_pair = Options();
  half_pair.ca_file = "/dev/null";
  half_pair.cert_file = "/dev/null";
  EXPECT_THAT(UpstreamSecretStore::Open(half_pair).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cert_file and key_file")));
  UpstreamStoreOptions unreadable = Options();
  unreadable.ca_file = "/nonexistent/ca.pem";
  EXPECT_THAT(UpstreamSecretStore::Open(unreadable).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("/nonexistent/ca.pem")));
  UpstreamStoreOptions no_timeout = Options();
  no_timeout.timeout = absl::ZeroDuration();
  EXPECT_THAT(UpstreamSecretStore::Open(no_timeout).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("timeout")));
}

}  // namespace
}  // namespace secret_resolver
