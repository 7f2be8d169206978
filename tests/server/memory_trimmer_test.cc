// MemoryTrimmer returns the heap's free memory to the kernel after a burst of allocations that
// glibc would otherwise keep resident.
#include "server/memory_trimmer.h"

#include <malloc.h>
#include <sys/mman.h>

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
  // Under load a trim may come while the blocks are still being freed, and then another once
  // the rest are: what counts is what all of them gave back.
  std::atomic<int> trims{0};
  std::atomic<uint64_t> released{0};
  MemoryTrimmerOptions options;
  options.interval = absl::Milliseconds(50);
  options.min_free_bytes = 16 * kMiB;
  options.on_trim = [&](uint64_t resident_before, uint64_t resident_after) {
    if (resident_after < resident_before) released += resident_before - resident_after;
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
  while (released < 32 * kMiB && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_GT(trims.load(), 0) << "no trim within 5 s of freeing ~60 MiB";
  EXPECT_GE(released.load(), 32 * kMiB)
      << trims << " trims released " << released / kMiB << " MiB within 5 s";
  EXPECT_LT(MemoryTrimmer::ResidentBytes() + 32 * kMiB, peak);
}

// Resident memory that malloc_trim cannot give back (here an anonymous mapping, not malloc's)
// causes one trim, not one every interval for ever.
TEST(MemoryTrimmerTest, GrowthTrimCannotUndoTrimsOnce) {
  if (mallinfo2().arena == 0) GTEST_SKIP() << "malloc is not glibc's (a sanitizer build)";
  std::atomic<int> trims{0};
  MemoryTrimmerOptions options;
  options.interval = absl::Milliseconds(10);
  options.min_free_bytes = 16 * kMiB;
  options.on_trim = [&](uint64_t, uint64_t) { ++trims; };
  MemoryTrimmer trimmer(options);

  const size_t bytes = 32 * kMiB;
  void* mapped = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mapped, MAP_FAILED);
  std::memset(mapped, 0x5a, bytes);

  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (trims == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_GT(trims.load(), 0) << "no trim within 5 s of 32 MiB more resident";
  absl::SleepFor(absl::Milliseconds(20));  // a trim under way when the loop ended is counted
  const int first = trims.load();
  absl::SleepFor(absl::Milliseconds(300));  // some 30 more checks
  EXPECT_EQ(trims.load(), first) << "trimmed again with nothing new to give back";
  munmap(mapped, bytes);
}

}  // namespace
}  // namespace secret_resolver
