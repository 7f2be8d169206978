// The secret cache's single flight, private to SecretCache (resolver/secret_cache.cc): one store
// fetch and the callers waiting for it; and how a caller-scoped key (CacheCaller) keeps the
// caller's identity in the stack part of the key, so that entries of stores whose answers do
// not depend on the caller carry nothing extra.
//
// Thread safety: a Flight's mutable fields are guarded by the cache's lock; the functions are
// pure.
#ifndef SECRET_RESOLVER_RESOLVER_CACHE_FLIGHT_H_
#define SECRET_RESOLVER_RESOLVER_CACHE_FLIGHT_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "resolver/cache_entries.h"
#include "resolver/cached_value.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_cache.h"

namespace secret_resolver {
namespace cache_internal {

// Separates the stack from the caller's identity in the stack part of a caller-scoped key
// (CacheCaller): no stack can contain it (ValidateStack).
inline constexpr char kScopeSeparator = '\0';

// The stack of a key's stack part, and the caller identity (empty when not caller-scoped).
inline absl::string_view PlainStack(absl::string_view key_stack) {
  return key_stack.substr(0, key_stack.find(kScopeSeparator));
}
inline absl::string_view ScopeIdentity(absl::string_view key_stack) {
  const size_t cut = key_stack.find(kScopeSeparator);
  return cut == absl::string_view::npos ? absl::string_view() : key_stack.substr(cut + 1);
}

// One store fetch and the callers waiting for it (single flight).
struct Flight {
  Flight(absl::string_view s, absl::string_view n, int64_t v) : stack(s), name(n), version(v) {}
  KeyView key() const { return KeyView{stack, name, version}; }

  const std::string stack;
  const std::string name;
  const int64_t version;  // 0: the newest
  // For a caller-scoped miss, the token of the caller who started it (CacheCaller::token); set
  // before the fetch is scheduled. Empty: the store uses the newest it remembers (refreshes).
  SecretBytes token;
  // When the fetch was asked for (real time): callers holding an older value wait for it only
  // until stale_after past this, however late they joined.
  const absl::Time started = absl::Now();
  // The rest is guarded by Impl::mu_.
  // Set when Invalidate/InvalidateAll detached this flight from the map: its result still goes
  // to the callers that joined it, but is not cached, and later callers start a new flight.
  bool invalidated = false;
  // Set when a caller had an older value to fall back on: the fetch then runs even if every
  // caller has left (been served stale), since it is what brings the entry up to date.
  bool updates_entry = false;
  bool done = false;
  // When not kOk, the callers' error. Kept as parts, not as an absl::Status, so that each
  // caller gets a Status of its own (see StatusFor).
  absl::StatusCode error_code = absl::StatusCode::kOk;
  std::string error_message;
  std::shared_ptr<const CachedValue> value;  // when status is OK
  CacheOutcome outcome = CacheOutcome::kMiss;
  std::condition_variable cv;  // signalled once `done` is set
};

// Errors are stored as code and message and rebuilt for each caller rather than shared as one
// absl::Status: a shared Status's reference count is released inside the Abseil library, which
// ThreadSanitizer cannot see into here, and payloads are not needed by callers.
inline void SetError(Flight& flight, const absl::Status& status) {
  flight.error_code = status.code();
  flight.error_message = std::string(status.message());
}

}  // namespace cache_internal
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_CACHE_FLIGHT_H_
