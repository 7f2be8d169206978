// FakeClock: a Clock that moves only when a test moves it, so TTLs, refresh windows and token
// expiry are tested without sleeping.
//
// Thread safety: all methods are safe to call concurrently (one std::mutex, not absl::Mutex, so
// ThreadSanitizer sees the synchronization).
#ifndef SECRET_RESOLVER_TESTS_FAKES_FAKE_CLOCK_H_
#define SECRET_RESOLVER_TESTS_FAKES_FAKE_CLOCK_H_

#include <mutex>

#include "absl/time/time.h"
#include "resolver/clock.h"

namespace secret_resolver {

class FakeClock : public Clock {
 public:
  // Starts at a fixed, arbitrary instant (2023-11-14T22:13:20Z) so tests are reproducible.
  FakeClock() : FakeClock(absl::FromUnixSeconds(1700000000)) {}
  explicit FakeClock(absl::Time start) : now_(start) {}

  FakeClock(const FakeClock&) = delete;
  FakeClock& operator=(const FakeClock&) = delete;

  // The time the test has set.
  absl::Time Now() override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }

  // Moves the clock by `d` (which may be negative).
  void Advance(absl::Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

  // Sets the clock to `t`.
  void SetTime(absl::Time t) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ = t;
  }

 private:
  std::mutex mu_;
  absl::Time now_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_FAKES_FAKE_CLOCK_H_
