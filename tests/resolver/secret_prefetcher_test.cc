// SecretPrefetcher over a real SecretCache and the in-memory store: the load, its report, its
// stats-neutrality, keep-warm after an invalidation, and a prompt stop.
#include "resolver/secret_prefetcher.h"

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "resolver/secret_cache.h"
#include "tests/fakes/fake_secret_store.h"

namespace secret_resolver {
namespace {

using ::testing::ElementsAre;

constexpr char kStack[] = "stacks-1";

class SecretPrefetcherTest : public ::testing::Test {
 protected:
  void Put(const std::string& name) {
    SecretWrite write;
    write.stack = kStack;
    write.name = name;
    write.decrypters = {"svc"};
    write.actor = "test";
    write.value = SecretBytes("value-of-" + name);
    ASSERT_TRUE(store_.Put(write).ok());
  }

  // Waits (bounded) for `done` to turn true.
  static bool WaitFor(const std::function<bool()>& done) {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (!done() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
    return done();
  }

  absl::Notification release_;  // first: outlives the cache's fetch threads, which wait on it
  FakeSecretStore store_;
  SecretCache cache_{&store_, CacheOptions()};
};

TEST_F(SecretPrefetcherTest, LoadsEverySecretReportsFailuresAndCountsNoHitOrMiss) {
  Put("a");
  Put("b");
  PrefetchOptions options;
  options.secrets = {{kStack, "a"}, {kStack, "missing"}, {kStack, "b"}};
  std::mutex mu;
  std::vector<std::string> failed;
  size_t loaded_count = 0;
  size_t failed_count = 0;
  absl::Notification done;
  options.on_failure = [&](const PrefetchTarget& target, const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mu);
    failed.push_back(target.name + ":" + absl::StatusCodeToString(status.code()));
  };
  options.on_done = [&](size_t loaded, size_t failures, absl::Duration) {
    loaded_count = loaded;
    failed_count = failures;
    done.Notify();
  };
  SecretPrefetcher prefetcher(&cache_, options);
  EXPECT_FALSE(prefetcher.done());
  prefetcher.Start();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(prefetcher.done());
  EXPECT_EQ(loaded_count, 2u);
  EXPECT_EQ(failed_count, 1u);
  EXPECT_THAT(failed, ElementsAre("missing:NOT_FOUND"));
  const CacheStats stats = cache_.stats();
  EXPECT_EQ(stats.hits, 0u);
  EXPECT_EQ(stats.misses, 0u);
  EXPECT_EQ(stats.store_fetches, 3u);

  const int64_t calls = store_.get_calls();
  ASSERT_TRUE(cache_.Get(kStack, "a").ok());
  EXPECT_EQ(cache_.stats().hits, 1u);  // a caller's first read is a hit
  EXPECT_EQ(store_.get_calls(), calls);
}

TEST_F(SecretPrefetcherTest, NoSecretsIsDoneAtOnce) {
  absl::Notification done;
  PrefetchOptions options;
  options.on_done = [&](size_t, size_t, absl::Duration) { done.Notify(); };
  SecretPrefetcher prefetcher(&cache_, options);
  prefetcher.Start();
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(prefetcher.done());
}

TEST_F(SecretPrefetcherTest, KeepsWarmASecretThatWasDropped) {
  Put("a");
  PrefetchOptions options;
  options.secrets = {{kStack, "a"}};
  options.keep_warm_interval = absl::Milliseconds(20);
  SecretPrefetcher prefetcher(&cache_, options);
  prefetcher.Start();
  ASSERT_TRUE(WaitFor([&] { return prefetcher.done(); }));
  const int64_t calls = store_.get_calls();
  cache_.Invalidate(kStack, "a");  // as a change notification does
  ASSERT_TRUE(WaitFor([&] { return store_.get_calls() > calls; }));
  // Reloaded without a caller: the next read is a hit.
  ASSERT_TRUE(WaitFor([&] {
    std::vector<absl::string_view> names = {"a"};
    std::vector<absl::StatusOr<CachedSecret>> found(1);
    return cache_.GetAllIfCached(kStack, names, absl::MakeSpan(found));
  }));
}

TEST_F(SecretPrefetcherTest, StopsPromptlyWhileTheStoreHangs) {
  Put("a");
  store_.set_get_hook([this] { release_.WaitForNotificationWithTimeout(absl::Seconds(20)); });
  PrefetchOptions options;
  options.secrets = {{kStack, "a"}};
  options.load_timeout = absl::Seconds(30);
  absl::Time stopped;
  const absl::Time start = absl::Now();
  {
    SecretPrefetcher prefetcher(&cache_, options);
    prefetcher.Start();
    absl::SleepFor(absl::Milliseconds(50));
    EXPECT_FALSE(prefetcher.done());
  }
  stopped = absl::Now();
  release_.Notify();
  // Bounded by the one-second wait slices, far below the load timeout and the hung store.
  EXPECT_LT(stopped - start, absl::Seconds(10));
}

}  // namespace
}  // namespace secret_resolver
