// Tests of UrlJwksSource against a local HTTP server (jwks_http_server.h): fetching, refresh,
// the unknown-kid refetch and its rate limit, failures and timeouts.
#include "server/auth/url_jwks_source.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server/auth/jwks_fixture.h"
#include "tests/server/auth/jwks_http_server.h"

namespace secret_resolver {
namespace auth {
namespace {

using ::secret_resolver::auth::testing::JwksDocument;
using ::secret_resolver::auth::testing::JwksTest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::secret_resolver::auth::testing::JwksHttpServer;

class JwksUrlTest : public JwksTest {
 protected:
  void SetUp() override {
    JwksTest::SetUp();
    ASSERT_TRUE(server_.Start().ok());
    server_.SetResponse(200, JwksDocument(*minted_, {"ec"}));
  }

  JwksUrlOptions Options() {
    JwksUrlOptions options;
    options.url = server_.url();
    options.clock = &clock_;
    options.allow_insecure_http = true;
    options.refresh_interval = absl::Minutes(5);
    options.min_refetch_interval = absl::Seconds(30);
    return options;
  }

  std::unique_ptr<UrlJwksSource> UrlSource(JwksUrlOptions options) {
    auto source = UrlJwksSource::Create(options);
    EXPECT_TRUE(source.ok()) << source.status();
    return source.ok() ? *std::move(source) : nullptr;
  }

  JwksHttpServer server_;
};

TEST_F(JwksUrlTest, RequiresHttpsUnlessInsecureHttpIsAllowed) {
  JwksUrlOptions options = Options();
  options.allow_insecure_http = false;
  auto source = UrlJwksSource::Create(options);
  EXPECT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(source.status().message(), HasSubstr("https"));
  EXPECT_EQ(server_.requests(), 0);

  options.url = "file:///etc/passwd";
  EXPECT_EQ(UrlJwksSource::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.allow_insecure_http = true;
  EXPECT_EQ(UrlJwksSource::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JwksUrlTest, FetchesAtStart) {
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);
  EXPECT_TRUE(source->has_keys());
  EXPECT_TRUE(source->Lookup("ec").ok());
  EXPECT_EQ(server_.requests(), 1);
  EXPECT_EQ(source->stats().fetches, 1u);
}

TEST_F(JwksUrlTest, RefreshesOnItsPeriod) {
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);
  server_.SetResponse(200, JwksDocument(*minted_, {"rsa"}));

  clock_.Advance(absl::Minutes(5) - absl::Seconds(1));
  EXPECT_TRUE(source->Lookup("ec").ok());
  EXPECT_EQ(server_.requests(), 1);

  clock_.Advance(absl::Seconds(1));
  // The lookup that finds the refresh due starts it in the background and answers at once.
  EXPECT_TRUE(source->Lookup("ec").ok());
  source->WaitUntilIdle();
  EXPECT_TRUE(source->Lookup("rsa").ok());
  EXPECT_EQ(source->Lookup("ec").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(server_.requests(), 2);
}

TEST_F(JwksUrlTest, RefetchesOnUnknownKidAtMostOncePer30Seconds) {
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);
  server_.SetResponse(200, JwksDocument(*minted_, {"ec", "ec2"}));

  // Just fetched at start: an unknown kid does not refetch yet.
  EXPECT_EQ(source->Lookup("ec2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(server_.requests(), 1);

  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(source->Lookup("ec2").status().code(), absl::StatusCode::kNotFound)
      << "answered at once; the refetch runs in the background";
  source->WaitUntilIdle();
  EXPECT_TRUE(source->Lookup("ec2").ok());
  EXPECT_EQ(server_.requests(), 2);

  // A flood of made-up kids costs at most one fetch per interval.
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(source->Lookup("made-up-" + std::to_string(i)).status().code(),
              absl::StatusCode::kNotFound);
    clock_.Advance(absl::Seconds(1));
  }
  source->WaitUntilIdle();
  EXPECT_EQ(server_.requests(), 2);
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(source->Lookup("made-up").status().code(), absl::StatusCode::kNotFound);
  source->WaitUntilIdle();
  EXPECT_EQ(server_.requests(), 3);
}

// A wall clock set back (an NTP step) neither holds back the periodic refresh nor the refetch
// on an unknown kid for as long as the step.
TEST_F(JwksUrlTest, FetchesAfterTheClockWasSetBack) {
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);
  server_.SetResponse(200, JwksDocument(*minted_, {"ec", "ec2"}));
  clock_.Advance(-absl::Hours(1));
  EXPECT_EQ(source->Lookup("ec2").status().code(), absl::StatusCode::kNotFound)
      << "answered at once; the fetch runs in the background";
  source->WaitUntilIdle();
  EXPECT_TRUE(source->Lookup("ec2").ok());
  EXPECT_EQ(server_.requests(), 2);
  // Once: the interval holds again from the new time.
  EXPECT_EQ(source->Lookup("made-up").status().code(), absl::StatusCode::kNotFound);
  source->WaitUntilIdle();
  EXPECT_EQ(server_.requests(), 2);
}

TEST_F(JwksUrlTest, RateLimitIsConfigurable) {
  JwksUrlOptions options = Options();
  options.min_refetch_interval = absl::Seconds(5);
  auto source = UrlSource(options);
  ASSERT_NE(source, nullptr);
  clock_.Advance(absl::Seconds(5));
  EXPECT_FALSE(source->Lookup("unknown").ok());
  source->WaitUntilIdle();
  EXPECT_EQ(server_.requests(), 2);
}

TEST_F(JwksUrlTest, KeepsOldKeysWhenAFetchFails) {
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);

  server_.SetResponse(500, "oops");
  EXPECT_EQ(source->Reload().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(source->Lookup("ec").ok());
  EXPECT_THAT(source->stats().last_error, HasSubstr("HTTP status 500"));

  server_.SetResponse(200, "not json");
  EXPECT_EQ(source->Reload().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(source->Lookup("ec").ok());

  server_.SetResponse(200, JwksDocument(*minted_, {"ed"}));
  EXPECT_TRUE(source->Reload().ok());
  EXPECT_TRUE(source->Lookup("ed").ok());
  EXPECT_TRUE(source->stats().last_error.empty());
}

TEST_F(JwksUrlTest, EveryFetchOutcomeReachesTheLoadHook) {
  std::vector<std::pair<absl::StatusCode, size_t>> seen;
  std::vector<std::vector<std::string>> kids;
  JwksUrlOptions options = Options();
  options.on_load = [&seen, &kids](const JwksLoad& load) {
    seen.emplace_back(load.status.code(), load.skipped_keys);
    kids.push_back(load.kids);
  };
  nlohmann::json bad = Jwk("ed");
  bad["x"] = "AAAA";
  server_.SetResponse(200, Doc({Jwk("ec"), bad}));
  auto source = UrlSource(options);
  ASSERT_NE(source, nullptr);
  server_.SetResponse(503, "");
  EXPECT_EQ(source->Reload().code(), absl::StatusCode::kUnavailable);
  server_.SetResponse(200, "not json");
  EXPECT_EQ(source->Reload().code(), absl::StatusCode::kInvalidArgument);
  server_.SetResponse(200, JwksDocument(*minted_, {"ec"}));
  EXPECT_TRUE(source->Reload().ok());
  EXPECT_THAT(seen, ElementsAre(std::make_pair(absl::StatusCode::kOk, size_t{1}),
                                std::make_pair(absl::StatusCode::kUnavailable, size_t{0}),
                                std::make_pair(absl::StatusCode::kInvalidArgument, size_t{0}),
                                std::make_pair(absl::StatusCode::kOk, size_t{0})));
  EXPECT_THAT(kids, ElementsAre(ElementsAre("ec"), IsEmpty(), IsEmpty(), ElementsAre("ec")));
}

TEST_F(JwksUrlTest, StartsEmptyWhenTheFirstFetchFailsAndRetriesLater) {
  server_.SetResponse(503, "");
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);
  EXPECT_FALSE(source->has_keys());
  EXPECT_FALSE(source->stats().last_error.empty());

  server_.SetResponse(200, JwksDocument(*minted_, {"ec"}));
  EXPECT_FALSE(source->Lookup("ec").ok()) << "retry is rate-limited";
  clock_.Advance(absl::Seconds(30));
  EXPECT_FALSE(source->Lookup("ec").ok()) << "the retry runs in the background";
  source->WaitUntilIdle();
  EXPECT_TRUE(source->Lookup("ec").ok());
  EXPECT_EQ(server_.requests(), 2);
}

TEST_F(JwksUrlTest, RejectsAnOversizedDocument) {
  JwksUrlOptions options = Options();
  options.max_document_bytes = 64;
  auto source = UrlSource(options);
  ASSERT_NE(source, nullptr);
  EXPECT_FALSE(source->has_keys());
  EXPECT_THAT(source->stats().last_error, HasSubstr("response over 64 bytes"));
}

TEST_F(JwksUrlTest, FetchTimesOut) {
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);
  JwksUrlOptions options = Options();
  options.fetch_timeout = absl::Milliseconds(200);
  server_.SetHanging(true);
  auto hanging = UrlSource(options);  // its first fetch times out
  ASSERT_NE(hanging, nullptr);
  EXPECT_FALSE(hanging->has_keys());
  EXPECT_THAT(hanging->stats().last_error, HasSubstr("jwks fetch"));
  server_.SetHanging(false);
  EXPECT_TRUE(source->Lookup("ec").ok()) << "other sources are unaffected";
}

}  // namespace
}  // namespace auth
}  // namespace secret_resolver
