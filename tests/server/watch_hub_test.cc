// WatchHub (server/watch_call.h): the fan-out of the store's change feed to WatchSecrets
// streams, on an in-memory store, with subscribers that record what the hub tells them. The
// stream's gRPC side is tested through the real binary (tests/integration/watch_secrets_test).
#include "server/watch_call.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "resolver/secret_bytes.h"
#include "tests/fakes/fake_secret_store.h"

namespace secret_resolver {
namespace {

using secretresolver::v1::WatchSecretsEvent;

constexpr char kStack[] = "stacks-7";

class RecordingSubscriber : public WatchSubscriber {
 public:
  explicit RecordingSubscriber(WatchSession session) : session_(std::move(session)) {}
  const WatchSession& session() const override { return session_; }
  void Push(WatchSecretsEvent event) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
    changed_.notify_all();
  }
  void End(const absl::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = status;
    changed_.notify_all();
  }
  // Waits (at most 5 s) until `count` events came; returns them all.
  std::vector<WatchSecretsEvent> Await(size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, std::chrono::seconds(5), [&] { return events_.size() >= count; });
    return events_;
  }
  absl::Status ended() {
    std::lock_guard<std::mutex> lock(mu_);
    return ended_;
  }

 private:
  const WatchSession session_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<WatchSecretsEvent> events_;
  absl::Status ended_;
};

void Put(FakeSecretStore* store, const std::string& name) {
  SecretWrite write;
  write.stack = kStack;
  write.name = name;
  write.decrypters = {"svc"};
  write.actor = "watch-hub-test";
  write.value = SecretBytes("planted-hub-value");
  ASSERT_TRUE(store->Put(write).ok());
}

WatchSession Session(const std::string& caller) {
  WatchSession session;
  session.caller = caller;
  session.stack = kStack;
  session.refs = {{"A", "db/password", 1}, {"B", "http/token", 1}};
  return session;
}

TEST(WatchHubTest, AResyncSendsEveryWatchedRefsCurrentVersion) {
  FakeSecretStore store;
  Put(&store, "db/password");
  Put(&store, "http/token");
  WatchHub hub(&store, WatchLimits{});
  RecordingSubscriber subscriber(Session("svc"));
  absl::StatusOr<uint64_t> id = hub.Add(&subscriber);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_EQ(subscriber.Await(2).size(), 2u);  // the first events: the current versions
  // A write the feed missed (no change reported), then the feed's resync.
  Put(&store, "db/password");
  hub.OnChange(SecretChange::Resync("reconnected"));
  const std::vector<WatchSecretsEvent> events = subscriber.Await(4);
  ASSERT_EQ(events.size(), 4u);
  std::map<std::string, int64_t> after_resync;
  for (size_t i = 2; i < events.size(); ++i) {
    after_resync[events[i].ref_key()] = events[i].version();
  }
  EXPECT_EQ(after_resync["A"], 2);
  EXPECT_EQ(after_resync["B"], 1);
  hub.Remove(*id);
}

TEST(WatchHubTest, ADrainEndsEveryStreamAndRefusesNewOnes) {
  FakeSecretStore store;
  Put(&store, "db/password");
  Put(&store, "http/token");
  WatchHub hub(&store, WatchLimits{});
  RecordingSubscriber first(Session("svc"));
  absl::StatusOr<uint64_t> id = hub.Add(&first);
  ASSERT_TRUE(id.ok());
  hub.BeginDrain();
  EXPECT_EQ(first.ended().code(), absl::StatusCode::kUnavailable);
  RecordingSubscriber late(Session("other"));
  EXPECT_EQ(hub.Add(&late).status().code(), absl::StatusCode::kUnavailable);
  hub.Remove(*id);
}

}  // namespace
}  // namespace secret_resolver
