// SecretCache: decrypted secrets in memory, in front of a SecretStore (contract.md section 8).
//
// Keyed by (stack, name, version); an entry holds the value, its version and its decrypters.
// The newest version of a secret (Get) and a pinned one (GetVersion) are separate entries. A
// pinned version never changes, so it is not refreshed ahead of expiry, and Invalidate leaves
// it: callers check the newest version first (a deleted secret, a revoked decrypter), as the
// Resolver does.
//   - A fresh entry is served for `ttl`. Once it is within `refresh_ahead` (plus a random
//     jitter of up to `refresh_jitter`, so replicas do not refresh in step) of expiry, the first
//     hit schedules one background refresh and is still served from the cache.
//   - Concurrent misses for one key make one store fetch; every caller waits for it (single
//     flight) and stops waiting at its own deadline (DEADLINE_EXCEEDED). The fetch runs on one
//     of `max_concurrent_fetches` fetch threads, which bounds the store calls in flight; a
//     fetch whose callers have all given up still completes and is cached.
//   - NOT_FOUND is cached for `negative_ttl`. Expired ones are swept out as new ones are cached
//     (amortised), so a stream of unknown names holds about as many entries as are unexpired
//     rather than growing to the byte bound.
//   - When the store cannot answer (UNAVAILABLE or DEADLINE_EXCEEDED) and an entry expired at
//     most `max_stale` ago, that entry is served with outcome kStale. Any other error (DATA_LOSS,
//     FAILED_PRECONDITION, INTERNAL, ...) goes to the caller: it is the store's answer about the
//     secret, and an old value must not paper over, say, a tampered row.
//   - A store that does not answer at all (hung) is treated the same way, without waiting for
//     its own timeout: a caller holding such an entry waits for the refetch only until the
//     refetch is `stale_after` old, or until half its own time to the deadline is used up,
//     whichever is first, and then gets the entry with outcome kStale. The refetch goes on (one
//     per key, single flight) and updates the entry when the store answers.
//   - While the store's change feed is reported down, values older than `unconfirmed_grace`
//     are re-read before use, so a revocation is not hidden by the cache for longer than that.
//   - PERMISSION_DENIED from a caller-scoped store (CacheCaller) drops that caller's entry: the
//     server has revoked it, so the old value must not be served again, stale or not.
//   - Entries are bounded in bytes (`max_bytes`); a stack may hold at most `per_stack_share` of
//     that, so one stack cannot evict the others. Least recently used entries go first.
//   - Evicted, replaced and invalidated values are wiped (SecretBytes) once the last reader
//     holding them lets go; the destructor and Clear() drop everything.
//
// Thread safety: all methods are safe to call concurrently. Store fetches happen on the fetch
// threads (misses, and refresh-ahead unless `refresh_executor` is set), never on the calling
// thread and never under the cache's lock.
#ifndef SECRET_RESOLVER_RESOLVER_SECRET_CACHE_H_
#define SECRET_RESOLVER_RESOLVER_SECRET_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "resolver/cached_value.h"
#include "resolver/clock.h"
#include "resolver/secret_store.h"

namespace secret_resolver {

// How a lookup was answered; used in audit logs and metrics.
enum class CacheOutcome {
  kHit,          // a fresh cached entry
  kMiss,         // fetched from the store (or joined another caller's fetch)
  kNegativeHit,  // a cached NOT_FOUND
  kStale,        // the store could not answer; an expired entry within max_stale was served
};

// "hit", "miss", "negative_hit", "stale".
absl::string_view CacheOutcomeName(CacheOutcome outcome);

struct CacheOptions {
  absl::Duration ttl = absl::Seconds(300);
  absl::Duration refresh_ahead = absl::Seconds(30);
  absl::Duration refresh_jitter = absl::Seconds(15);
  absl::Duration negative_ttl = absl::Seconds(5);
  absl::Duration max_stale = absl::Minutes(15);
  // While the store's change feed is down (SetChangeFeedHealthy(false)), a cached value fetched
  // longer ago than this is re-read from the store before it is used.
  absl::Duration unconfirmed_grace = absl::Seconds(2);
  // How long (real time) a refetch may go unanswered before callers holding an expired entry
  // within max_stale (or an unconfirmed one) are given that entry, flagged stale, instead of
  // waiting for the store. Zero: at once, while the refetch runs in the background.
  absl::Duration stale_after = absl::Milliseconds(250);
  size_t max_bytes = size_t{64} << 20;
  // The fraction of max_bytes one stack may occupy, in (0, 1].
  double per_stack_share = 0.25;

  // Time source. Never null.
  Clock* clock = Clock::Real();
  // Returns a uniformly random number in [0, 1) for refresh jitter. Null: an internal generator.
  std::function<double()> random;
  // Store fetches in flight at once: the number of fetch threads the cache runs. At least 1.
  size_t max_concurrent_fetches = 16;
  // Runs a refresh-ahead task. Null: the cache's fetch threads.
  std::function<void(std::function<void()>)> refresh_executor;
  // Called after every store fetch with its latency and outcome (e.g. for a histogram), on the
  // fetch thread. May be null.
  std::function<void(absl::Duration latency, absl::StatusCode code)> on_store_fetch;
  // Computes CachedValue's fingerprint once per fetched value, outside the cache's lock (an
  // HMAC is too costly for every hit). Null: fingerprints stay empty. One longer than
  // kMaxCachedFingerprintBytes is not kept.
  std::function<std::string(const StoredSecret&)> fingerprint;
};

// Who a lookup is for, when the store's answers depend on it (SecretStore::caller_scoped_reads
// is non-null: the upstream store): the caller's service identity and verified access token.
// Entries are then keyed by (stack, name, identity), each (stack, identity) pair holding its own
// per-stack share, and the fetch a lookup starts presents `token` (later refreshes the newest
// token the store remembers for the identity). With any other store it is ignored.
struct CacheCaller {
  absl::string_view identity;
  absl::string_view token;  // never logged
};

// A lookup's answer. `value` is shared with the cache: it stays valid (and unwiped) for as long
// as the caller holds it, even if the entry is evicted meanwhile.
struct CachedSecret {
  std::shared_ptr<const CachedValue> value;
  CacheOutcome outcome = CacheOutcome::kHit;
};

// Counters for metrics. Monotonic except `bytes` and `entries`.
struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t negative_hits = 0;
  uint64_t stale_serves = 0;
  uint64_t evictions = 0;
  uint64_t store_fetches = 0;
  uint64_t refreshes = 0;
  size_t bytes = 0;
  size_t entries = 0;
};

class SecretCache {
 public:
  // `store` must outlive the cache.
  SecretCache(SecretStore* store, CacheOptions options);
  // Waits for scheduled refreshes to finish, then wipes every entry.
  ~SecretCache();

  SecretCache(const SecretCache&) = delete;
  SecretCache& operator=(const SecretCache&) = delete;

  // Returns the newest version of (stack, name) from the cache or the store, or the entry
  // with outcome kStale when the store could not answer, or did not within `stale_after` (see
  // the file comment). `deadline` is real time (absl::Now()).
  // Errors: NOT_FOUND (possibly cached); the store's error (UNAVAILABLE or DEADLINE_EXCEEDED
  // when no stale value is usable; DATA_LOSS, FAILED_PRECONDITION and the like always);
  // DEADLINE_EXCEEDED when `deadline` passes while waiting for the store and no stale value
  // is usable.
  absl::StatusOr<CachedSecret> Get(absl::string_view stack, absl::string_view name,
                                   absl::Time deadline = absl::InfiniteFuture());

  // Returns version `version` (at least 1) of (stack, name), as Get does for the newest: the
  // same single flight, negative caching, stale-if-error and errors, plus INVALID_ARGUMENT for
  // a version below 1 and NOT_FOUND for a version never written or a deleted secret's.
  absl::StatusOr<CachedSecret> GetVersion(absl::string_view stack, absl::string_view name,
                                          int64_t version,
                                          absl::Time deadline = absl::InfiniteFuture());

  // Get or GetVersion for each of `names` in `stack`, `versions[i]` naming the version of
  // `names[i]` (0: the newest; empty: all newest), with `found[i]` the answer for `names[i]`
  // (`found` and a non-empty `versions` must have a slot per name; a program that gives fewer
  // aborts). Every fetch needed is started before any is waited for, so a call's misses are
  // fetched in parallel and the call waits about as long as its slowest name, not their sum.
  // Versions must be at least 0 (the caller checks them).
  // `caller`: see CacheCaller; may be null.
  void GetAll(absl::string_view stack, absl::Span<const absl::string_view> names,
              absl::Span<const int64_t> versions, absl::Span<absl::StatusOr<CachedSecret>> found,
              absl::Time deadline = absl::InfiniteFuture(), const CacheCaller* caller = nullptr);

  // Get, for a cache's own keeper rather than a caller (SecretPrefetcher): the same fetch,
  // single flight and refresh-ahead, but neither a hit nor a miss is counted in stats(), so the
  // hit ratio stays the callers'. Store fetches are counted as ever.
  absl::StatusOr<CachedSecret> Warm(absl::string_view stack, absl::string_view name,
                                    absl::Time deadline);

  // Get for each of `names` in `stack`, answered from fresh entries alone (a hit or a cached
  // NOT_FOUND, counted as Get counts them, refresh-ahead scheduled as Get schedules it), under
  // one lock: `found[i]` is the answer for `names[i]` (`found` must have a slot per name; a
  // program that gives fewer aborts). Returns false as soon as a name would need a fetch; the
  // names before it were then answered and counted. Never blocks on the store, so it may run
  // on threads that must not.
  bool GetAllIfCached(absl::string_view stack, absl::Span<const absl::string_view> names,
                      absl::Span<absl::StatusOr<CachedSecret>> found);
  // As above, `versions[i]` naming the version of `names[i]` (0: the newest; as many as
  // `names`), as GetVersion.
  bool GetAllIfCached(absl::string_view stack, absl::Span<const absl::string_view> names,
                      absl::Span<const int64_t> versions,
                      absl::Span<absl::StatusOr<CachedSecret>> found,
                      const CacheCaller* caller = nullptr);

  // Drops (and wipes) the entry for the newest version of (stack, name), positive or negative,
  // for every caller identity it is cached for. A fetch in flight for it is not cached when it
  // completes, so no caller sees a value older than the drop.
  void Invalidate(absl::string_view stack, absl::string_view name);

  // Drops every entry, e.g. when change notifications may have been missed.
  void InvalidateAll();

  // Says whether the store's change notifications are known to arrive (the cache starts out
  // assuming they do). While they are not, a cached value older than `unconfirmed_grace` is not
  // trusted: Get re-reads it from the store (single flight, as for a miss; GetAllIfCached
  // answers false), and if the store cannot answer, stale-if-error applies (the old value with
  // outcome kStale, within `max_stale` of its expiry). Cached NOT_FOUNDs are used as before:
  // a revocation never hides in one. Call with true only once the feed is back and whatever it
  // may have missed has been dropped (InvalidateAll).
  void SetChangeFeedHealthy(bool healthy);

  CacheStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_SECRET_CACHE_H_
