#include "resolver/secret_prefetcher.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/time/clock.h"

namespace secret_resolver {
namespace {

// The longest one wait for the store lasts before the prefetcher checks whether it must stop.
constexpr absl::Duration kWaitSlice = absl::Seconds(1);

}  // namespace

SecretPrefetcher::SecretPrefetcher(SecretCache* cache, PrefetchOptions options)
    : cache_(cache), options_(std::move(options)) {}

SecretPrefetcher::~SecretPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    wake_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void SecretPrefetcher::Start() {
  thread_ = std::thread([this] { Run(); });
}

absl::Status SecretPrefetcher::WarmOne(const PrefetchTarget& target, absl::Time give_up) {
  for (;;) {
    const absl::Time deadline = std::min(give_up, absl::Now() + kWaitSlice);
    absl::StatusOr<CachedSecret> warmed = cache_->Warm(target.stack, target.name, deadline);
    if (warmed.ok()) return absl::OkStatus();
    // The fetch goes on when a wait ends; the next Warm joins it (single flight).
    if (warmed.status().code() != absl::StatusCode::kDeadlineExceeded ||
        absl::Now() >= give_up || Stopping()) {
      return warmed.status();
    }
  }
}

void SecretPrefetcher::LoadSome() {
  const absl::Time give_up = absl::Now() + options_.load_timeout;
  for (size_t i = next_.fetch_add(1); i < options_.secrets.size(); i = next_.fetch_add(1)) {
    if (Stopping()) return;
    const PrefetchTarget& target = options_.secrets[i];
    const absl::Status status = WarmOne(target, give_up);
    if (status.ok()) {
      loaded_.fetch_add(1);
      continue;
    }
    failed_.fetch_add(1);
    if (options_.on_failure && !Stopping()) options_.on_failure(target, status);
  }
}

void SecretPrefetcher::Run() {
  const absl::Time start = absl::Now();
  const size_t threads =
      std::min(std::max<size_t>(1, options_.parallelism), options_.secrets.size());
  std::vector<std::thread> loaders;
  for (size_t i = 1; i < threads; ++i) loaders.emplace_back([this] { LoadSome(); });
  LoadSome();
  for (std::thread& loader : loaders) loader.join();
  if (Stopping()) return;
  done_.store(true, std::memory_order_release);
  if (options_.on_done) options_.on_done(loaded_.load(), failed_.load(), absl::Now() - start);

  if (options_.keep_warm_interval <= absl::ZeroDuration() || options_.secrets.empty()) return;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (wake_.wait_for(lock, absl::ToChronoNanoseconds(options_.keep_warm_interval),
                         [this] { return stopping_; })) {
        return;
      }
    }
    for (const PrefetchTarget& target : options_.secrets) {
      if (Stopping()) return;
      WarmOne(target, absl::Now() + options_.load_timeout).IgnoreError();
    }
  }
}

}  // namespace secret_resolver
