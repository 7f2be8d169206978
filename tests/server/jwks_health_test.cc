// Tests of JwksHealth: one log line when the signing keys stop loading and one when they load
// again, every failure counted by reason, the gauges' inputs.
#include "server/jwks_health.h"

#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/json_log.h"
#include "server/metrics.h"
#include "server/sidecar_metrics.h"

namespace secret_resolver {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

int LinesWith(const std::string& log, absl::string_view text) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n')) n += absl::StrContains(line, text);
  return n;
}

TEST(JwksFailureReasonTest, NamesEachKindOfFailure) {
  EXPECT_EQ(JwksFailureReason(absl::StatusCode::kNotFound), "missing");
  EXPECT_EQ(JwksFailureReason(absl::StatusCode::kFailedPrecondition), "unreadable");
  EXPECT_EQ(JwksFailureReason(absl::StatusCode::kPermissionDenied), "unreadable");
  EXPECT_EQ(JwksFailureReason(absl::StatusCode::kInvalidArgument), "invalid");
  EXPECT_EQ(JwksFailureReason(absl::StatusCode::kUnavailable), "unreachable");
  EXPECT_EQ(JwksFailureReason(absl::StatusCode::kDeadlineExceeded), "unreachable");
  EXPECT_EQ(JwksFailureReason(absl::StatusCode::kInternal), "other");
}

// A load's outcome: OK with its skipped keys and key ids, or `status`.
auth::JwksLoad Loaded(size_t skipped_keys, std::vector<std::string> kids) {
  auth::JwksLoad load;
  load.skipped_keys = skipped_keys;
  load.kids = std::move(kids);
  return load;
}
auth::JwksLoad Failed(absl::Status status) {
  auth::JwksLoad load;
  load.status = std::move(status);
  return load;
}

TEST(JwksHealthTest, LogsTheStartAndTheEndOfTroubleOnceAndCountsEveryFailure) {
  MetricsRegistry registry;
  SidecarMetrics metrics(&registry);
  std::ostringstream out;
  JsonLogger log(&out);
  JwksHealth health(&metrics, &log);
  EXPECT_TRUE(health.up());

  health.Record(Loaded(2, {"a"}));
  EXPECT_EQ(health.skipped_keys(), 2u);
  for (int i = 0; i < 3; ++i) {
    health.Record(
        Failed(absl::InvalidArgumentError("jwks file /etc/jwks.json: jwks: not valid JSON")));
  }
  health.Record(Failed(absl::UnavailableError("jwks fetch https://issuer/jwks: HTTP status 503")));
  EXPECT_FALSE(health.up());
  EXPECT_EQ(health.skipped_keys(), 2u) << "the document in use is still the last good one";
  health.Record(Loaded(0, {"a"}));
  health.Record(Loaded(0, {"a"}));
  EXPECT_TRUE(health.up());
  EXPECT_EQ(health.skipped_keys(), 0u);

  log.Flush();
  const std::string text = out.str();
  EXPECT_EQ(LinesWith(text, "the token signing keys stopped loading"), 1) << text;
  EXPECT_EQ(LinesWith(text, "the token signing keys load again"), 1) << text;
  EXPECT_THAT(text, HasSubstr("\"reason\":\"invalid\""));
  const std::string rendered = registry.Render();
  EXPECT_THAT(rendered,
              HasSubstr("secret_resolver_jwks_refresh_failures_total{reason=\"invalid\"} 3"));
  EXPECT_THAT(rendered,
              HasSubstr("secret_resolver_jwks_refresh_failures_total{reason=\"unreachable\"} 1"));
  EXPECT_THAT(rendered,
              HasSubstr("secret_resolver_jwks_refresh_failures_total{reason=\"missing\"} 0"));
}

// The key ids in use are logged at the first load and when a load changes them, not on every
// refresh that loads the same keys.
TEST(JwksHealthTest, LogsTheKeyIdsWhenTheyChange) {
  MetricsRegistry registry;
  SidecarMetrics metrics(&registry);
  std::ostringstream out;
  JsonLogger log(&out);
  JwksHealth health(&metrics, &log);
  health.Record(Loaded(0, {"k1", "k2"}));
  health.Record(Loaded(0, {"k1", "k2"}));
  health.Record(Failed(absl::UnavailableError("jwks fetch https://issuer/jwks: HTTP status 503")));
  health.Record(Loaded(0, {"k1", "k2"}));
  health.Record(Loaded(1, {"k2", "k3"}));
  log.Flush();
  const std::string text = out.str();
  EXPECT_EQ(LinesWith(text, "the token signing keys in use changed"), 2) << text;
  EXPECT_THAT(text, HasSubstr("\"kids\":\"k1,k2\",\"keys\":2,\"skipped_keys\":0"));
  EXPECT_THAT(text, HasSubstr("\"kids\":\"k2,k3\",\"keys\":2,\"skipped_keys\":1"));
}

// A document with many keys, or a long kid, still makes one line of bounded length: the first 32
// kids, each cut at 64 bytes, then "...", with `keys` counting them all.
TEST(JwksHealthTest, TheKeyIdLineIsBounded) {
  MetricsRegistry registry;
  SidecarMetrics metrics(&registry);
  std::ostringstream out;
  JsonLogger log(&out);
  JwksHealth health(&metrics, &log);
  std::vector<std::string> kids = {std::string(100, 'a')};
  for (int i = 10; i < 50; ++i) kids.push_back(absl::StrCat("k", i));
  health.Record(Loaded(0, kids));
  log.Flush();
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr(absl::StrCat("\"kids\":\"", std::string(64, 'a'), ",k10,")));
  EXPECT_THAT(text, Not(HasSubstr(std::string(65, 'a'))));
  EXPECT_THAT(text, HasSubstr(",k40,...\",\"keys\":41"));
  EXPECT_THAT(text, Not(HasSubstr("k41")));
}

}  // namespace
}  // namespace secret_resolver
