#include "server/memory_trimmer.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

namespace secret_resolver {

MemoryTrimmer::MemoryTrimmer(MemoryTrimmerOptions options)
    : options_(std::move(options)), baseline_(ResidentBeyondHeapInUse()) {
  thread_ = std::thread([this] { Run(); });
}

MemoryTrimmer::~MemoryTrimmer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

uint64_t MemoryTrimmer::ResidentBytes() {
  std::FILE* statm = std::fopen("/proc/self/statm", "re");
  if (statm == nullptr) return 0;
  unsigned long long size = 0;
  unsigned long long resident = 0;
  const bool read = std::fscanf(statm, "%llu %llu", &size, &resident) == 2;
  std::fclose(statm);
  return read ? resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

int64_t MemoryTrimmer::ResidentBeyondHeapInUse() {
  const struct mallinfo2 info = mallinfo2();
  // In use: handed out from the arenas, plus blocks malloc mapped on their own.
  return static_cast<int64_t>(ResidentBytes()) - static_cast<int64_t>(info.uordblks + info.hblkhd);
}

void MemoryTrimmer::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait_for(lock, absl::ToChronoNanoseconds(options_.interval),
                   [this] { return stopping_; });
    if (stopping_) return;
    if (ResidentBeyondHeapInUse() - baseline_ < static_cast<int64_t>(options_.min_free_bytes)) {
      continue;
    }
    const uint64_t before = ResidentBytes();
    malloc_trim(0);
    const uint64_t after = ResidentBytes();
    // A trim that gave back less than min_free_bytes met memory it cannot give back: that gap
    // is the new baseline. One that gave back more may have come mid-burst, and may retry.
    if (before < after + options_.min_free_bytes) baseline_ = ResidentBeyondHeapInUse();
    if (options_.on_trim) options_.on_trim(before, after);
  }
}

}  // namespace secret_resolver
