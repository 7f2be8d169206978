#include "resolver/crypto/data_key_cache.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "resolver/crypto/envelope.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/secret_bytes.h"

namespace secret_resolver {
namespace {

SecretBytes Key(char fill) { return SecretBytes(std::string(kDataKeyBytes, fill)); }

KeyRing RingWith(absl::string_view id, char fill) {
  KeyRing ring;
  EXPECT_TRUE(ring.Add(id, Key(fill)).ok());
  return ring;
}

// A data key of byte `fill` for (stack, id), wrapped by kek-1 of `ring`.
WrappedDataKey Wrapped(const KeyRing& ring, absl::string_view stack, absl::string_view id,
                       char fill, absl::string_view kek_id = "kek-1") {
  absl::StatusOr<WrappedDataKey> wrapped = WrapDataKey(ring, kek_id, stack, id, Key(fill));
  EXPECT_TRUE(wrapped.ok()) << wrapped.status();
  return wrapped.ok() ? *wrapped : WrappedDataKey{};
}

TEST(DataKeyCacheTest, UnwrapsOnceThenAnswersFromTheCache) {
  KeyRing ring = RingWith("kek-1", 'k');
  DataKeyCache cache(&ring, 4);
  const WrappedDataKey wrapped = Wrapped(ring, "stacks-1", "dk-1", 'a');
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<SecretBytes> key = cache.Unwrap(wrapped, "stacks-1", "dk-1");
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_TRUE(key->Equals(Key('a')));
  }
  EXPECT_EQ(cache.unwraps(), 1u);
  EXPECT_EQ(cache.size(), 1u);
}

// A hit needs the very bytes that were unwrapped: the cache never vouches for a wrapped key that
// was damaged or swapped in after its first read, nor for another row's key.
TEST(DataKeyCacheTest, ChangedWrappedBytesOrRowAreUnwrappedAgain) {
  KeyRing ring = RingWith("kek-1", 'k');
  DataKeyCache cache(&ring, 4);
  const WrappedDataKey wrapped = Wrapped(ring, "stacks-1", "dk-1", 'a');
  ASSERT_TRUE(cache.Unwrap(wrapped, "stacks-1", "dk-1").ok());

  WrappedDataKey tampered = wrapped;
  tampered.wrapped[tampered.wrapped.size() / 2] ^= 0x01;
  EXPECT_EQ(cache.Unwrap(tampered, "stacks-1", "dk-1").status().code(),
            absl::StatusCode::kDataLoss);
  // The same bytes under another stack or id fail authentication (the AAD binds both).
  EXPECT_EQ(cache.Unwrap(wrapped, "stacks-2", "dk-1").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(cache.Unwrap(wrapped, "stacks-1", "dk-2").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(cache.unwraps(), 4u);
  EXPECT_EQ(cache.size(), 1u) << "failures are not cached";

  // A data key replaced in place (same stack and id, new bytes) replaces the entry.
  const WrappedDataKey replaced = Wrapped(ring, "stacks-1", "dk-1", 'b');
  absl::StatusOr<SecretBytes> key = cache.Unwrap(replaced, "stacks-1", "dk-1");
  ASSERT_TRUE(key.ok());
  EXPECT_TRUE(key->Equals(Key('b')));
  EXPECT_EQ(cache.size(), 1u);
}

// Evicted keys are gone (SecretBytes wipes them as the entry is destroyed): holding the least
// recently used out costs it a new unwrap, and the cache never grows past its capacity.
TEST(DataKeyCacheTest, EvictsTheLeastRecentlyUsedBeyondCapacity) {
  KeyRing ring = RingWith("kek-1", 'k');
  DataKeyCache cache(&ring, 2);
  const WrappedDataKey a = Wrapped(ring, "stacks-a", "dk", 'a');
  const WrappedDataKey b = Wrapped(ring, "stacks-b", "dk", 'b');
  const WrappedDataKey c = Wrapped(ring, "stacks-c", "dk", 'c');
  ASSERT_TRUE(cache.Unwrap(a, "stacks-a", "dk").ok());
  ASSERT_TRUE(cache.Unwrap(b, "stacks-b", "dk").ok());
  ASSERT_TRUE(cache.Unwrap(a, "stacks-a", "dk").ok());  // a is now the most recent
  ASSERT_TRUE(cache.Unwrap(c, "stacks-c", "dk").ok());  // evicts b
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.unwraps(), 3u);
  ASSERT_TRUE(cache.Unwrap(a, "stacks-a", "dk").ok());
  EXPECT_EQ(cache.unwraps(), 3u) << "a stayed";
  absl::StatusOr<SecretBytes> again = cache.Unwrap(b, "stacks-b", "dk");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->Equals(Key('b')));
  EXPECT_EQ(cache.unwraps(), 4u) << "b was evicted";
  EXPECT_EQ(cache.size(), 2u);
}

TEST(DataKeyCacheTest, CapacityZeroKeepsNothing) {
  KeyRing ring = RingWith("kek-1", 'k');
  DataKeyCache cache(&ring, 0);
  const WrappedDataKey wrapped = Wrapped(ring, "stacks-1", "dk-1", 'a');
  ASSERT_TRUE(cache.Unwrap(wrapped, "stacks-1", "dk-1").ok());
  ASSERT_TRUE(cache.Unwrap(wrapped, "stacks-1", "dk-1").ok());
  EXPECT_EQ(cache.unwraps(), 2u);
  EXPECT_EQ(cache.size(), 0u);
}

// A rewrap under a new KEK: the store clears the cache, and the key, now wrapped by kek-2,
// unwraps to the same bytes; the old wrapping no longer answers from the cache either.
TEST(DataKeyCacheTest, ClearAfterARewrapUnwrapsTheNewWrappingToTheSameKey) {
  KeyRing ring;
  ASSERT_TRUE(ring.Add("kek-2", Key('n')).ok());
  ASSERT_TRUE(ring.Add("kek-1", Key('k')).ok());
  DataKeyCache cache(&ring, 4);
  const WrappedDataKey old_wrapping = Wrapped(ring, "stacks-1", "dk-1", 'a', "kek-1");
  ASSERT_TRUE(cache.Unwrap(old_wrapping, "stacks-1", "dk-1").ok());

  absl::StatusOr<WrappedDataKey> rewrapped =
      RewrapDataKey(ring, old_wrapping, "stacks-1", "dk-1", "kek-2");
  ASSERT_TRUE(rewrapped.ok());
  cache.Clear();
  EXPECT_EQ(cache.size(), 0u);
  absl::StatusOr<SecretBytes> key = cache.Unwrap(*rewrapped, "stacks-1", "dk-1");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_TRUE(key->Equals(Key('a')));
  EXPECT_EQ(cache.unwraps(), 2u);
  // Not cleared, a new wrapping is still never answered by the old entry's bytes.
  ASSERT_TRUE(cache.Unwrap(old_wrapping, "stacks-1", "dk-1").ok());
  EXPECT_EQ(cache.unwraps(), 3u);
}

// A cache on a ring without the wrapping KEK fails as UnwrapDataKey does, naming the KEK.
TEST(DataKeyCacheTest, MissingKekIsFailedPrecondition) {
  KeyRing ring = RingWith("kek-1", 'k');
  KeyRing other = RingWith("kek-2", 'n');
  DataKeyCache cache(&other, 4);
  absl::StatusOr<SecretBytes> key =
      cache.Unwrap(Wrapped(ring, "stacks-1", "dk-1", 'a'), "stacks-1", "dk-1");
  EXPECT_EQ(key.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(key.status().message().find("\"kek-1\""), absl::string_view::npos);
}

TEST(DataKeyCacheTest, ConcurrentUnwrapsAgree) {
  KeyRing ring = RingWith("kek-1", 'k');
  DataKeyCache cache(&ring, 3);  // smaller than the key set: evictions race with hits
  std::vector<WrappedDataKey> keys;
  for (int i = 0; i < 5; ++i) {
    keys.push_back(Wrapped(ring, absl::StrCat("stacks-", i), "dk", static_cast<char>('a' + i)));
  }
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < 500; ++n) {
        const int i = (n + t) % 5;
        absl::StatusOr<SecretBytes> key = cache.Unwrap(keys[i], absl::StrCat("stacks-", i), "dk");
        if (!key.ok() || !key->Equals(Key(static_cast<char>('a' + i)))) ++wrong;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LE(cache.size(), 3u);
}

}  // namespace
}  // namespace secret_resolver
