// StoreHealth: one log line per change of the store's state (health check, change feed), the
// gauges and incident counter, and the /readyz notes, against the fake store.
#include "server/store_health.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/json_log.h"
#include "server/metrics.h"
#include "server/sidecar_metrics.h"
#include "tests/fakes/fake_secret_store.h"

namespace secret_resolver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class StoreHealthTest : public ::testing::Test {
 protected:
  // The "msg" of each line logged so far.
  std::vector<std::string> Messages() {
    std::vector<std::string> out;
    for (absl::string_view line : absl::StrSplit(log_out_.str(), '\n', absl::SkipEmpty())) {
      const size_t at = line.find("\"msg\":\"");
      if (at == absl::string_view::npos) continue;
      const size_t start = at + 7;
      out.emplace_back(line.substr(start, line.find('"', start) - start));
    }
    return out;
  }

  bool Rendered(const std::string& series) {
    return absl::StrContains(registry_.Render(), series);
  }

  FakeSecretStore store_;
  std::ostringstream log_out_;
  JsonLogger log_{&log_out_, JsonLoggerOptions()};
  MetricsRegistry registry_;
  SidecarMetrics metrics_{&registry_};
  StoreHealth health_{&store_, &log_, &metrics_};
};

TEST_F(StoreHealthTest, AnOutageIsLoggedOnceWhenItStartsAndOnceWhenItEnds) {
  EXPECT_TRUE(health_.Probe().ok());
  EXPECT_TRUE(Rendered("secret_resolver_store_up 1"));
  store_.set_health(absl::UnavailableError("connection refused"));
  absl::Status down = health_.Probe();
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(down.message()), HasSubstr("store unavailable: connection refused"));
  store_.set_health(absl::DeadlineExceededError("timed out"));
  EXPECT_EQ(health_.Probe().code(), absl::StatusCode::kDeadlineExceeded);  // the same outage
  EXPECT_TRUE(Rendered("secret_resolver_store_up 0"));
  store_.set_health(absl::OkStatus());
  EXPECT_TRUE(health_.Probe().ok());
  EXPECT_TRUE(health_.Probe().ok());
  EXPECT_THAT(Messages(), ElementsAre("store unavailable", "store healthy again"));
  EXPECT_TRUE(Rendered("secret_resolver_store_incidents_total{kind=\"unavailable\"} 1"));
  EXPECT_TRUE(Rendered("secret_resolver_store_up 1"));
}

TEST_F(StoreHealthTest, DamageIsItsOwnIncident) {
  store_.set_health(absl::UnavailableError("busy"));
  EXPECT_EQ(health_.Probe().code(), absl::StatusCode::kUnavailable);
  store_.set_health(absl::DataLossError("file is not a database"));
  absl::Status damaged = health_.Probe();
  EXPECT_EQ(damaged.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(damaged.message()), HasSubstr("store data damaged: "));
  EXPECT_THAT(Messages(), ElementsAre("store unavailable", "store data damaged"));
  EXPECT_TRUE(Rendered("secret_resolver_store_incidents_total{kind=\"damaged\"} 1"));
}

TEST_F(StoreHealthTest, FeedLossAndReturnAreLoggedOnceAndNotedForReadiness) {
  EXPECT_TRUE(Rendered("secret_resolver_change_feed_up 1"));
  EXPECT_THAT(health_.Notes(), IsEmpty());
  health_.OnChange(SecretChange::Of("stacks-1", "a"));  // an ordinary change: nothing
  health_.OnChange(SecretChange::FeedLost("listener connection lost"));
  health_.OnChange(SecretChange::FeedLost("reconnecting failed"));
  EXPECT_TRUE(Rendered("secret_resolver_change_feed_up 0"));
  ASSERT_EQ(health_.Notes().size(), 1u);
  EXPECT_THAT(health_.Notes()[0], HasSubstr("listener connection lost"));
  health_.OnChange(SecretChange::Resync("LISTEN is in effect again"));
  EXPECT_THAT(health_.Notes(), IsEmpty());
  EXPECT_TRUE(Rendered("secret_resolver_change_feed_up 1"));
  ASSERT_EQ(Messages().size(), 2u);
  EXPECT_THAT(Messages()[0], HasSubstr("store change feed lost"));
  EXPECT_THAT(Messages()[1], HasSubstr("store change feed restored"));
  EXPECT_TRUE(Rendered("secret_resolver_store_incidents_total{kind=\"change_feed_lost\"} 1"));
  EXPECT_TRUE(Rendered("secret_resolver_store_incidents_total{kind=\"resync\"} 0"));
}

TEST_F(StoreHealthTest, AResyncWithoutAnOutageIsAWarningOfItsOwn) {
  health_.OnChange(SecretChange::Resync("the file was replaced"));
  ASSERT_EQ(Messages().size(), 1u);
  EXPECT_THAT(Messages()[0], HasSubstr("store changes may have been missed"));
  EXPECT_THAT(log_out_.str(), HasSubstr("the file was replaced"));
  EXPECT_TRUE(Rendered("secret_resolver_store_incidents_total{kind=\"resync\"} 1"));
  EXPECT_TRUE(Rendered("secret_resolver_change_feed_up 1"));
}

}  // namespace
}  // namespace secret_resolver
