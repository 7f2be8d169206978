#include "resolver/secret_cache.h"

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "resolver/cache_entries.h"
#include "resolver/cache_flight.h"
#include "resolver/thread_pool.h"

// Locking: one std::mutex (not absl::Mutex: tests run under ThreadSanitizer, and the system
// Abseil is not instrumented for it) guards every map, list and counter, the entries
// (CacheEntries, which has no lock of its own) included. Store fetches, the fingerprint
// function, the random source and the refresh executor all run without it, and values that
// leave the cache are released after it is dropped, so their wiping does not lengthen it.

namespace secret_resolver {
namespace {

using cache_internal::CacheEntries;
using cache_internal::Entry;
using cache_internal::Flight;
using cache_internal::KeyView;
using cache_internal::kScopeSeparator;
using cache_internal::PlainStack;
using cache_internal::ScopeIdentity;
using cache_internal::SetError;

// Deadlines further away than this are waited for without a timeout: converting them to a
// std::chrono time point could overflow.
constexpr absl::Duration kLongestTimedWait = absl::Hours(24 * 365);

// The bytes one stack may hold: its share of max_bytes, at least 1.
size_t StackLimit(const CacheOptions& options) {
  double share = options.per_stack_share;
  if (!(share > 0.0) || share > 1.0) share = 1.0;
  return std::max<size_t>(1, static_cast<size_t>(options.max_bytes * share));
}

double InternalRandom() {
  thread_local std::mt19937_64 engine(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

// Whether a store error means the store could not answer (down, or too slow), so that a
// recently expired value may be served stale in its place.
bool IsTransientStoreError(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded;
}

using DecrypterList = std::vector<std::string>;

// Hashes and compares shared decrypter lists by content, and looks them up by a plain list.
struct DecrypterListHash {
  using is_transparent = void;
  size_t operator()(const DecrypterList& list) const { return absl::HashOf(list); }
  size_t operator()(const std::shared_ptr<const DecrypterList>& list) const {
    return absl::HashOf(*list);
  }
};
struct DecrypterListEq {
  using is_transparent = void;
  static const DecrypterList& Of(const DecrypterList& list) { return list; }
  static const DecrypterList& Of(const std::shared_ptr<const DecrypterList>& list) {
    return *list;
  }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return Of(a) == Of(b);
  }
};

}  // namespace

absl::string_view CacheOutcomeName(CacheOutcome outcome) {
  switch (outcome) {
    case CacheOutcome::kHit:
      return "hit";
    case CacheOutcome::kMiss:
      return "miss";
    case CacheOutcome::kNegativeHit:
      return "negative_hit";
    case CacheOutcome::kStale:
      return "stale";
  }
  return "unknown";
}

class SecretCache::Impl {
 public:
  Impl(SecretStore* store, CacheOptions options);
  ~Impl();

  // `counted`: false for SecretCache::Warm, whose lookups are not callers' hits or misses.
  void GetAll(absl::string_view stack, absl::Span<const absl::string_view> names,
              absl::Span<const int64_t> versions,
              absl::Span<absl::StatusOr<CachedSecret>> found, absl::Time deadline,
              bool counted, const CacheCaller* caller);
  bool GetAllIfCached(absl::string_view stack, absl::Span<const absl::string_view> names,
                      absl::Span<const int64_t> versions,
                      absl::Span<absl::StatusOr<CachedSecret>> found, const CacheCaller* caller);
  void Invalidate(absl::string_view stack, absl::string_view name);
  void InvalidateAll();
  void SetChangeFeedHealthy(bool healthy);
  CacheStats stats() const;

 private:
  using Dropped = CacheEntries::Dropped;

  // Fetches from the store for `flight`, caches the result unless the flight was invalidated,
  // and wakes its waiters. Values that leave the cache are released, and this reference to the
  // flight dropped, before a waiter can return: whoever sees the result sees no stale holder.
  void Fetch(std::shared_ptr<Flight> flight);
  // The store's answer for `flight`: through CallerScopedReads::GetFor for a caller-scoped key.
  absl::StatusOr<StoredSecret> ReadStore(const Flight& flight);
  // The stack part of the keys for `caller`'s lookups in `stack`: `stack`, or for a caller-scoped
  // store and an identity, `stack`, kScopeSeparator and the identity, built in `*scoped`.
  absl::string_view KeyStack(absl::string_view stack, const CacheCaller* caller,
                             std::string* scoped) const;
  // Drops the entry and detaches the flight for `key`.
  void InvalidateLocked(const KeyView& key, Dropped& dropped);
  // A fresh entry's answer, or nullopt. When its refresh-ahead is due, sets `*refresh` to the
  // refresh's flight, for ScheduleRefresh once the lock is released.
  std::optional<absl::StatusOr<CachedSecret>> HitLocked(const KeyView& key, absl::Time now,
                                                        std::shared_ptr<Flight>* refresh,
                                                        bool counted = true);
  // Runs a refresh-ahead that HitLocked started; nothing for null. Call without the lock.
  void ScheduleRefresh(std::shared_ptr<Flight> refresh);
  // The body of a fetch task: Fetch(), unless the cache is shutting down. `refresh` marks a
  // refresh-ahead task, which pending_refreshes_ counts.
  void RunFetch(std::shared_ptr<Flight> flight, bool refresh);
  // Marks `flight` done, wakes its waiters and drops this reference, all under the lock.
  // Returns the flight's value when this was the last reference, for the caller to release
  // after unlocking (releasing it may wipe a secret, which is not done under the lock).
  std::shared_ptr<const CachedValue> FinishLocked(std::shared_ptr<Flight> flight);
  // The value to serve stale for `key` if its fetch is slow: an entry's value that expired at
  // most max_stale ago (or has not expired but is unconfirmed), else null.
  std::shared_ptr<const CachedValue> FallbackLocked(const KeyView& key, absl::Time now) const;
  // Waits for `flight` until `deadline` (real time) and returns its result. With a `fallback`,
  // waits only until the flight is stale_after old or `stale_by`, whichever is first, and then
  // returns the fallback with outcome kStale.
  absl::StatusOr<CachedSecret> WaitLocked(std::unique_lock<std::mutex>& lock, Flight& flight,
                                          absl::Time deadline,
                                          const std::shared_ptr<const CachedValue>& fallback,
                                          absl::Time stale_by);
  absl::StatusOr<CachedSecret> ResultLocked(const Flight& flight);
  // Marks `entry` as refreshing and returns the refresh's flight, or null when there is
  // nothing to schedule.
  std::shared_ptr<Flight> StartRefreshLocked(Entry& entry);

  // The shared copy of `list`; lists no value uses any more are dropped now and then.
  std::shared_ptr<const DecrypterList> Intern(DecrypterList list);

  double NextRandom();

  SecretStore* const store_;
  CallerScopedReads* const scoped_;  // store_'s, or null
  const CacheOptions options_;
  Clock* const clock_;
  // The threads that run store fetches: misses always, refresh-ahead unless the options name
  // an executor. Their number bounds the store calls in flight; further fetches queue in order.
  std::unique_ptr<ThreadPool> fetchers_;
  std::function<void(std::function<void()>)> refresh_executor_;

  mutable std::mutex mu_;
  CacheEntries entries_;
  // False while the store's change feed is down: values older than unconfirmed_grace are then
  // re-read before use (HitLocked).
  bool feed_healthy_ = true;
  // The fetches in flight, by the key they fetch (single flight).
  absl::flat_hash_map<KeyView, std::shared_ptr<Flight>> flights_;
  // Per stack, the caller-scoped stack parts cached for it (Invalidate); empty for local stores.
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> scoped_stacks_;
  // Every counter but those CacheEntries keeps (evictions, bytes, entries).
  CacheStats stats_;
  int pending_refreshes_ = 0;  // scheduled and not yet finished
  bool shutting_down_ = false;
  std::condition_variable refreshes_done_;

  std::mutex intern_mu_;  // guards the two below; never held with mu_
  absl::flat_hash_set<std::shared_ptr<const DecrypterList>, DecrypterListHash, DecrypterListEq>
      decrypter_lists_;
  size_t next_intern_sweep_ = 64;
};

SecretCache::Impl::Impl(SecretStore* store, CacheOptions options)
    : store_(store),
      scoped_(store->caller_scoped_reads()),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      entries_(options_.max_bytes, StackLimit(options_)) {
  fetchers_ =
      std::make_unique<ThreadPool>(options_.max_concurrent_fetches, ThreadPool::kUnbounded);
  if (options_.refresh_executor) {
    refresh_executor_ = options_.refresh_executor;
  } else {
    ThreadPool* fetchers = fetchers_.get();
    refresh_executor_ = [fetchers](std::function<void()> task) {
      fetchers->Schedule(std::move(task));
    };
  }
}

SecretCache::Impl::~Impl() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutting_down_ = true;
  }
  // Queued fetches see shutting_down_ and finish without calling the store.
  fetchers_.reset();
  Dropped dropped;
  {
    std::unique_lock<std::mutex> lock(mu_);
    refreshes_done_.wait(lock, [this] { return pending_refreshes_ == 0; });
    entries_.Clear(dropped);
  }
  // `dropped` goes out of scope here, wiping every value no caller still holds.
}

bool SecretCache::Impl::GetAllIfCached(absl::string_view stack,
                                       absl::Span<const absl::string_view> names,
                                       absl::Span<const int64_t> versions,
                                       absl::Span<absl::StatusOr<CachedSecret>> found,
                                       const CacheCaller* caller) {
  if (found.size() < names.size() || (!versions.empty() && versions.size() < names.size())) {
    std::fprintf(stderr, "secret cache: GetAllIfCached given %zu slots for %zu names\n",
                 found.size(), names.size());
    std::abort();
  }
  // A value is released outside the lock (releasing the last reference wipes it): slots that
  // still hold answers are emptied first.
  for (absl::StatusOr<CachedSecret>& slot : found) slot = absl::StatusOr<CachedSecret>();
  const absl::Time now = clock_->Now();
  std::string scoped;
  const absl::string_view key_stack = KeyStack(stack, caller, &scoped);
  absl::InlinedVector<std::shared_ptr<Flight>, 2> refreshes;
  bool all = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < names.size(); ++i) {
      std::shared_ptr<Flight> refresh;
      std::optional<absl::StatusOr<CachedSecret>> hit =
          HitLocked(KeyView{key_stack, names[i], versions.empty() ? 0 : versions[i]}, now,
                    &refresh);
      if (refresh != nullptr) refreshes.push_back(std::move(refresh));
      if (!hit.has_value()) {
        all = false;
        break;
      }
      found[i] = *std::move(hit);
    }
  }
  for (std::shared_ptr<Flight>& refresh : refreshes) ScheduleRefresh(std::move(refresh));
  return all;
}

std::optional<absl::StatusOr<CachedSecret>> SecretCache::Impl::HitLocked(
    const KeyView& key, absl::Time now, std::shared_ptr<Flight>* refresh, bool counted) {
  Entry* found = entries_.Find(key);
  if (found == nullptr || now >= found->expires_at) return std::nullopt;
  // Fetched at expires_at less its lifetime. Read again what was fetched "in the future" (the
  // clock was set back) and, without the change feed, a value past the grace (maybe revoked).
  const absl::Time fetched =
      found->expires_at - (found->value != nullptr ? options_.ttl : options_.negative_ttl);
  if (now < fetched ||
      (!feed_healthy_ && found->value != nullptr && now - fetched > options_.unconfirmed_grace)) {
    return std::nullopt;
  }
  Entry& entry = *found;
  entries_.Touch(entry);
  if (entry.value == nullptr) {
    if (counted) ++stats_.negative_hits;
    return absl::NotFoundError(*entry.not_found_message);
  }
  if (counted) ++stats_.hits;
  if (!entry.refresh_scheduled && now >= entry.refresh_at) *refresh = StartRefreshLocked(entry);
  return CachedSecret{entry.value, CacheOutcome::kHit};
}

void SecretCache::Impl::ScheduleRefresh(std::shared_ptr<Flight> refresh) {
  if (refresh == nullptr) return;
  refresh_executor_([this, refresh = std::move(refresh)]() mutable {
    RunFetch(std::move(refresh), true);
  });
}

void SecretCache::Impl::GetAll(absl::string_view stack, absl::Span<const absl::string_view> names,
                               absl::Span<const int64_t> versions,
                               absl::Span<absl::StatusOr<CachedSecret>> found,
                               absl::Time deadline, bool counted, const CacheCaller* caller) {
  if (found.size() < names.size() || (!versions.empty() && versions.size() < names.size())) {
    std::fprintf(stderr, "secret cache: GetAll given %zu slots and %zu versions for %zu names\n",
                 found.size(), versions.size(), names.size());
    std::abort();
  }
  // Deadlines come from callers (gRPC), so waits are in real time, not clock_ time. A caller
  // holding an older value gives up on the store halfway to its deadline at the latest, so that
  // the stale answer still reaches it in time.
  const absl::Time called = absl::Now();
  const absl::Time stale_by =
      called + std::max(absl::ZeroDuration(), std::min(options_.stale_after,
                                                       (deadline - called) / 2));
  const absl::Time now = clock_->Now();
  std::string scoped;
  const absl::string_view key_stack = KeyStack(stack, caller, &scoped);
  // Declared before the lock: flights and values are released after it (see GetAllIfCached).
  struct Pending {
    std::shared_ptr<Flight> flight;
    std::shared_ptr<const CachedValue> fallback;
  };
  absl::InlinedVector<Pending, 4> pending(names.size());
  absl::InlinedVector<std::shared_ptr<Flight>, 2> refreshes;
  absl::InlinedVector<std::shared_ptr<Flight>, 4> started;
  for (absl::StatusOr<CachedSecret>& slot : found) slot = absl::StatusOr<CachedSecret>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < names.size(); ++i) {
      const KeyView key{key_stack, names[i], versions.empty() ? 0 : versions[i]};
      std::shared_ptr<Flight> refresh;
      std::optional<absl::StatusOr<CachedSecret>> hit = HitLocked(key, now, &refresh, counted);
      if (refresh != nullptr) refreshes.push_back(std::move(refresh));
      if (hit.has_value()) {
        found[i] = *std::move(hit);
        continue;
      }
      // Counted before waiting, so stats().misses includes callers still waiting for a fetch.
      if (counted) ++stats_.misses;
      pending[i].fallback = FallbackLocked(key, now);
      if (auto fit = flights_.find(key); fit != flights_.end()) {
        pending[i].flight = fit->second;  // keeps the flight alive while this caller waits
        continue;
      }
      pending[i].flight = std::make_shared<Flight>(key_stack, names[i], key.version);
      if (!scoped.empty()) pending[i].flight->token = SecretBytes(caller->token);
      flights_.emplace(pending[i].flight->key(), pending[i].flight);
      started.push_back(pending[i].flight);
    }
    for (const Pending& p : pending) {
      if (p.fallback != nullptr) p.flight->updates_entry = true;
    }
  }
  for (std::shared_ptr<Flight>& refresh : refreshes) ScheduleRefresh(std::move(refresh));
  // Every fetch is under way before this caller waits for any, so the names are fetched in
  // parallel, on fetch workers: this caller stops waiting at its deadline; a fetch that has begun
  // completes (a store call cannot be abandoned half way) and is cached for the next caller.
  for (std::shared_ptr<Flight>& flight : started) {
    fetchers_->Schedule([this, flight = std::move(flight)]() mutable {
      RunFetch(std::move(flight), false);
    });
  }
  std::unique_lock<std::mutex> lock(mu_);
  for (size_t i = 0; i < names.size(); ++i) {
    if (pending[i].flight == nullptr) continue;
    found[i] = WaitLocked(lock, *pending[i].flight, deadline, pending[i].fallback, stale_by);
  }
}

std::shared_ptr<const CachedValue> SecretCache::Impl::FallbackLocked(const KeyView& key,
                                                                     absl::Time now) const {
  const Entry* entry = entries_.Find(key);
  if (entry == nullptr || entry->value == nullptr) return nullptr;
  if (now - entry->expires_at > options_.max_stale) return nullptr;
  return entry->value;
}

absl::StatusOr<CachedSecret> SecretCache::Impl::WaitLocked(
    std::unique_lock<std::mutex>& lock, Flight& flight, absl::Time deadline,
    const std::shared_ptr<const CachedValue>& fallback, absl::Time stale_by) {
  auto done = [&flight] { return flight.done; };
  const absl::Time until =
      fallback != nullptr ? std::min({deadline, stale_by, flight.started + options_.stale_after})
                          : deadline;
  const absl::Duration left = until - absl::Now();
  if (left > kLongestTimedWait) {
    flight.cv.wait(lock, done);
  } else if (left <= absl::ZeroDuration() ||
             !flight.cv.wait_until(lock, absl::ToChronoTime(until), done)) {
    if (!flight.done && fallback != nullptr) {
      // The store is slow to answer: the older value now, the fetch goes on and updates the
      // entry when it answers.
      ++stats_.stale_serves;
      return CachedSecret{fallback, CacheOutcome::kStale};
    }
    if (!flight.done) {
      return absl::DeadlineExceededError(absl::StrCat(
          "deadline passed while waiting for the store to return secret \"", flight.name,
          "\" of stack \"", PlainStack(flight.stack), "\""));
    }
  }
  return ResultLocked(flight);
}

absl::StatusOr<CachedSecret> SecretCache::Impl::ResultLocked(const Flight& flight) {
  if (flight.error_code != absl::StatusCode::kOk) {
    return absl::Status(flight.error_code, flight.error_message);
  }
  if (flight.outcome == CacheOutcome::kStale) ++stats_.stale_serves;
  return CachedSecret{flight.value, flight.outcome};
}

std::shared_ptr<Flight> SecretCache::Impl::StartRefreshLocked(Entry& entry) {
  entry.refresh_scheduled = true;
  if (shutting_down_ || flights_.contains(entry.key())) return nullptr;
  auto flight = std::make_shared<Flight>(entry.stack(), entry.name, entry.version);
  flights_.emplace(flight->key(), flight);
  ++pending_refreshes_;
  ++stats_.refreshes;
  return flight;
}

void SecretCache::Impl::RunFetch(std::shared_ptr<Flight> flight, bool refresh) {
  std::shared_ptr<const CachedValue> released;  // after the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A miss whose callers have all given up (only the map and this task hold the flight) is
    // not fetched: under a slow store such fetches would pile up and add to its load. Waiters
    // join under this lock, so the count cannot be too low. A refetch of a value served stale
    // meanwhile runs regardless (at most one per cached key).
    const bool abandoned = !refresh && !flight->updates_entry && !flight->invalidated &&
                           flight.use_count() <= 2;
    if (shutting_down_ || abandoned) {
      if (!flight->invalidated) flights_.erase(flight->key());
      flight->error_code = absl::StatusCode::kCancelled;
      flight->error_message = shutting_down_ ? "the secret cache is shutting down"
                                             : "every caller gave up before the fetch began";
      released = FinishLocked(std::move(flight));
    }
  }
  if (flight != nullptr) Fetch(std::move(flight));
  if (!refresh) return;
  std::lock_guard<std::mutex> lock(mu_);
  // Notified under the lock: once pending_refreshes_ reaches 0 the destructor may proceed and
  // destroy the condition variable.
  if (--pending_refreshes_ == 0) refreshes_done_.notify_all();
}

std::shared_ptr<const CachedValue> SecretCache::Impl::FinishLocked(
    std::shared_ptr<Flight> flight) {
  flight->done = true;
  flight->cv.notify_all();
  // Every waiter holds a reference of its own, so the flight outlives this one unless nobody
  // waits (all gave up); it then goes here, and its value to the caller.
  std::shared_ptr<const CachedValue> value;
  if (flight.use_count() == 1) value = std::move(flight->value);
  flight.reset();
  return value;
}

absl::string_view SecretCache::Impl::KeyStack(absl::string_view stack, const CacheCaller* caller,
                                              std::string* scoped) const {
  if (scoped_ == nullptr || caller == nullptr || caller->identity.empty()) return stack;
  *scoped = absl::StrCat(stack, absl::string_view(&kScopeSeparator, 1), caller->identity);
  return *scoped;
}

absl::StatusOr<StoredSecret> SecretCache::Impl::ReadStore(const Flight& flight) {
  const absl::string_view identity = ScopeIdentity(flight.stack);
  const absl::string_view stack = PlainStack(flight.stack);
  if (flight.version != 0) return store_->GetVersion(stack, flight.name, flight.version);
  if (identity.empty()) return store_->Get(stack, flight.name);
  return scoped_->GetFor(identity, flight.token.reveal(), stack, flight.name);
}

void SecretCache::Impl::Fetch(std::shared_ptr<Flight> flight) {
  const absl::Time started = absl::Now();
  absl::StatusOr<StoredSecret> fetched = ReadStore(*flight);
  flight->token = SecretBytes();
  if (options_.on_store_fetch) {
    options_.on_store_fetch(absl::Now() - started, fetched.status().code());
  }

  // Everything derived from the value is computed before taking the lock.
  std::shared_ptr<const CachedValue> value;
  double jitter = 0.0;
  if (fetched.ok()) {
    auto built = std::make_shared<CachedValue>();
    if (options_.fingerprint) {
      const std::string fingerprint = options_.fingerprint(*fetched);
      if (fingerprint.size() <= built->fingerprint_bytes.size()) {
        std::copy(fingerprint.begin(), fingerprint.end(), built->fingerprint_bytes.begin());
        built->fingerprint_size = static_cast<uint8_t>(fingerprint.size());
      }
    }
    built->version = fetched->version;
    built->value = std::move(fetched->value);
    built->decrypters = Intern(std::move(fetched->decrypters));
    value = std::move(built);
    if (options_.refresh_jitter > absl::ZeroDuration()) jitter = NextRandom();
  }
  const absl::Time now = clock_->Now();

  Dropped dropped;  // released after the lock, which wipes values no caller holds
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.store_fetches;
    const bool cacheable = !flight->invalidated;
    if (cacheable) flights_.erase(flight->key());
    if (cacheable && !ScopeIdentity(flight->stack).empty()) {
      scoped_stacks_[PlainStack(flight->stack)].insert(flight->stack);
    }

    if (value != nullptr) {
      flight->value = value;
      flight->outcome = CacheOutcome::kMiss;
      if (cacheable && options_.ttl > absl::ZeroDuration()) {
        auto entry = std::make_unique<Entry>(flight->name, flight->version);
        entry->value = std::move(value);
        entry->expires_at = now + options_.ttl;
        const absl::Duration ahead = options_.refresh_ahead + options_.refresh_jitter * jitter;
        // A pinned version never changes: nothing to refresh ahead of time.
        if (ahead > absl::ZeroDuration() && flight->version == 0) {
          entry->refresh_at = std::max(now, entry->expires_at - ahead);
        }
        entries_.Insert(flight->stack, std::move(entry), now, dropped);
      }
    } else if (absl::IsNotFound(fetched.status())) {
      SetError(*flight, fetched.status());
      if (cacheable) {
        if (options_.negative_ttl > absl::ZeroDuration()) {
          auto entry = std::make_unique<Entry>(flight->name, flight->version);
          entry->not_found_message =
              std::make_unique<const std::string>(fetched.status().message());
          entry->expires_at = now + options_.negative_ttl;
          entries_.Insert(flight->stack, std::move(entry), now, dropped);
        } else if (Entry* old = entries_.Find(flight->key()); old != nullptr) {
          // The secret is gone: do not keep serving its old value.
          entries_.Remove(old, dropped);
        }
      }
    } else if (absl::IsPermissionDenied(fetched.status())) {
      // A caller-scoped store's refusal (revoked for this caller): the caller's old value goes.
      SetError(*flight, fetched.status());
      if (Entry* old = cacheable ? entries_.Find(flight->key()) : nullptr; old != nullptr) {
        entries_.Remove(old, dropped);
      }
    } else {
      // The store failed. When it could not answer, a recently expired value beats an error
      // (stale-if-error); the entry stays as it is, so the next lookup asks the store again.
      // Any other error (DATA_LOSS: a tampered row; FAILED_PRECONDITION: a missing key; ...) is
      // the store's answer about the secret, and goes to the caller.
      const Entry* old = cacheable && IsTransientStoreError(fetched.status().code())
                             ? entries_.Find(flight->key())
                             : nullptr;
      if (old != nullptr && old->value != nullptr && now - old->expires_at <= options_.max_stale) {
        flight->value = old->value;
        flight->outcome = CacheOutcome::kStale;
      } else {
        SetError(*flight, fetched.status());
      }
    }
  }
  dropped.clear();  // wipes values no caller holds, outside the lock
  std::shared_ptr<const CachedValue> released;
  {
    std::lock_guard<std::mutex> lock(mu_);
    released = FinishLocked(std::move(flight));
  }
}

void SecretCache::Impl::InvalidateLocked(const KeyView& key, Dropped& dropped) {
  if (Entry* entry = entries_.Find(key); entry != nullptr) entries_.Remove(entry, dropped);
  if (auto fit = flights_.find(key); fit != flights_.end()) {
    fit->second->invalidated = true;
    flights_.erase(fit);
  }
}

void SecretCache::Impl::Invalidate(absl::string_view stack, absl::string_view name) {
  Dropped dropped;
  std::lock_guard<std::mutex> lock(mu_);
  InvalidateLocked(KeyView{stack, name}, dropped);
  if (auto it = scoped_stacks_.find(stack); it != scoped_stacks_.end()) {
    for (const std::string& key_stack : it->second) {
      InvalidateLocked(KeyView{key_stack, name}, dropped);
    }
  }
}

void SecretCache::Impl::InvalidateAll() {
  Dropped dropped;
  std::lock_guard<std::mutex> lock(mu_);
  entries_.Clear(dropped);
  for (auto& [key, flight] : flights_) flight->invalidated = true;
  flights_.clear();
  scoped_stacks_.clear();
}

void SecretCache::Impl::SetChangeFeedHealthy(bool healthy) {
  std::lock_guard<std::mutex> lock(mu_);
  feed_healthy_ = healthy;
}

CacheStats SecretCache::Impl::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  CacheStats out = stats_;
  out.evictions = entries_.evictions();
  out.bytes = entries_.bytes();
  out.entries = entries_.size();
  return out;
}

std::shared_ptr<const DecrypterList> SecretCache::Impl::Intern(DecrypterList list) {
  std::lock_guard<std::mutex> lock(intern_mu_);
  if (auto it = decrypter_lists_.find(list); it != decrypter_lists_.end()) return *it;
  if (decrypter_lists_.size() >= next_intern_sweep_) {
    absl::erase_if(decrypter_lists_, [](const std::shared_ptr<const DecrypterList>& shared) {
      return shared.use_count() == 1;
    });
    next_intern_sweep_ = std::max<size_t>(64, 2 * decrypter_lists_.size());
  }
  auto shared = std::make_shared<const DecrypterList>(std::move(list));
  decrypter_lists_.insert(shared);
  return shared;
}

double SecretCache::Impl::NextRandom() {
  double r = options_.random ? options_.random() : InternalRandom();
  if (!(r >= 0.0)) return 0.0;  // also NaN
  return std::min(r, 1.0);
}

SecretCache::SecretCache(SecretStore* store, CacheOptions options)
    : impl_(std::make_unique<Impl>(store, std::move(options))) {}

SecretCache::~SecretCache() = default;

absl::StatusOr<CachedSecret> SecretCache::Get(absl::string_view stack, absl::string_view name,
                                              absl::Time deadline) {
  absl::StatusOr<CachedSecret> found;
  impl_->GetAll(stack, absl::MakeConstSpan(&name, 1), {}, absl::MakeSpan(&found, 1), deadline,
                /*counted=*/true, nullptr);
  return found;
}

absl::StatusOr<CachedSecret> SecretCache::GetVersion(absl::string_view stack,
                                                     absl::string_view name, int64_t version,
                                                     absl::Time deadline) {
  if (version < 1) {
    return absl::InvalidArgumentError(absl::StrCat("version: must be at least 1, got ", version));
  }
  absl::StatusOr<CachedSecret> found;
  impl_->GetAll(stack, absl::MakeConstSpan(&name, 1), absl::MakeConstSpan(&version, 1),
                absl::MakeSpan(&found, 1), deadline, /*counted=*/true, nullptr);
  return found;
}

void SecretCache::GetAll(absl::string_view stack, absl::Span<const absl::string_view> names,
                         absl::Span<const int64_t> versions,
                         absl::Span<absl::StatusOr<CachedSecret>> found, absl::Time deadline,
                         const CacheCaller* caller) {
  impl_->GetAll(stack, names, versions, found, deadline, /*counted=*/true, caller);
}

absl::StatusOr<CachedSecret> SecretCache::Warm(absl::string_view stack, absl::string_view name,
                                               absl::Time deadline) {
  absl::StatusOr<CachedSecret> found;
  impl_->GetAll(stack, absl::MakeConstSpan(&name, 1), {}, absl::MakeSpan(&found, 1), deadline,
                /*counted=*/false, nullptr);
  return found;
}

bool SecretCache::GetAllIfCached(absl::string_view stack, absl::Span<const absl::string_view> names,
                                 absl::Span<absl::StatusOr<CachedSecret>> found) {
  return impl_->GetAllIfCached(stack, names, {}, found, nullptr);
}

bool SecretCache::GetAllIfCached(absl::string_view stack, absl::Span<const absl::string_view> names,
                                 absl::Span<const int64_t> versions,
                                 absl::Span<absl::StatusOr<CachedSecret>> found,
                                 const CacheCaller* caller) {
  return impl_->GetAllIfCached(stack, names, versions, found, caller);
}

void SecretCache::Invalidate(absl::string_view stack, absl::string_view name) {
  impl_->Invalidate(stack, name);
}

void SecretCache::InvalidateAll() { impl_->InvalidateAll(); }

void SecretCache::SetChangeFeedHealthy(bool healthy) { impl_->SetChangeFeedHealthy(healthy); }

CacheStats SecretCache::stats() const { return impl_->stats(); }

}  // namespace secret_resolver
