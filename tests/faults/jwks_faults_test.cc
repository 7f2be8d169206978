// Fault case for a JWKS file that stops parsing (issue 15 item 7, the signing keys), on the
// real binary: the previous keys stay in use, and the trouble shows as one warning line when it
// starts, one info line when it ends, the secret_resolver_jwks_* metrics, and /readyz staying
// ready while usable keys remain.
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"

namespace secret_resolver {
namespace {

using ::secretresolver::v1::ResolveSecretsRequest;
using ::secretresolver::v1::ResolveSecretsResponse;
using ::secretresolver::v1::SecretResolver;
using ::testing::HasSubstr;

constexpr char kStack[] = "stacks-15";
constexpr char kService[] = "grafana-workflows";
constexpr char kStartLine[] = "the token signing keys stopped loading";
constexpr char kEndLine[] = "the token signing keys load again";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

// How many log lines hold `text`.
int LinesWith(const std::string& log, absl::string_view text) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n')) n += absl::StrContains(line, text);
  return n;
}

class JwksFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<testing::SidecarState> state =
        testing::SidecarState::Create("admin:\n  enabled: true\n  address: 127.0.0.1:0\n");
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = std::make_unique<testing::SidecarState>(*std::move(state));
    good_jwks_ = ReadFile(state_->jwks_file);
    ASSERT_THAT(good_jwks_, HasSubstr("\"keys\""));
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
        testing::SidecarProcess::Start(*state_);
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = *std::move(sidecar);
    stub_ = SecretResolver::NewStub(
        grpc::CreateChannel(sidecar_->target(), grpc::InsecureChannelCredentials()));
    const std::string admin = sidecar_->ServingAddress("admin");
    const size_t colon = admin.rfind(':');
    ASSERT_NE(colon, std::string::npos) << sidecar_->Log();
    admin_ = std::make_unique<httplib::Client>(admin.substr(0, colon),
                                               std::stoi(admin.substr(colon + 1)));
  }

  // A call with a new token: verifying it looks the key up, which rereads the file once its
  // check interval (1 s) has passed. The code is the whole call's.
  grpc::StatusCode Call() {
    ResolveSecretsRequest request;
    request.set_stack(kStack);
    (*request.mutable_refs())["token"] = "secret://workflows/absent";
    grpc::ClientContext context;
    context.AddMetadata("authorization",
                        "Bearer " + state_->Token(kStack, kService, absl::Minutes(++minutes_)));
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    ResolveSecretsResponse response;
    return stub_->ResolveSecrets(&context, request, &response).error_code();
  }

  // Calls until the log has `count` lines with `text` (10 s at most); every call must pass
  // authentication (the keys in use never go away).
  void CallUntilLogged(absl::string_view text, int count) {
    const absl::Time bound = absl::Now() + absl::Seconds(10);
    while (LinesWith(sidecar_->Log(), text) < count && absl::Now() < bound) {
      ASSERT_EQ(Call(), grpc::StatusCode::OK);
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_EQ(LinesWith(sidecar_->Log(), text), count) << sidecar_->Log();
  }

  // Calls over more than one check interval, so any reread that was due has happened.
  void CallForAWhile() {
    const absl::Time end = absl::Now() + absl::Milliseconds(2500);
    while (absl::Now() < end) {
      ASSERT_EQ(Call(), grpc::StatusCode::OK);
      absl::SleepFor(absl::Milliseconds(100));
    }
  }

  std::string Get(const std::string& path, int* status) {
    httplib::Result result = admin_->Get(path);
    *status = result ? result->status : -1;
    return result ? result->body : "";
  }

  std::unique_ptr<testing::SidecarState> state_;
  std::string good_jwks_;
  std::unique_ptr<testing::SidecarProcess> sidecar_;
  std::unique_ptr<SecretResolver::Stub> stub_;
  std::unique_ptr<httplib::Client> admin_;
  int minutes_ = 10;  // token lifetimes, one per call, so that every token is new
};

TEST_F(JwksFaultsTest, BrokenJwksFileIsReportedOnceAndItsRecoveryOnce) {
  int status = 0;
  std::string metrics = Get("/metrics", &status);
  ASSERT_EQ(status, 200);
  EXPECT_THAT(metrics, HasSubstr("\nsecret_resolver_jwks_up 1\n"));
  EXPECT_THAT(metrics, HasSubstr("\nsecret_resolver_jwks_keys 1\n"));
  EXPECT_THAT(metrics, HasSubstr("\nsecret_resolver_jwks_skipped_keys 0\n"));
  EXPECT_THAT(metrics, HasSubstr("secret_resolver_jwks_refresh_failures_total{reason=\"invalid\"} 0"));

  // The file stops parsing: one warning line; the previous key still verifies tokens.
  ASSERT_TRUE(WriteFile(state_->jwks_file, "{\"keys\": [ truncated"));
  ASSERT_NO_FATAL_FAILURE(CallUntilLogged(kStartLine, 1));
  // It is changed again, still broken: a second failure, counted, but no second line.
  ASSERT_TRUE(WriteFile(state_->jwks_file, "not json at all"));
  ASSERT_NO_FATAL_FAILURE(CallForAWhile());
  EXPECT_EQ(LinesWith(sidecar_->Log(), kStartLine), 1) << sidecar_->Log();
  metrics = Get("/metrics", &status);
  EXPECT_THAT(metrics, HasSubstr("\nsecret_resolver_jwks_up 0\n"));
  EXPECT_THAT(metrics, HasSubstr("\nsecret_resolver_jwks_keys 1\n"));
  EXPECT_THAT(metrics, HasSubstr("secret_resolver_jwks_refresh_failures_total{reason=\"invalid\"} 2"));
  // The old key is usable, so the sidecar stays ready.
  Get("/readyz", &status);
  EXPECT_EQ(status, 200);

  // Fixed, with one unusable key beside the good one: one info line, up again, the skipped key
  // counted.
  const size_t keys_open = good_jwks_.find('[');
  ASSERT_NE(keys_open, std::string::npos);
  std::string fixed = good_jwks_;
  fixed.insert(keys_open + 1,
               "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"not-on-the-curve\",\"x\":\"AAAA\","
               "\"y\":\"AAAA\"},");
  ASSERT_TRUE(WriteFile(state_->jwks_file, fixed));
  ASSERT_NO_FATAL_FAILURE(CallUntilLogged(kEndLine, 1));
  ASSERT_NO_FATAL_FAILURE(CallForAWhile());
  const std::string log = sidecar_->Log();
  EXPECT_EQ(LinesWith(log, kStartLine), 1) << log;
  EXPECT_EQ(LinesWith(log, kEndLine), 1) << log;
  metrics = Get("/metrics", &status);
  EXPECT_THAT(metrics, HasSubstr("\nsecret_resolver_jwks_up 1\n"));
  EXPECT_THAT(metrics, HasSubstr("\nsecret_resolver_jwks_skipped_keys 1\n"));
  EXPECT_THAT(metrics, HasSubstr("secret_resolver_jwks_refresh_failures_total{reason=\"invalid\"} 2"));
}

}  // namespace
}  // namespace secret_resolver
