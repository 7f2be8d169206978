// SecretPrefetcher: warm start (cache.prefetch). Loads a fixed list of secrets into the
// SecretCache when the sidecar starts, reports when that is done, and keeps them warm.
//
//   - Load: every (stack, name) is fetched through SecretCache::Warm (single flight, counted as
//     a store fetch but not as a caller's hit or miss) on `parallelism` threads. A secret that
//     does not load (NOT_FOUND, the store's error, or no answer within `load_timeout` of the
//     load's start, which so bounds the whole load) is
//     reported to `on_failure` and does not hold the load back: the load is done once every
//     secret was tried, and `on_done` is told how many loaded. done() turns true then.
//   - Keep warm: every `keep_warm_interval` each secret is warmed again, so an entry near its
//     expiry is refreshed ahead (the cache's refresh-ahead) and one that a change notification
//     dropped is reloaded, without waiting for a caller's miss. Failures there are not reported:
//     the cache's own counters and the store's metrics show them.
//   - Stop (the destructor) returns within about a second: waits for the store are cut into
//     one-second slices that check for it.
//
// Thread safety: Start once; done() from any thread. The callbacks run on the prefetcher's
// threads.
#ifndef SECRET_RESOLVER_RESOLVER_SECRET_PREFETCHER_H_
#define SECRET_RESOLVER_RESOLVER_SECRET_PREFETCHER_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "resolver/secret_cache.h"

namespace secret_resolver {

struct PrefetchTarget {
  std::string stack;
  std::string name;
};

struct PrefetchOptions {
  std::vector<PrefetchTarget> secrets;
  // Secrets loaded at once (each waits for one of the cache's fetch threads). At least 1.
  size_t parallelism = 8;
  // How long after it began the load stops waiting for the store: what is not loaded by then
  // counts as failed. (The keep-warm loop gives each secret this long.)
  absl::Duration load_timeout = absl::Seconds(30);
  // How often every secret is warmed again after the load; zero or less: never.
  absl::Duration keep_warm_interval = absl::Seconds(15);
  // Once per secret that failed to load, with its error. May be empty.
  std::function<void(const PrefetchTarget&, const absl::Status&)> on_failure;
  // Once, when every secret was tried. May be empty.
  std::function<void(size_t loaded, size_t failed, absl::Duration took)> on_done;
};

class SecretPrefetcher {
 public:
  // `cache` must outlive the prefetcher.
  SecretPrefetcher(SecretCache* cache, PrefetchOptions options);
  // Stops the load or the keep-warm loop and joins the threads.
  ~SecretPrefetcher();
  SecretPrefetcher(const SecretPrefetcher&) = delete;
  SecretPrefetcher& operator=(const SecretPrefetcher&) = delete;

  // Starts the load, then the keep-warm loop, on threads of its own. Returns at once.
  void Start();

  // True once the load has tried every secret (at once when there are none).
  bool done() const { return done_.load(std::memory_order_acquire); }

 private:
  void Run();
  // Loads secrets_[i] for every i this thread takes; counts into loaded_/failed_.
  void LoadSome();
  // Warm until loaded, failed, `give_up` or stopping, in slices of a second.
  absl::Status WarmOne(const PrefetchTarget& target, absl::Time give_up);
  bool Stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  SecretCache* const cache_;
  const PrefetchOptions options_;
  std::atomic<bool> done_{false};
  std::atomic<size_t> next_{0};
  std::atomic<size_t> loaded_{0};
  std::atomic<size_t> failed_{0};
  std::mutex mu_;
  std::condition_variable wake_;  // notified under mu_ when stopping_ turns true
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_SECRET_PREFETCHER_H_
