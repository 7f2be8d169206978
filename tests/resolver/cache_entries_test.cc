#include "resolver/cache_entries.h"

#include <cstddef>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "resolver/cached_value.h"
#include "resolver/secret_bytes.h"

namespace secret_resolver::cache_internal {
namespace {

constexpr size_t kUnbounded = size_t{1} << 30;
const absl::Time kNow = absl::FromUnixSeconds(1'000'000);

// A positive entry whose value is `value`, expiring at `expires_at`.
std::unique_ptr<Entry> Positive(absl::string_view name, absl::string_view value,
                                absl::Time expires_at = kNow) {
  auto entry = std::make_unique<Entry>(name);
  auto cached = std::make_shared<CachedValue>();
  cached->version = 1;
  cached->value = SecretBytes(value);
  cached->decrypters = std::make_shared<const std::vector<std::string>>();
  entry->value = std::move(cached);
  entry->expires_at = expires_at;
  return entry;
}

// A cached NOT_FOUND expiring at `expires_at`.
std::unique_ptr<Entry> Negative(absl::string_view name, absl::Time expires_at) {
  auto entry = std::make_unique<Entry>(name);
  entry->not_found_message = std::make_unique<const std::string>("not found");
  entry->expires_at = expires_at;
  return entry;
}

// What one entry of this shape is charged.
size_t Cost(absl::string_view stack, absl::string_view name, absl::string_view value) {
  CacheEntries entries(kUnbounded, kUnbounded);
  CacheEntries::Dropped dropped;
  entries.Insert(stack, Positive(name, value), kNow, dropped);
  return entries.bytes();
}

TEST(CacheEntriesTest, InsertFindReplaceRemove) {
  CacheEntries entries(kUnbounded, kUnbounded);
  CacheEntries::Dropped dropped;
  const std::string stack = "stacks-1";  // Insert keeps a copy
  entries.Insert(stack, Positive("a", "one"), kNow, dropped);
  Entry* found = entries.Find(KeyView{"stacks-1", "a"});
  ASSERT_NE(found, nullptr);
  EXPECT_TRUE(found->value->value.Equals("one"));
  EXPECT_EQ(entries.Find(KeyView{"stacks-2", "a"}), nullptr);
  EXPECT_EQ(entries.bytes(), Cost("stacks-1", "a", "one"));

  entries.Insert(stack, Positive("a", "two"), kNow, dropped);
  ASSERT_EQ(dropped.size(), 1u);  // the replaced entry, for the caller to release
  EXPECT_TRUE(dropped[0]->value->value.Equals("one"));
  EXPECT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries.bytes(), Cost("stacks-1", "a", "two"));

  entries.Remove(entries.Find(KeyView{"stacks-1", "a"}), dropped);
  EXPECT_EQ(dropped.size(), 2u);
  EXPECT_EQ(entries.size(), 0u);
  EXPECT_EQ(entries.bytes(), 0u);
  EXPECT_EQ(entries.evictions(), 0u);
}

TEST(CacheEntriesTest, StackOverItsShareEvictsItsOwnLeastRecentlyUsed) {
  const size_t cost = Cost("s1", "a", "v");
  CacheEntries entries(/*max_bytes=*/4 * cost, /*stack_limit=*/2 * cost);
  CacheEntries::Dropped dropped;
  entries.Insert("s2", Positive("a", "v"), kNow, dropped);
  entries.Insert("s1", Positive("a", "v"), kNow, dropped);
  entries.Insert("s1", Positive("b", "v"), kNow, dropped);
  entries.Touch(*entries.Find(KeyView{"s1", "a"}));
  entries.Insert("s1", Positive("c", "v"), kNow, dropped);
  EXPECT_EQ(entries.Find(KeyView{"s1", "b"}), nullptr);
  EXPECT_NE(entries.Find(KeyView{"s1", "a"}), nullptr);
  EXPECT_NE(entries.Find(KeyView{"s2", "a"}), nullptr);
  EXPECT_EQ(entries.evictions(), 1u);
  EXPECT_EQ(entries.bytes(), 3 * cost);
}

TEST(CacheEntriesTest, CacheOverItsBoundEvictsGlobalLeastRecentlyUsed) {
  const size_t cost = Cost("s1", "a", "v");
  CacheEntries entries(/*max_bytes=*/2 * cost, /*stack_limit=*/2 * cost);
  CacheEntries::Dropped dropped;
  entries.Insert("s1", Positive("a", "v"), kNow, dropped);
  entries.Insert("s2", Positive("a", "v"), kNow, dropped);
  entries.Touch(*entries.Find(KeyView{"s1", "a"}));
  entries.Insert("s3", Positive("a", "v"), kNow, dropped);
  EXPECT_EQ(entries.Find(KeyView{"s2", "a"}), nullptr);
  EXPECT_NE(entries.Find(KeyView{"s1", "a"}), nullptr);
  EXPECT_EQ(entries.evictions(), 1u);
}

TEST(CacheEntriesTest, EntryLargerThanTheStackShareIsNotKept) {
  const size_t cost = Cost("s1", "a", "v");
  CacheEntries entries(kUnbounded, /*stack_limit=*/cost);
  CacheEntries::Dropped dropped;
  entries.Insert("s1", Positive("a", "v"), kNow, dropped);
  entries.Insert("s1", Positive("a", "longer value"), kNow, dropped);
  EXPECT_EQ(entries.Find(KeyView{"s1", "a"}), nullptr);  // the old one is superseded too
  EXPECT_EQ(dropped.size(), 2u);
  EXPECT_EQ(entries.bytes(), 0u);
}

TEST(CacheEntriesTest, ExpiredNegativeEntriesAreSweptExpiredPositiveOnesKept) {
  CacheEntries entries(kUnbounded, kUnbounded);
  CacheEntries::Dropped dropped;
  entries.Insert("s1", Positive("expired-value", "v", kNow), kNow, dropped);
  constexpr int kNegatives = 1000;
  absl::Time now = kNow;
  for (int i = 0; i < kNegatives; ++i) {
    entries.Insert("s1", Negative(absl::StrCat("unknown-", i), now + absl::Seconds(5)), now,
                   dropped);
    now += absl::Seconds(1);
  }
  // Each lives 5 s and one comes a second: without the sweep all 1000 would be held.
  EXPECT_LT(entries.size(), 200u);
  EXPECT_NE(entries.Find(KeyView{"s1", "expired-value"}), nullptr);
  EXPECT_NE(entries.Find(KeyView{"s1", absl::StrCat("unknown-", kNegatives - 1)}), nullptr);
  EXPECT_EQ(entries.evictions(), 0u);
}

TEST(CacheEntriesTest, ClearDropsEverything) {
  CacheEntries entries(kUnbounded, kUnbounded);
  CacheEntries::Dropped dropped;
  entries.Insert("s1", Positive("a", "v"), kNow, dropped);
  entries.Insert("s2", Negative("b", kNow), kNow, dropped);
  entries.Clear(dropped);
  EXPECT_EQ(dropped.size(), 2u);
  EXPECT_EQ(entries.size(), 0u);
  EXPECT_EQ(entries.bytes(), 0u);
  EXPECT_EQ(entries.Find(KeyView{"s1", "a"}), nullptr);
}

TEST(CacheEntriesTest, EntryRecordStaysWithinItsMallocBlock) {
  // docs/BENCHMARKS.md, RSS with 100k cached: the record is paid once per cached secret, and
  // 128 bytes is a 144-byte glibc block. A field added here costs 16 bytes a secret.
  EXPECT_LE(sizeof(Entry), 128u);
}

TEST(CacheEntriesTest, StackNameIsTheCachesOwnCopyAndVersionsAreSeparateKeys) {
  CacheEntries entries(kUnbounded, kUnbounded);
  CacheEntries::Dropped dropped;
  {
    std::string stack = "stacks-1";
    entries.Insert(stack, Positive("a", "newest"), kNow, dropped);
    auto pinned = std::make_unique<Entry>("a", 3);
    pinned->value = Positive("a", "three")->value;
    entries.Insert(stack, std::move(pinned), kNow, dropped);
    stack.assign("overwritten");
  }
  Entry* newest = entries.Find(KeyView{"stacks-1", "a"});
  Entry* pinned = entries.Find(KeyView{"stacks-1", "a", 3});
  ASSERT_NE(newest, nullptr);
  ASSERT_NE(pinned, nullptr);
  EXPECT_EQ(newest->stack(), "stacks-1");
  EXPECT_EQ(pinned->stack(), "stacks-1");
  EXPECT_TRUE(newest->value->value.Equals("newest"));
  EXPECT_TRUE(pinned->value->value.Equals("three"));
  EXPECT_EQ(entries.Find(KeyView{"stacks-1", "a", 2}), nullptr);
  EXPECT_EQ(entries.size(), 2u);
}

TEST(CacheEntriesTest, PackedTimeKeepsNanosecondsAndTheInfiniteTimes) {
  const absl::Time t = kNow + absl::Nanoseconds(123'456'789);
  EXPECT_EQ(absl::Time(PackedTime(t)), t);
  EXPECT_EQ(absl::Time(PackedTime(absl::UnixEpoch() - absl::Hours(1))),
            absl::UnixEpoch() - absl::Hours(1));
  EXPECT_EQ(absl::Time(PackedTime(absl::InfiniteFuture())), absl::InfiniteFuture());
  EXPECT_EQ(absl::Time(PackedTime(absl::InfinitePast())), absl::InfinitePast());
  EXPECT_EQ(absl::Time(PackedTime()), absl::UnixEpoch());
  Entry entry("a");
  EXPECT_EQ(absl::Time(entry.refresh_at), absl::InfiniteFuture());
}

}  // namespace
}  // namespace secret_resolver::cache_internal
