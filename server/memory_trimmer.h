// MemoryTrimmer: gives the heap's free memory back to the kernel after a burst.
//
// glibc's malloc keeps freed memory in its arenas for reuse and returns to the kernel only what
// lies at the top of the main heap. After a burst (thousands of streams opened and dropped),
// the freed memory is scattered through every thread's arena, so the process's resident size
// stays at its peak (measured: docs/BENCHMARKS.md, "Stream flood"). A background thread
// compares, every `interval`, the resident size with the bytes malloc has handed out; when the
// resident size exceeds them by `min_free_bytes` more than it did at start-up or after the last
// trim, it calls malloc_trim(0), which releases the free pages of every arena. When a trim gives
// back less than `min_free_bytes`, the gap it leaves (memory malloc_trim cannot give back) is
// the new baseline, so such growth causes one trim, not one every interval. Between bursts that check is the only cost (mallinfo2 and
// one read of /proc/self/statm).
//
// Thread safety: construct and destroy from one thread; the hook runs on the trimmer's thread.
#ifndef SECRET_RESOLVER_SERVER_MEMORY_TRIMMER_H_
#define SECRET_RESOLVER_SERVER_MEMORY_TRIMMER_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/time/time.h"

namespace secret_resolver {

struct MemoryTrimmerOptions {
  absl::Duration interval = absl::Seconds(5);
  // Free heap memory held resident beyond what was at start-up (or after the last trim) that
  // makes a trim worthwhile.
  size_t min_free_bytes = size_t{16} << 20;
  // Told of each trim: the resident bytes before and after. May be empty.
  std::function<void(uint64_t resident_before, uint64_t resident_after)> on_trim;
};

class MemoryTrimmer {
 public:
  // Starts the thread.
  explicit MemoryTrimmer(MemoryTrimmerOptions options);
  // Stops and joins the thread.
  ~MemoryTrimmer();

  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

  // The process's resident set size in bytes (0 if /proc cannot be read).
  static uint64_t ResidentBytes();

 private:
  void Run();
  // Resident bytes that are not memory malloc has handed out.
  static int64_t ResidentBeyondHeapInUse();

  const MemoryTrimmerOptions options_;
  int64_t baseline_;  // ResidentBeyondHeapInUse() at start-up, then after the last trim that
                      // gave back little; used by the trimmer's thread only
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;     // last: started once the rest is constructed
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_MEMORY_TRIMMER_H_
