#include "resolver/clock.h"

#include <time.h>

namespace secret_resolver {
namespace {

// Reads CLOCK_REALTIME_COARSE: a few milliseconds of resolution, which is plenty for TTLs and
// token expiry, at a fraction of the cost of a precise read (measured on the cache hit path,
// where the clock is read on every lookup).
class RealClock : public Clock {
 public:
  absl::Time Now() override {
    timespec now;
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    return absl::TimeFromTimespec(now);
  }
};

}  // namespace

Clock* Clock::Real() {
  static RealClock* const clock = new RealClock();
  return clock;
}

}  // namespace secret_resolver
