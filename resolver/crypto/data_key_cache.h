// DataKeyCache: unwrapped data keys of one store, so that reading a secret (a cache miss of the
// sidecar) does not unwrap its stack's data key every time (contract.md section 6; issue 20).
//
// An entry is keyed by (stack, data key id) and remembers the KEK id and wrapped bytes it was
// unwrapped from: it answers only a request carrying exactly those (a key rewrapped by another
// process, or replaced, is unwrapped again and replaces the entry), so a hit returns exactly what
// UnwrapDataKey would. Failed unwraps are not cached. Keys live in SecretBytes, so they are wiped
// whenever an entry goes: evicted (least recently used first, beyond `capacity` entries),
// replaced, dropped by Clear() (the store calls it when it rewraps data keys under another KEK)
// and when the cache is destroyed with its store.
//
// Thread safety: safe to use from any number of threads (one mutex, never held while unwrapping).
#ifndef SECRET_RESOLVER_RESOLVER_CRYPTO_DATA_KEY_CACHE_H_
#define SECRET_RESOLVER_RESOLVER_CRYPTO_DATA_KEY_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "resolver/crypto/envelope.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/secret_bytes.h"

namespace secret_resolver {

// Data keys a store keeps unwrapped by default: one per stack in use (plus the ones a data-key
// rotation leaves behind), 32 bytes each.
inline constexpr size_t kDefaultDataKeyCacheCapacity = 1024;

class DataKeyCache {
 public:
  // `key_ring` is not owned and must outlive the cache. `capacity` 0 keeps nothing: every call
  // unwraps.
  DataKeyCache(const KeyRing* key_ring, size_t capacity);
  DataKeyCache(const DataKeyCache&) = delete;
  DataKeyCache& operator=(const DataKeyCache&) = delete;

  // The data key `wrapped` holds for (stack, data_key_id): a copy of the cached one, or
  // UnwrapDataKey's result (then cached). Errors: as UnwrapDataKey (FAILED_PRECONDITION naming
  // the KEK id, DATA_LOSS); nothing is cached then.
  absl::StatusOr<SecretBytes> Unwrap(const WrappedDataKey& wrapped, absl::string_view stack,
                                     absl::string_view data_key_id);

  // Drops (and so wipes) every entry.
  void Clear();

  // Entries held now.
  size_t size() const;
  // Unwraps done (calls the cache could not answer), for tests and benchmarks.
  uint64_t unwraps() const;

 private:
  struct Entry {
    std::string map_key;
    std::string kek_id;
    std::string wrapped;
    SecretBytes data_key;
  };
  using Lru = std::list<Entry>;  // most recently used first

  const KeyRing* const key_ring_;
  const size_t capacity_;

  mutable std::mutex mu_;
  Lru lru_;                                                // guarded by mu_
  absl::flat_hash_map<std::string, Lru::iterator> index_;  // map_key -> entry; guarded by mu_
  uint64_t unwraps_ = 0;                                   // guarded by mu_
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_CRYPTO_DATA_KEY_CACHE_H_
