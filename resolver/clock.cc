#include "resolver/clock.h"

#include "absl/time/clock.h"

namespace secret_resolver {
namespace {

class RealClock : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
};

}  // namespace

Clock* Clock::Real() {
  static RealClock* const clock = new RealClock();
  return clock;
}

}  // namespace secret_resolver
