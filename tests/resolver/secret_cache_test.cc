// Tests of SecretCache (contract.md section 8) through its public interface, against
// FakeSecretStore and FakeClock. Time moves only through the fake clock; concurrency is built
// with latches in the fake store's Get hook, never with sleeps.
#include "resolver/secret_cache.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_secret_store.h"

namespace secret_resolver {
namespace {

constexpr absl::string_view kStack = "stack-a";
constexpr absl::string_view kName = "api-token";

// A one-shot latch on std::mutex (absl::Notification is not visible to ThreadSanitizer here).
class Latch {
 public:
  void Notify() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      notified_ = true;
    }
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return notified_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
};

// A refresh executor that queues tasks until the test runs them.
class ManualExecutor {
 public:
  std::function<void(std::function<void()>)> executor() {
    return [this](std::function<void()> task) {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    };
  }
  size_t pending() {
    std::lock_guard<std::mutex> lock(mu_);
    return tasks_.size();
  }
  void RunAll() {
    std::vector<std::function<void()>> tasks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks.swap(tasks_);
    }
    for (auto& task : tasks) task();
  }

 private:
  std::mutex mu_;
  std::vector<std::function<void()>> tasks_;
};

// Test values are labels, not secrets; they are compared with Equals and never printed.
std::string ValueFor(absl::string_view name, int64_t version) {
  return absl::StrCat("value-of-", name, "-v", version);
}

absl::StatusCode CodeOf(const absl::StatusOr<CachedSecret>& result) {
  return result.status().code();
}

class SecretCacheTest : public ::testing::Test {
 protected:
  // Options for most tests: the fake clock, no jitter, refreshes run inline.
  CacheOptions Options() {
    CacheOptions options;
    options.clock = &clock_;
    options.random = [] { return 0.0; };
    options.refresh_executor = [](std::function<void()> task) { task(); };
    return options;
  }

  // Options() with a 300 s TTL whose last 30 s are the refresh-ahead window (no jitter), and
  // refreshes run by `executor`.
  CacheOptions RefreshWindowOptions(std::function<void(std::function<void()>)> executor) {
    CacheOptions options = Options();
    options.ttl = absl::Seconds(300);
    options.refresh_ahead = absl::Seconds(30);
    options.refresh_jitter = absl::ZeroDuration();
    options.refresh_executor = std::move(executor);
    return options;
  }

  // Stores a new version of (stack, name) whose value is ValueFor(name, version).
  void Put(absl::string_view stack, absl::string_view name) {
    const int64_t next = ++versions_[absl::StrCat(stack, "/", name)];
    SecretWrite write;
    write.stack = std::string(stack);
    write.name = std::string(name);
    write.decrypters = {"workflow-engine"};
    write.actor = "test";
    write.value = SecretBytes(ValueFor(name, next));
    absl::StatusOr<int64_t> version = store_.Put(write);
    ASSERT_TRUE(version.ok()) << version.status();
    ASSERT_EQ(*version, next);
  }

  // The bytes one cached entry of this shape costs (version 1 as Put makes it, or a cached
  // NOT_FOUND), measured through stats().
  size_t EntryCost(absl::string_view stack, absl::string_view name, bool exists = true) {
    FakeSecretStore store;
    if (exists) {
      SecretWrite write;
      write.stack = std::string(stack);
      write.name = std::string(name);
      write.decrypters = {"workflow-engine"};
      write.value = SecretBytes(ValueFor(name, 1));
      EXPECT_TRUE(store.Put(write).ok());
    }
    SecretCache cache(&store, Options());
    EXPECT_EQ(cache.Get(stack, name).ok(), exists);
    return cache.stats().bytes;
  }

  // Asserts an OK answer with `outcome` and the value and version ValueFor(name, version).
  static void ExpectSecret(const absl::StatusOr<CachedSecret>& result, absl::string_view name,
                           int64_t version, CacheOutcome outcome) {
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_NE(result->value, nullptr);
    EXPECT_EQ(CacheOutcomeName(result->outcome), CacheOutcomeName(outcome));
    EXPECT_EQ(result->value->version, version);
    EXPECT_TRUE(result->value->value.Equals(ValueFor(name, version)));
  }

  FakeClock clock_;
  FakeSecretStore store_;
  std::map<std::string, int64_t> versions_;
};

TEST(CacheOutcomeNameTest, NamesEveryOutcome) {
  EXPECT_EQ(CacheOutcomeName(CacheOutcome::kHit), "hit");
  EXPECT_EQ(CacheOutcomeName(CacheOutcome::kMiss), "miss");
  EXPECT_EQ(CacheOutcomeName(CacheOutcome::kNegativeHit), "negative_hit");
  EXPECT_EQ(CacheOutcomeName(CacheOutcome::kStale), "stale");
}

TEST_F(SecretCacheTest, MissThenHit) {
  Put(kStack, kName);
  SecretCache cache(&store_, Options());

  absl::StatusOr<CachedSecret> first = cache.Get(kStack, kName);
  ExpectSecret(first, kName, 1, CacheOutcome::kMiss);
  EXPECT_EQ(*first->value->decrypters, std::vector<std::string>{"workflow-engine"});
  absl::StatusOr<CachedSecret> second = cache.Get(kStack, kName);
  ExpectSecret(second, kName, 1, CacheOutcome::kHit);
  EXPECT_EQ(first->value, second->value);  // shared, not copied
  EXPECT_EQ(store_.get_calls(), 1);

  CacheStats stats = cache.stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.store_fetches, 1u);
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_GT(stats.bytes, 0u);
}

TEST_F(SecretCacheTest, KeysAreStackAndName) {
  Put("stack-a", "ab");
  Put("stack-a", "abc");
  Put("stack-b", "ab");
  SecretCache cache(&store_, Options());
  ExpectSecret(cache.Get("stack-a", "ab"), "ab", 1, CacheOutcome::kMiss);
  ExpectSecret(cache.Get("stack-a", "abc"), "abc", 1, CacheOutcome::kMiss);
  ExpectSecret(cache.Get("stack-b", "ab"), "ab", 1, CacheOutcome::kMiss);
  // "stack-aa" + "b" would meet "stack-a" + "ab" if the key were the two strings run together.
  EXPECT_EQ(CodeOf(cache.Get("stack-aa", "b")), absl::StatusCode::kNotFound);
  ExpectSecret(cache.Get("stack-b", "ab"), "ab", 1, CacheOutcome::kHit);
  EXPECT_EQ(cache.stats().entries, 4u);
}

TEST_F(SecretCacheTest, TtlExpiryRefetches) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  options.refresh_jitter = absl::ZeroDuration();
  Put(kStack, kName);
  SecretCache cache(&store_, options);

  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  Put(kStack, kName);
  clock_.Advance(options.ttl - absl::Nanoseconds(1));
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  clock_.Advance(absl::Nanoseconds(1));
  ExpectSecret(cache.Get(kStack, kName), kName, 2, CacheOutcome::kMiss);
  EXPECT_EQ(store_.get_calls(), 2);
  EXPECT_EQ(cache.stats().refreshes, 0u);
}

// A wall clock set back (an NTP step) would make every entry live on for as long as the step:
// an entry fetched "in the future" is read again, values and cached NOT_FOUNDs alike.
TEST_F(SecretCacheTest, EntriesFetchedBeforeTheClockWasSetBackAreReadAgain) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  options.refresh_jitter = absl::ZeroDuration();
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  EXPECT_EQ(CodeOf(cache.Get(kStack, "absent")), absl::StatusCode::kNotFound);
  Put(kStack, kName);
  Put(kStack, "absent");

  clock_.Advance(-absl::Nanoseconds(1));
  ExpectSecret(cache.Get(kStack, kName), kName, 2, CacheOutcome::kMiss);
  ExpectSecret(cache.Get(kStack, "absent"), "absent", 1, CacheOutcome::kMiss);
  // Fetched at the new time: trusted for their TTL from it.
  ExpectSecret(cache.Get(kStack, kName), kName, 2, CacheOutcome::kHit);
  EXPECT_EQ(store_.get_calls(), 4);
}

TEST_F(SecretCacheTest, RefreshAheadSchedulesExactlyOneRefreshInsideWindow) {
  ManualExecutor executor;
  CacheOptions options = RefreshWindowOptions(executor.executor());
  Put(kStack, kName);
  SecretCache cache(&store_, options);

  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  clock_.Advance(absl::Seconds(270) - absl::Nanoseconds(1));
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  EXPECT_EQ(executor.pending(), 0u);

  clock_.Advance(absl::Nanoseconds(1));  // 30 s before expiry: inside the window
  for (int i = 0; i < 5; ++i) {
    ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  }
  EXPECT_EQ(executor.pending(), 1u);
  EXPECT_EQ(cache.stats().refreshes, 1u);
  EXPECT_EQ(store_.get_calls(), 1);

  Put(kStack, kName);
  std::weak_ptr<const CachedValue> old_value = cache.Get(kStack, kName)->value;
  executor.RunAll();
  EXPECT_EQ(store_.get_calls(), 2);
  ExpectSecret(cache.Get(kStack, kName), kName, 2, CacheOutcome::kHit);
  EXPECT_TRUE(old_value.expired());  // replaced, and so wiped

  // The refreshed entry lives a full TTL from the refresh, with its own window.
  clock_.Advance(absl::Seconds(270) - absl::Nanoseconds(1));
  ExpectSecret(cache.Get(kStack, kName), kName, 2, CacheOutcome::kHit);
  EXPECT_EQ(executor.pending(), 0u);
  clock_.Advance(absl::Nanoseconds(1));
  ExpectSecret(cache.Get(kStack, kName), kName, 2, CacheOutcome::kHit);
  EXPECT_EQ(executor.pending(), 1u);
  EXPECT_EQ(cache.stats().refreshes, 2u);
  EXPECT_EQ(cache.stats().misses, 1u);
  executor.RunAll();
}

TEST_F(SecretCacheTest, RefreshJitterComesFromInjectedRandom) {
  ManualExecutor executor;
  int random_calls = 0;
  CacheOptions options = Options();
  options.ttl = absl::Seconds(300);
  options.refresh_ahead = absl::Seconds(30);
  options.refresh_jitter = absl::Seconds(20);
  options.random = [&random_calls] {
    ++random_calls;
    return 0.5;
  };
  options.refresh_executor = executor.executor();
  Put(kStack, kName);
  SecretCache cache(&store_, options);

  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  EXPECT_EQ(random_calls, 1);  // once per fetched value, not per hit
  // The window opens 30 s + 0.5 * 20 s = 40 s before expiry, at 260 s.
  clock_.Advance(absl::Seconds(260) - absl::Nanoseconds(1));
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  EXPECT_EQ(executor.pending(), 0u);
  clock_.Advance(absl::Nanoseconds(1));
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  EXPECT_EQ(executor.pending(), 1u);
  EXPECT_EQ(random_calls, 1);
  executor.RunAll();
}

TEST_F(SecretCacheTest, FailedRefreshKeepsEntryAndIsNotRetriedOnEveryHit) {
  ManualExecutor executor;
  CacheOptions options = Options();
  options.refresh_executor = executor.executor();
  Put(kStack, kName);
  SecretCache cache(&store_, options);

  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  clock_.Advance(options.ttl - options.refresh_ahead);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  store_.set_error(absl::UnavailableError("backend down"));
  executor.RunAll();
  EXPECT_EQ(store_.get_calls(), 2);

  for (int i = 0; i < 3; ++i) {
    ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  }
  EXPECT_EQ(executor.pending(), 0u);
  EXPECT_EQ(cache.stats().refreshes, 1u);
  EXPECT_EQ(store_.get_calls(), 2);
}

TEST_F(SecretCacheTest, RefreshThatFindsSecretDeletedCachesNotFound) {
  Put(kStack, kName);
  SecretCache cache(&store_, Options());
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  ASSERT_TRUE(store_.Delete(kStack, kName, "test").ok());
  clock_.Advance(Options().ttl - Options().refresh_ahead);
  // This hit runs the refresh inline; the next lookup sees its result.
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.stats().negative_hits, 1u);
}

TEST_F(SecretCacheTest, DefaultExecutorRefreshesOnItsOwnThread) {
  CacheOptions options = Options();
  options.refresh_executor = nullptr;
  Put(kStack, kName);
  SecretCache cache(&store_, options);

  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  Put(kStack, kName);
  clock_.Advance(options.ttl - options.refresh_ahead);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  // Waits for the background fetch to land (an event, not a duration).
  while (cache.stats().store_fetches < 2) std::this_thread::yield();
  ExpectSecret(cache.Get(kStack, kName), kName, 2, CacheOutcome::kHit);
  EXPECT_EQ(cache.stats().refreshes, 1u);
}

TEST_F(SecretCacheTest, DestructorWaitsForRunningRefresh) {
  CacheOptions options = Options();
  options.refresh_executor = nullptr;
  Put(kStack, kName);
  auto cache = std::make_unique<SecretCache>(&store_, options);
  ExpectSecret(cache->Get(kStack, kName), kName, 1, CacheOutcome::kMiss);

  Latch entered;
  Latch release;
  store_.set_get_hook([&] {
    entered.Notify();
    release.Wait();
  });
  clock_.Advance(options.ttl - options.refresh_ahead);
  ExpectSecret(cache->Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  entered.Wait();  // the refresh is inside the store
  std::thread destroyer([&cache] { cache.reset(); });
  release.Notify();
  destroyer.join();
  EXPECT_EQ(cache, nullptr);
  store_.set_get_hook(nullptr);
}

TEST_F(SecretCacheTest, ConcurrentMissesMakeOneStoreFetch) {
  constexpr int kThreads = 128;
  Put(kStack, kName);
  SecretCache cache(&store_, Options());

  Latch entered;
  Latch release;
  store_.set_get_hook([&] {
    entered.Notify();
    release.Wait();
  });

  std::vector<absl::StatusOr<CachedSecret>> results(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&cache, &results, i] { results[i] = cache.Get(kStack, kName); });
  }
  entered.Wait();
  // Every caller has missed and is waiting on the one fetch before it is let go.
  while (cache.stats().misses < kThreads) std::this_thread::yield();
  release.Notify();
  for (std::thread& t : threads) t.join();
  store_.set_get_hook(nullptr);

  EXPECT_EQ(store_.get_calls(), 1);
  EXPECT_EQ(cache.stats().store_fetches, 1u);
  EXPECT_EQ(cache.stats().misses, static_cast<uint64_t>(kThreads));
  for (int i = 0; i < kThreads; ++i) {
    ExpectSecret(results[i], kName, 1, CacheOutcome::kMiss);
    EXPECT_EQ(results[i]->value, results[0]->value);
  }
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
}

TEST_F(SecretCacheTest, GetAllIfCachedAnswersFromFreshEntriesOnly) {
  Put(kStack, kName);
  CacheOptions options = Options();
  options.negative_ttl = absl::Seconds(5);
  SecretCache cache(&store_, options);
  const std::vector<absl::string_view> both = {kName, "absent"};
  std::vector<absl::StatusOr<CachedSecret>> found(2);
  EXPECT_FALSE(cache.GetAllIfCached(kStack, both, absl::MakeSpan(found)));
  EXPECT_EQ(store_.get_calls(), 0);
  EXPECT_EQ(cache.stats().misses, 0u);

  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  // The first name is answered (and counted); the second is not cached, so the answer is no.
  EXPECT_FALSE(cache.GetAllIfCached(kStack, both, absl::MakeSpan(found)));
  ExpectSecret(found[0], kName, 1, CacheOutcome::kHit);
  EXPECT_EQ(cache.stats().hits, 1u);

  EXPECT_EQ(CodeOf(cache.Get(kStack, "absent")), absl::StatusCode::kNotFound);
  ASSERT_TRUE(cache.GetAllIfCached(kStack, both, absl::MakeSpan(found)));
  ExpectSecret(found[0], kName, 1, CacheOutcome::kHit);
  EXPECT_EQ(CodeOf(found[1]), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.stats().hits, 2u);
  EXPECT_EQ(cache.stats().negative_hits, 1u);

  clock_.Advance(options.ttl);  // both expired
  EXPECT_FALSE(cache.GetAllIfCached(kStack, {kName}, absl::MakeSpan(found).first(1)));
  EXPECT_FALSE(cache.GetAllIfCached(kStack, {"absent"}, absl::MakeSpan(found).first(1)));
  EXPECT_EQ(store_.get_calls(), 2);
}

// Refresh-ahead is started under the cache's lock but run after it is released: every name
// of one batch inside its window gets exactly one refresh.
TEST_F(SecretCacheTest, GetAllIfCachedSchedulesRefreshAheadForEachName) {
  ManualExecutor executor;
  CacheOptions options = RefreshWindowOptions(executor.executor());
  Put(kStack, "first");
  Put(kStack, "second");
  SecretCache cache(&store_, options);
  ExpectSecret(cache.Get(kStack, "first"), "first", 1, CacheOutcome::kMiss);
  ExpectSecret(cache.Get(kStack, "second"), "second", 1, CacheOutcome::kMiss);

  clock_.Advance(absl::Seconds(270));  // 30 s before expiry: inside the window
  const std::vector<absl::string_view> names = {"first", "second"};
  std::vector<absl::StatusOr<CachedSecret>> found(2);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(cache.GetAllIfCached(kStack, names, absl::MakeSpan(found)));
    ExpectSecret(found[0], "first", 1, CacheOutcome::kHit);
    ExpectSecret(found[1], "second", 1, CacheOutcome::kHit);
  }
  EXPECT_EQ(executor.pending(), 2u);
  EXPECT_EQ(cache.stats().refreshes, 2u);

  Put(kStack, "first");
  Put(kStack, "second");
  found.assign(2, absl::UnknownError("unset"));
  executor.RunAll();
  EXPECT_EQ(store_.get_calls(), 4);
  ASSERT_TRUE(cache.GetAllIfCached(kStack, names, absl::MakeSpan(found)));
  ExpectSecret(found[0], "first", 2, CacheOutcome::kHit);
  ExpectSecret(found[1], "second", 2, CacheOutcome::kHit);
}

// The refresh runs after the cache's lock is released: an executor that runs it at once (and
// so takes the lock) must not deadlock, and the refreshed value is what the next call sees.
TEST_F(SecretCacheTest, GetAllIfCachedRunsRefreshAheadOutsideTheLock) {
  CacheOptions options = RefreshWindowOptions([](std::function<void()> task) { task(); });
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  Put(kStack, kName);
  clock_.Advance(absl::Seconds(270));
  std::vector<absl::StatusOr<CachedSecret>> found(1);
  ASSERT_TRUE(cache.GetAllIfCached(kStack, {kName}, absl::MakeSpan(found)));
  ExpectSecret(found[0], kName, 1, CacheOutcome::kHit);
  EXPECT_EQ(store_.get_calls(), 2);
  ASSERT_TRUE(cache.GetAllIfCached(kStack, {kName}, absl::MakeSpan(found)));
  ExpectSecret(found[0], kName, 2, CacheOutcome::kHit);
}

TEST_F(SecretCacheTest, ValuesWithTheSameDecryptersShareOneList) {
  Put(kStack, "first");
  Put(kStack, "second");
  SecretWrite other;
  other.stack = std::string(kStack);
  other.name = "third";
  other.decrypters = {"k6"};
  other.value = SecretBytes(ValueFor("third", 1));
  ASSERT_TRUE(store_.Put(other).ok());
  SecretCache cache(&store_, Options());
  absl::StatusOr<CachedSecret> first = cache.Get(kStack, "first");
  absl::StatusOr<CachedSecret> second = cache.Get(kStack, "second");
  absl::StatusOr<CachedSecret> third = cache.Get(kStack, "third");
  ASSERT_TRUE(first.ok() && second.ok() && third.ok());
  EXPECT_EQ(first->value->decrypters, second->value->decrypters);  // the same object
  EXPECT_EQ(*third->value->decrypters, std::vector<std::string>{"k6"});
}

TEST_F(SecretCacheTest, FirstCallerStopsAtItsDeadlineAndTheFetchIsStillCached) {
  Put(kStack, kName);
  SecretCache cache(&store_, Options());
  Latch entered;
  Latch release;
  store_.set_get_hook([&] {
    entered.Notify();
    release.Wait();
  });

  // The store hangs once the fetch has begun; the caller that started it gives up at its own
  // deadline, and the fetch goes on.
  absl::StatusOr<CachedSecret> first;
  std::thread caller(
      [&] { first = cache.Get(kStack, kName, absl::Now() + absl::Milliseconds(300)); });
  entered.Wait();
  caller.join();
  EXPECT_EQ(CodeOf(first), absl::StatusCode::kDeadlineExceeded);

  release.Notify();
  while (cache.stats().store_fetches < 1) std::this_thread::yield();
  store_.set_get_hook(nullptr);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  EXPECT_EQ(store_.get_calls(), 1);
}

TEST_F(SecretCacheTest, FetchIsSkippedWhenEveryCallerGaveUpBeforeItBegan) {
  Put(kStack, "first");
  Put(kStack, "second");
  CacheOptions options = Options();
  options.max_concurrent_fetches = 1;
  SecretCache cache(&store_, options);
  Latch entered;
  Latch release;
  store_.set_get_hook([&] {
    entered.Notify();
    release.Wait();
  });
  std::thread blocker([&] { ASSERT_TRUE(cache.Get(kStack, "first").ok()); });
  entered.Wait();  // the only fetch thread is busy
  // Queued behind it, this caller gives up before its fetch can begin.
  EXPECT_EQ(CodeOf(cache.Get(kStack, "second", absl::Now() + absl::Milliseconds(20))),
            absl::StatusCode::kDeadlineExceeded);
  store_.set_get_hook(nullptr);
  release.Notify();
  blocker.join();
  // The abandoned fetch never reached the store; the next caller starts a fresh one.
  ExpectSecret(cache.Get(kStack, "second"), "second", 1, CacheOutcome::kMiss);
  EXPECT_EQ(store_.get_calls(), 2);
}

TEST_F(SecretCacheTest, StoreFetchesInFlightAreBoundedByMaxConcurrentFetches) {
  constexpr int kNames = 12;
  constexpr size_t kBound = 3;
  for (int i = 0; i < kNames; ++i) Put(kStack, absl::StrCat("name-", i));
  CacheOptions options = Options();
  options.max_concurrent_fetches = kBound;
  SecretCache cache(&store_, options);

  std::mutex mu;
  int in_flight = 0;
  int most_in_flight = 0;
  store_.set_get_hook([&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      most_in_flight = std::max(most_in_flight, ++in_flight);
    }
    absl::SleepFor(absl::Milliseconds(20));
    std::lock_guard<std::mutex> lock(mu);
    --in_flight;
  });
  std::vector<std::thread> callers;
  std::vector<absl::StatusCode> codes(kNames);
  for (int i = 0; i < kNames; ++i) {
    callers.emplace_back([&, i] { codes[i] = CodeOf(cache.Get(kStack, absl::StrCat("name-", i))); });
  }
  for (std::thread& caller : callers) caller.join();
  store_.set_get_hook(nullptr);

  for (absl::StatusCode code : codes) EXPECT_EQ(code, absl::StatusCode::kOk);
  EXPECT_EQ(store_.get_calls(), kNames);
  EXPECT_EQ(most_in_flight, static_cast<int>(kBound));
}

TEST_F(SecretCacheTest, EveryStoreFetchIsReportedWithItsOutcome) {
  Put(kStack, kName);
  CacheOptions options = Options();
  std::mutex mu;
  std::vector<absl::StatusCode> seen;
  options.on_store_fetch = [&](absl::Duration latency, absl::StatusCode code) {
    EXPECT_GE(latency, absl::ZeroDuration());
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(code);
  };
  SecretCache cache(&store_, options);
  ASSERT_TRUE(cache.Get(kStack, kName).ok());
  ASSERT_TRUE(cache.Get(kStack, kName).ok());  // a hit: no fetch
  EXPECT_EQ(CodeOf(cache.Get(kStack, "absent")), absl::StatusCode::kNotFound);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_THAT(seen, ::testing::ElementsAre(absl::StatusCode::kOk, absl::StatusCode::kNotFound));
}

TEST_F(SecretCacheTest, WaiterStopsAtItsDeadline) {
  Put(kStack, kName);
  SecretCache cache(&store_, Options());
  Latch entered;
  Latch release;
  store_.set_get_hook([&] {
    entered.Notify();
    release.Wait();
  });

  absl::StatusOr<CachedSecret> leader_result;
  std::thread leader([&] { leader_result = cache.Get(kStack, kName); });
  entered.Wait();

  // Deadlines are real time (they come from gRPC); this one has already passed.
  absl::StatusOr<CachedSecret> late = cache.Get(kStack, kName, absl::Now() - absl::Seconds(1));
  EXPECT_EQ(CodeOf(late), absl::StatusCode::kDeadlineExceeded);

  // A waiter whose deadline is far enough away gets the value.
  absl::StatusOr<CachedSecret> patient_result;
  std::thread patient(
      [&] { patient_result = cache.Get(kStack, kName, absl::Now() + absl::Hours(1)); });
  while (cache.stats().misses < 3) std::this_thread::yield();
  release.Notify();
  leader.join();
  patient.join();
  store_.set_get_hook(nullptr);

  ExpectSecret(leader_result, kName, 1, CacheOutcome::kMiss);
  ExpectSecret(patient_result, kName, 1, CacheOutcome::kMiss);
  EXPECT_EQ(store_.get_calls(), 1);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
}

TEST_F(SecretCacheTest, NotFoundIsCachedForNegativeTtl) {
  CacheOptions options = Options();
  SecretCache cache(&store_, options);

  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.get_calls(), 1);
  Put(kStack, kName);
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kNotFound);
  clock_.Advance(options.negative_ttl - absl::Nanoseconds(1));
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.get_calls(), 1);
  EXPECT_EQ(cache.stats().negative_hits, 2u);

  clock_.Advance(absl::Nanoseconds(1));
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  EXPECT_EQ(store_.get_calls(), 2);
}

TEST_F(SecretCacheTest, ExpiredNotFoundEntriesDoNotAccumulate) {
  CacheOptions options = Options();
  options.negative_ttl = absl::Seconds(5);
  SecretCache cache(&store_, options);
  // A stream of names nobody stores, one a second: about five are unexpired at any time. Were
  // expired ones kept until evicted, all 1000 would still be cached (the byte bound is far off).
  constexpr int kUnknownNames = 1000;
  for (int i = 0; i < kUnknownNames; ++i) {
    ASSERT_EQ(CodeOf(cache.Get(kStack, absl::StrCat("unknown-", i))),
              absl::StatusCode::kNotFound);
    clock_.Advance(absl::Seconds(1));
  }
  const CacheStats stats = cache.stats();
  EXPECT_LT(stats.entries, 200u);
  EXPECT_EQ(stats.bytes, stats.entries * EntryCost(kStack, "unknown-999", false));
  EXPECT_EQ(stats.evictions, 0u);
  // The unexpired ones are still answered from the cache.
  EXPECT_EQ(CodeOf(cache.Get(kStack, absl::StrCat("unknown-", kUnknownNames - 1))),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.stats().negative_hits, 1u);
  EXPECT_EQ(store_.get_calls(), kUnknownNames);
}

TEST_F(SecretCacheTest, ServesStaleWithinMaxStaleThenTheStoreError) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  absl::StatusOr<CachedSecret> fresh = cache.Get(kStack, kName);
  ExpectSecret(fresh, kName, 1, CacheOutcome::kMiss);

  store_.set_error(absl::UnavailableError("backend down"));
  clock_.Advance(options.ttl);
  absl::StatusOr<CachedSecret> stale = cache.Get(kStack, kName);
  ExpectSecret(stale, kName, 1, CacheOutcome::kStale);
  EXPECT_EQ(stale->value, fresh->value);
  clock_.Advance(options.max_stale);  // exactly max_stale past expiry: still served
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kStale);
  EXPECT_EQ(cache.stats().stale_serves, 2u);

  clock_.Advance(absl::Nanoseconds(1));
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_.get_calls(), 4);

  store_.set_error(absl::OkStatus());
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  EXPECT_EQ(cache.stats().stale_serves, 2u);
}

TEST_F(SecretCacheTest, HungStoreServesExpiredEntryStaleAndTheRefetchUpdatesIt) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  options.stale_after = absl::Milliseconds(50);
  Put(kStack, kName);
  // Declared before the cache and released before it goes: its fetch threads must not
  // outlive the latches, nor wait on them forever when an assertion fails.
  Latch entered;
  Latch release;
  SecretCache cache(&store_, options);
  absl::Cleanup release_on_exit = [&] { release.Notify(); };
  absl::StatusOr<CachedSecret> fresh = cache.Get(kStack, kName);
  ExpectSecret(fresh, kName, 1, CacheOutcome::kMiss);
  clock_.Advance(options.ttl);

  // The store hangs (no error, no timeout of its own): callers with seconds to spare get the
  // expired value instead of waiting for it.
  store_.set_get_hook([&] {
    entered.Notify();
    release.Wait();
  });
  absl::StatusOr<CachedSecret> stale = cache.Get(kStack, kName, absl::Now() + absl::Seconds(10));
  ExpectSecret(stale, kName, 1, CacheOutcome::kStale);
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(stale->value, fresh->value);
  ExpectSecret(cache.Get(kStack, kName, absl::Now() + absl::Seconds(10)), kName, 1,
               CacheOutcome::kStale);
  entered.Wait();
  EXPECT_EQ(store_.get_calls(), 2);  // the first fetch, and one refetch still running
  EXPECT_EQ(cache.stats().stale_serves, 2u);

  // The refetch answers later with a newer version, which replaces the entry.
  Put(kStack, kName);
  release.Notify();
  while (cache.stats().store_fetches < 2) std::this_thread::yield();
  store_.set_get_hook(nullptr);
  ExpectSecret(cache.Get(kStack, kName), kName, 2, CacheOutcome::kHit);
  EXPECT_EQ(store_.get_calls(), 2);
}

TEST_F(SecretCacheTest, HungStoreServesStaleBeforeTheCallersDeadline) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  options.stale_after = absl::Hours(1);  // the caller's deadline comes first
  Put(kStack, kName);
  // Declared before the cache, released before it goes (see above).
  Latch release;
  SecretCache cache(&store_, options);
  absl::Cleanup release_on_exit = [&] { release.Notify(); };
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  clock_.Advance(options.ttl);
  store_.set_get_hook([&] { release.Wait(); });
  ExpectSecret(cache.Get(kStack, kName, absl::Now() + absl::Milliseconds(200)), kName, 1,
               CacheOutcome::kStale);
  // Past max_stale nothing may be served: the caller waits for the store until its deadline.
  clock_.Advance(options.max_stale + absl::Nanoseconds(1));
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName, absl::Now() + absl::Milliseconds(100))),
            absl::StatusCode::kDeadlineExceeded);
  release.Notify();
  store_.set_get_hook(nullptr);
}

TEST_F(SecretCacheTest, ZeroStaleAfterServesStaleAtOnceAndRefetchesInTheBackground) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  options.stale_after = absl::ZeroDuration();
  Put(kStack, kName);
  // Declared before the cache, released before it goes (see above).
  Latch release;
  SecretCache cache(&store_, options);
  absl::Cleanup release_on_exit = [&] { release.Notify(); };
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  clock_.Advance(options.ttl);
  store_.set_get_hook([&] { release.Wait(); });
  // The caller does not wait for the hung store at all.
  ExpectSecret(cache.Get(kStack, kName, absl::Now() + absl::Seconds(10)), kName, 1,
               CacheOutcome::kStale);
  release.Notify();
  while (cache.stats().store_fetches < 2) std::this_thread::yield();
  store_.set_get_hook(nullptr);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
}

TEST_F(SecretCacheTest, FeedDownAndHungStoreServesUnconfirmedValueStale) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  options.stale_after = absl::Milliseconds(50);
  Put(kStack, kName);
  // Declared before the cache, released before it goes (see above).
  Latch release;
  SecretCache cache(&store_, options);
  absl::Cleanup release_on_exit = [&] { release.Notify(); };
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  cache.SetChangeFeedHealthy(false);
  clock_.Advance(options.unconfirmed_grace + absl::Nanoseconds(1));
  store_.set_get_hook([&] { release.Wait(); });
  ExpectSecret(cache.Get(kStack, kName, absl::Now() + absl::Seconds(10)), kName, 1,
               CacheOutcome::kStale);
  release.Notify();
  while (cache.stats().store_fetches < 2) std::this_thread::yield();
  store_.set_get_hook(nullptr);
}

TEST_F(SecretCacheTest, GetAllFetchesEveryMissBeforeWaitingForAny) {
  Put(kStack, "first");
  Put(kStack, "second");
  SecretCache cache(&store_, Options());
  // Each fetch waits (up to a bound, so that a failure cannot hang) until both are in the store.
  std::mutex mu;
  std::condition_variable cv;
  int in_store = 0;
  bool overlapped = false;
  store_.set_get_hook([&] {
    std::unique_lock<std::mutex> lock(mu);
    ++in_store;
    cv.notify_all();
    if (cv.wait_for(lock, std::chrono::seconds(2), [&] { return in_store >= 2; })) {
      overlapped = true;
    }
    --in_store;
  });
  std::vector<absl::string_view> names = {"first", "second"};
  std::vector<absl::StatusOr<CachedSecret>> found(2);
  cache.GetAll(kStack, names, {}, absl::MakeSpan(found), absl::Now() + absl::Seconds(30));
  store_.set_get_hook(nullptr);
  ExpectSecret(found[0], "first", 1, CacheOutcome::kMiss);
  ExpectSecret(found[1], "second", 1, CacheOutcome::kMiss);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_TRUE(overlapped);
}

TEST_F(SecretCacheTest, StaleServedOnlyWhenTheStoreCouldNotAnswer) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  clock_.Advance(options.ttl);
  for (const absl::Status& error :
       {absl::UnavailableError("down"), absl::DeadlineExceededError("statement timeout")}) {
    store_.set_next_error(error);
    ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kStale);
  }
  EXPECT_EQ(cache.stats().stale_serves, 2u);
}

TEST_F(SecretCacheTest, StaleNotServedWhenTheStoreAnswersWithAnError) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  clock_.Advance(options.ttl);
  for (const absl::Status& error :
       {absl::DataLossError("tampered"), absl::FailedPreconditionError("key not loaded"),
        absl::InternalError("bug"), absl::PermissionDeniedError("role revoked")}) {
    store_.set_next_error(error);
    absl::StatusOr<CachedSecret> result = cache.Get(kStack, kName);
    EXPECT_EQ(CodeOf(result), error.code());
    EXPECT_EQ(result.status().message(), error.message());
  }
  EXPECT_EQ(cache.stats().stale_serves, 0u);
}

TEST_F(SecretCacheTest, StoreErrorsOtherThanNotFoundAreNotCached) {
  Put(kStack, kName);
  SecretCache cache(&store_, Options());
  int64_t calls = 0;
  for (const absl::Status& error :
       {absl::DataLossError("tampered"), absl::FailedPreconditionError("key not loaded"),
        absl::UnavailableError("down")}) {
    store_.set_next_error(error);
    EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), error.code());
    EXPECT_EQ(store_.get_calls(), ++calls);
  }
  EXPECT_EQ(cache.stats().entries, 0u);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  EXPECT_EQ(cache.stats().negative_hits, 0u);
}

TEST_F(SecretCacheTest, DeletedSecretIsNotServedStale) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  std::weak_ptr<const CachedValue> old_value = cache.Get(kStack, kName)->value;
  ASSERT_TRUE(store_.Delete(kStack, kName, "test").ok());
  clock_.Advance(options.ttl);
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kNotFound);
  EXPECT_TRUE(old_value.expired());
  EXPECT_EQ(cache.stats().stale_serves, 0u);
}

TEST_F(SecretCacheTest, FeedDownRereadsValuesOlderThanTheGrace) {
  CacheOptions options = Options();
  options.unconfirmed_grace = absl::Seconds(2);
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  cache.SetChangeFeedHealthy(false);
  Put(kStack, kName);  // a change the cache is not told about

  clock_.Advance(options.unconfirmed_grace);  // at the grace: still trusted
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  clock_.Advance(absl::Nanoseconds(1));
  std::vector<absl::string_view> names = {kName};
  std::vector<absl::StatusOr<CachedSecret>> found(1);
  EXPECT_FALSE(cache.GetAllIfCached(kStack, names, absl::MakeSpan(found)));
  ExpectSecret(cache.Get(kStack, kName), kName, 2, CacheOutcome::kMiss);
  ExpectSecret(cache.Get(kStack, kName), kName, 2, CacheOutcome::kHit);  // fetched just now
  EXPECT_EQ(store_.get_calls(), 2);

  // A secret deleted meanwhile stops resolving once its value is past the grace.
  ASSERT_TRUE(store_.Delete(kStack, kName, "test").ok());
  clock_.Advance(options.unconfirmed_grace + absl::Nanoseconds(1));
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kNotFound);
}

TEST_F(SecretCacheTest, FeedDownAndStoreDownServesStale) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  cache.SetChangeFeedHealthy(false);
  clock_.Advance(options.unconfirmed_grace + absl::Nanoseconds(1));
  store_.set_next_error(absl::UnavailableError("down"));
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kStale);
  // An error that is the store's answer is not papered over.
  store_.set_next_error(absl::DataLossError("tampered"));
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kDataLoss);
  // Past max_stale from expiry, nothing is served.
  store_.set_error(absl::UnavailableError("down"));
  clock_.Advance(options.ttl + options.max_stale);
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kUnavailable);
  EXPECT_EQ(cache.stats().stale_serves, 1u);
}

TEST_F(SecretCacheTest, FeedBackUpTrustsValuesForTheirTtl) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  cache.SetChangeFeedHealthy(false);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  cache.SetChangeFeedHealthy(true);
  clock_.Advance(options.ttl - absl::Nanoseconds(1));
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kHit);
  EXPECT_EQ(store_.get_calls(), 1);
}

TEST_F(SecretCacheTest, FeedDownKeepsCachedNotFoundForNegativeTtl) {
  CacheOptions options = Options();
  options.unconfirmed_grace = absl::Seconds(1);
  SecretCache cache(&store_, options);
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kNotFound);
  cache.SetChangeFeedHealthy(false);
  clock_.Advance(options.negative_ttl - absl::Nanoseconds(1));
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.get_calls(), 1);
}

TEST_F(SecretCacheTest, ReplacedValueIsReleased) {
  CacheOptions options = Options();
  options.refresh_ahead = absl::ZeroDuration();
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  absl::StatusOr<CachedSecret> held = cache.Get(kStack, kName);
  ASSERT_TRUE(held.ok());
  std::weak_ptr<const CachedValue> old_value = held->value;
  Put(kStack, kName);
  clock_.Advance(options.ttl);
  ExpectSecret(cache.Get(kStack, kName), kName, 2, CacheOutcome::kMiss);

  // A reader still holding the old version keeps it intact; once it lets go it is gone.
  ASSERT_FALSE(old_value.expired());
  EXPECT_TRUE(held->value->value.Equals(ValueFor(kName, 1)));
  held = absl::CancelledError("released");
  EXPECT_TRUE(old_value.expired());
}

TEST_F(SecretCacheTest, ByteBoundEvictsLeastRecentlyUsed) {
  const size_t cost = EntryCost(kStack, "secret-0");
  CacheOptions options = Options();
  options.max_bytes = 3 * cost;
  options.per_stack_share = 1.0;
  for (int i = 0; i < 4; ++i) Put(kStack, absl::StrCat("secret-", i));
  SecretCache cache(&store_, options);

  ExpectSecret(cache.Get(kStack, "secret-0"), "secret-0", 1, CacheOutcome::kMiss);
  absl::StatusOr<CachedSecret> held = cache.Get(kStack, "secret-1");
  ExpectSecret(held, "secret-1", 1, CacheOutcome::kMiss);
  std::weak_ptr<const CachedValue> evicted = held->value;
  ExpectSecret(cache.Get(kStack, "secret-2"), "secret-2", 1, CacheOutcome::kMiss);
  EXPECT_EQ(cache.stats().bytes, 3 * cost);
  ExpectSecret(cache.Get(kStack, "secret-0"), "secret-0", 1, CacheOutcome::kHit);

  // secret-1 is now the least recently used.
  ExpectSecret(cache.Get(kStack, "secret-3"), "secret-3", 1, CacheOutcome::kMiss);
  CacheStats stats = cache.stats();
  EXPECT_EQ(stats.evictions, 1u);
  EXPECT_EQ(stats.entries, 3u);
  EXPECT_EQ(stats.bytes, 3 * cost);

  // The evicted value stays readable for its holder, and is released when it lets go.
  ASSERT_FALSE(evicted.expired());
  EXPECT_TRUE(held->value->value.Equals(ValueFor("secret-1", 1)));
  held = absl::CancelledError("released");
  EXPECT_TRUE(evicted.expired());

  ExpectSecret(cache.Get(kStack, "secret-0"), "secret-0", 1, CacheOutcome::kHit);
  ExpectSecret(cache.Get(kStack, "secret-2"), "secret-2", 1, CacheOutcome::kHit);
  ExpectSecret(cache.Get(kStack, "secret-3"), "secret-3", 1, CacheOutcome::kHit);
  ExpectSecret(cache.Get(kStack, "secret-1"), "secret-1", 1, CacheOutcome::kMiss);
}

TEST_F(SecretCacheTest, NoisyStackDoesNotEvictOtherStacks) {
  // Stack names of one length, so every entry costs the same.
  const size_t cost = EntryCost("quiet", "secret-00");
  ASSERT_EQ(cost, EntryCost("noisy", "secret-00"));
  CacheOptions options = Options();
  options.max_bytes = 8 * cost;
  options.per_stack_share = 0.5;  // 4 entries per stack
  for (int i = 0; i < 2; ++i) Put("quiet", absl::StrFormat("secret-%02d", i));
  for (int i = 0; i < 20; ++i) Put("noisy", absl::StrFormat("secret-%02d", i));
  SecretCache cache(&store_, options);

  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(cache.Get("quiet", absl::StrFormat("secret-%02d", i)).ok());
  }
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(cache.Get("noisy", absl::StrFormat("secret-%02d", i)).ok());
  }

  for (int i = 0; i < 2; ++i) {
    std::string name = absl::StrFormat("secret-%02d", i);
    ExpectSecret(cache.Get("quiet", name), name, 1, CacheOutcome::kHit);
  }
  CacheStats stats = cache.stats();
  EXPECT_EQ(stats.entries, 6u);  // 2 quiet + the noisy stack's share of 4
  EXPECT_EQ(stats.bytes, 6 * cost);
  EXPECT_EQ(stats.evictions, 16u);
  for (int i = 16; i < 20; ++i) {
    std::string name = absl::StrFormat("secret-%02d", i);
    ExpectSecret(cache.Get("noisy", name), name, 1, CacheOutcome::kHit);
  }
  ExpectSecret(cache.Get("noisy", "secret-00"), "secret-00", 1, CacheOutcome::kMiss);
}

TEST_F(SecretCacheTest, GlobalOverflowEvictsGlobalLeastRecentlyUsed) {
  const size_t cost = EntryCost("stack-a", "s0");
  CacheOptions options = Options();
  options.max_bytes = 4 * cost;
  options.per_stack_share = 0.5;  // 2 entries per stack, 4 in all
  for (const char* stack : {"stack-a", "stack-b", "stack-c"}) {
    for (const char* name : {"s0", "s1"}) Put(stack, name);
  }
  SecretCache cache(&store_, options);
  for (const char* stack : {"stack-a", "stack-b"}) {
    for (const char* name : {"s0", "s1"}) ASSERT_TRUE(cache.Get(stack, name).ok());
  }
  ExpectSecret(cache.Get("stack-a", "s0"), "s0", 1, CacheOutcome::kHit);
  // The cache is full; stack-c is within its share, so the global LRU (stack-a/s1) goes.
  ExpectSecret(cache.Get("stack-c", "s0"), "s0", 1, CacheOutcome::kMiss);
  EXPECT_EQ(cache.stats().evictions, 1u);
  EXPECT_EQ(cache.stats().entries, 4u);
  ExpectSecret(cache.Get("stack-a", "s0"), "s0", 1, CacheOutcome::kHit);
  ExpectSecret(cache.Get("stack-b", "s0"), "s0", 1, CacheOutcome::kHit);
  ExpectSecret(cache.Get("stack-b", "s1"), "s1", 1, CacheOutcome::kHit);
  ExpectSecret(cache.Get("stack-a", "s1"), "s1", 1, CacheOutcome::kMiss);
}

TEST_F(SecretCacheTest, EntryLargerThanStackShareIsServedButNotCached) {
  const size_t cost = EntryCost(kStack, kName);
  CacheOptions options = Options();
  options.max_bytes = 2 * cost;
  options.per_stack_share = 0.25;  // half an entry
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  EXPECT_EQ(store_.get_calls(), 2);
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_EQ(cache.stats().bytes, 0u);
}

TEST_F(SecretCacheTest, InvalidateDropsOneEntry) {
  Put(kStack, kName);
  Put(kStack, "other");
  SecretCache cache(&store_, Options());
  std::weak_ptr<const CachedValue> dropped = cache.Get(kStack, kName)->value;
  ASSERT_TRUE(cache.Get(kStack, "other").ok());
  cache.Invalidate(kStack, kName);
  EXPECT_TRUE(dropped.expired());
  EXPECT_EQ(cache.stats().entries, 1u);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  ExpectSecret(cache.Get(kStack, "other"), "other", 1, CacheOutcome::kHit);
  EXPECT_EQ(store_.get_calls(), 3);
  cache.Invalidate(kStack, "never-cached");  // a no-op
}

TEST_F(SecretCacheTest, InvalidateDropsNegativeEntry) {
  SecretCache cache(&store_, Options());
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kNotFound);
  Put(kStack, kName);
  EXPECT_EQ(CodeOf(cache.Get(kStack, kName)), absl::StatusCode::kNotFound);
  cache.Invalidate(kStack, kName);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
}

TEST_F(SecretCacheTest, InvalidateAllDropsEverything) {
  Put("stack-a", "one");
  Put("stack-a", "two");
  Put("stack-b", "one");
  SecretCache cache(&store_, Options());
  std::vector<std::weak_ptr<const CachedValue>> values;
  for (auto [stack, name] :
       {std::pair{"stack-a", "one"}, std::pair{"stack-a", "two"}, std::pair{"stack-b", "one"}}) {
    values.push_back(cache.Get(stack, name)->value);
  }
  EXPECT_EQ(CodeOf(cache.Get("stack-b", "missing")), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.stats().entries, 4u);

  cache.InvalidateAll();
  for (const auto& value : values) EXPECT_TRUE(value.expired());
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_EQ(cache.stats().bytes, 0u);
  ExpectSecret(cache.Get("stack-a", "one"), "one", 1, CacheOutcome::kMiss);
  ExpectSecret(cache.Get("stack-b", "one"), "one", 1, CacheOutcome::kMiss);
}

TEST_F(SecretCacheTest, InvalidatedInFlightFetchIsReturnedButNotCached) {
  Put(kStack, kName);
  SecretCache cache(&store_, Options());
  Latch entered;
  Latch release;
  std::atomic<bool> first{true};
  store_.set_get_hook([&] {
    if (!first.exchange(false)) return;  // only the first fetch is held
    entered.Notify();
    release.Wait();
  });

  absl::StatusOr<CachedSecret> old_fetch;
  std::thread leader([&] { old_fetch = cache.Get(kStack, kName); });
  entered.Wait();
  cache.Invalidate(kStack, kName);

  // A lookup after the drop does not join the older fetch: it makes its own, which is cached.
  absl::StatusOr<CachedSecret> new_fetch = cache.Get(kStack, kName);
  ExpectSecret(new_fetch, kName, 1, CacheOutcome::kMiss);
  EXPECT_EQ(store_.get_calls(), 2);

  release.Notify();
  leader.join();
  store_.set_get_hook(nullptr);
  ExpectSecret(old_fetch, kName, 1, CacheOutcome::kMiss);
  EXPECT_NE(old_fetch->value, new_fetch->value);
  absl::StatusOr<CachedSecret> cached = cache.Get(kStack, kName);
  ExpectSecret(cached, kName, 1, CacheOutcome::kHit);
  EXPECT_EQ(cached->value, new_fetch->value);  // the older fetch did not replace it
  EXPECT_EQ(cache.stats().entries, 1u);
}

TEST_F(SecretCacheTest, InvalidateAllDuringFetchIsNotCached) {
  Put(kStack, kName);
  SecretCache cache(&store_, Options());
  Latch entered;
  Latch release;
  store_.set_get_hook([&] {
    entered.Notify();
    release.Wait();
  });
  absl::StatusOr<CachedSecret> result;
  std::thread leader([&] { result = cache.Get(kStack, kName); });
  entered.Wait();
  cache.InvalidateAll();
  release.Notify();
  leader.join();
  store_.set_get_hook(nullptr);

  ExpectSecret(result, kName, 1, CacheOutcome::kMiss);
  EXPECT_EQ(cache.stats().entries, 0u);
  ExpectSecret(cache.Get(kStack, kName), kName, 1, CacheOutcome::kMiss);
  EXPECT_EQ(store_.get_calls(), 2);
}

TEST_F(SecretCacheTest, FingerprintIsComputedOncePerFetchedVersion) {
  int fingerprint_calls = 0;
  CacheOptions options = Options();
  options.fingerprint = [&fingerprint_calls](const StoredSecret& secret) {
    ++fingerprint_calls;
    return absl::StrCat("fp-", secret.name, "-", secret.version);
  };
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<CachedSecret> result = cache.Get(kStack, kName);
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result->value->fingerprint(), "fp-api-token-1");
  }
  EXPECT_EQ(fingerprint_calls, 1);
}

TEST_F(SecretCacheTest, FingerprintsUpToTheInlineLimitAreKept) {
  std::string fingerprint;
  CacheOptions options = Options();
  options.fingerprint = [&fingerprint](const StoredSecret&) { return fingerprint; };
  Put(kStack, kName);
  SecretCache cache(&store_, options);
  fingerprint = std::string(kMaxCachedFingerprintBytes, '\xab');  // high bytes and a NUL
  fingerprint[3] = '\0';
  absl::StatusOr<CachedSecret> kept = cache.Get(kStack, kName);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->value->fingerprint(), fingerprint);
  cache.InvalidateAll();
  fingerprint += 'x';  // one byte too many: not kept, so the resolver computes its own
  absl::StatusOr<CachedSecret> dropped = cache.Get(kStack, kName);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped->value->fingerprint(), "");
}

TEST_F(SecretCacheTest, StatsCountEveryOutcome) {
  ManualExecutor executor;
  CacheOptions options = Options();
  options.refresh_executor = executor.executor();
  options.max_bytes = EntryCost(kStack, kName) + EntryCost(kStack, "missing", false) +
                      EntryCost(kStack, "other") - 1;
  options.per_stack_share = 1.0;
  Put(kStack, kName);
  Put(kStack, "other");
  SecretCache cache(&store_, options);

  ASSERT_TRUE(cache.Get(kStack, kName).ok());                                    // miss
  ASSERT_TRUE(cache.Get(kStack, kName).ok());                                    // hit
  EXPECT_EQ(CodeOf(cache.Get(kStack, "missing")), absl::StatusCode::kNotFound);  // miss
  EXPECT_EQ(CodeOf(cache.Get(kStack, "missing")), absl::StatusCode::kNotFound);  // negative
  clock_.Advance(options.ttl - options.refresh_ahead);
  ASSERT_TRUE(cache.Get(kStack, kName).ok());  // hit, schedules a refresh
  executor.RunAll();
  store_.set_error(absl::UnavailableError("down"));
  clock_.Advance(options.ttl);
  ASSERT_TRUE(cache.Get(kStack, kName).ok());  // miss served stale
  store_.set_error(absl::OkStatus());
  ASSERT_TRUE(cache.Get(kStack, "other").ok());  // miss; evicts the expired "missing"

  CacheStats stats = cache.stats();
  EXPECT_EQ(stats.hits, 2u);
  EXPECT_EQ(stats.misses, 4u);
  EXPECT_EQ(stats.negative_hits, 1u);
  EXPECT_EQ(stats.stale_serves, 1u);
  EXPECT_EQ(stats.refreshes, 1u);
  EXPECT_EQ(stats.store_fetches, 5u);
  EXPECT_EQ(stats.evictions, 1u);
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_EQ(stats.bytes, EntryCost(kStack, kName) + EntryCost(kStack, "other"));
}

// Many threads, every operation at once; meant for ThreadSanitizer and AddressSanitizer.
TEST_F(SecretCacheTest, ConcurrentMixedOperations) {
  constexpr int kThreads = 8;
  constexpr int kOpsPerThread = 1000;
  constexpr int kNames = 12;
  CacheOptions options = Options();
  options.refresh_executor = nullptr;  // the cache's own worker
  options.random = nullptr;
  options.max_bytes = 10 * EntryCost("stack-0", "name-00");
  options.per_stack_share = 0.5;
  for (int s = 0; s < 2; ++s) {
    for (int n = 0; n < kNames; ++n) {
      Put(absl::StrCat("stack-", s), absl::StrFormat("name-%02d", n));
    }
  }
  SecretCache cache(&store_, options);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOpsPerThread; ++i) {
        const std::string stack = absl::StrCat("stack-", (t + i) % 2);
        const std::string name = absl::StrFormat("name-%02d", (t * 7 + i) % (kNames + 1));
        if (i % 97 == 0) {
          cache.Invalidate(stack, name);
        } else if (t == 0 && i % 251 == 0) {
          cache.InvalidateAll();
        } else if (t == 1 && i % 50 == 0) {
          clock_.Advance(absl::Seconds(20));
        } else {
          absl::StatusOr<CachedSecret> result = cache.Get(stack, name);
          if (result.ok()) {
            EXPECT_TRUE(result->value->value.Equals(ValueFor(name, 1)));
          } else {
            EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const CacheStats stats = cache.stats();
  EXPECT_LE(stats.bytes, options.max_bytes);
  EXPECT_EQ(stats.hits + stats.misses + stats.negative_hits > 0, true);
}

}  // namespace
}  // namespace secret_resolver
