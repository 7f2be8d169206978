// Clock: the source of the current time, passed in so that time-dependent logic (cache TTLs,
// token expiry) is tested without sleeping.
//
// Thread safety: implementations are safe to call from any thread.
#ifndef SECRET_RESOLVER_RESOLVER_CLOCK_H_
#define SECRET_RESOLVER_RESOLVER_CLOCK_H_

#include "absl/time/time.h"

namespace secret_resolver {

class Clock {
 public:
  virtual ~Clock() = default;
  // The current time.
  virtual absl::Time Now() = 0;

  // The process-wide wall clock, with a resolution of a few milliseconds. Never null; never
  // destroyed.
  static Clock* Real();
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_CLOCK_H_
