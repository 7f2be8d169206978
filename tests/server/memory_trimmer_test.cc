// MemoryTrimmer returns the heap's free memory to the kernel after a burst of allocations that
// glibc would otherwise keep resident.
#include "server/memory_trimmer.h"

#include <malloc.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace secret_resolver {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

TEST(MemoryTrimmerTest, ReturnsTheFreedHeapAfterABurst) {
  if (mallinfo2().arena == 0) GTEST_SKIP() << "malloc is not glibc's (a sanitizer build)";
  std::atomic<int> trims{0};
  std::atomic<uint64_t> before{0};
  std::atomic<uint64_t> after{0};
  MemoryTrimmerOptions options;
  options.interval = absl::Milliseconds(50);
  options.min_free_bytes = 16 * kMiB;
  options.on_trim = [&](uint64_t resident_before, uint64_t resident_after) {
    before = resident_before;
    after = resident_after;
    ++trims;
  };
  MemoryTrimmer trimmer(options);

  // 64 MiB in 4 KiB blocks, touched so that they are resident; every 16th stays, so the freed
  // ones lie between live blocks and glibc cannot hand them back by shrinking the heap's top.
  std::vector<std::unique_ptr<char[]>> blocks;
  std::vector<std::unique_ptr<char[]>> kept;
  for (int i = 0; i < 16384; ++i) {
    auto block = std::make_unique<char[]>(4096);
    std::memset(block.get(), 0x5a, 4096);
    (i % 16 == 15 ? kept : blocks).push_back(std::move(block));
  }
  const uint64_t peak = MemoryTrimmer::ResidentBytes();
  blocks.clear();

  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (trims == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_GT(trims.load(), 0) << "no trim within 5 s of freeing ~60 MiB";
  EXPECT_LE(before.load(), peak + 8 * kMiB);
  EXPECT_LT(after.load() + 32 * kMiB, before.load())
      << "resident before the trim " << before / kMiB << " MiB, after " << after / kMiB;
  EXPECT_LT(MemoryTrimmer::ResidentBytes() + 32 * kMiB, peak);
}

}  // namespace
}  // namespace secret_resolver
