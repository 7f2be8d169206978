// JwksSource: where the verifier gets the keys that sign access tokens (docs/contract.md
// section 3): a thread-safe holder of the current key set, kept fresh from somewhere. Two
// implementations: FileJwksSource (file_jwks_source.h, reloaded when the file changes) and
// UrlJwksSource (url_jwks_source.h, fetched over HTTPS on a period and on an unknown `kid`).
// Key rotation needs no restart; a failed load always keeps the previous keys.
//
// Thread safety: implementations are safe to use from any number of threads.
#ifndef SECRET_RESOLVER_SERVER_AUTH_JWKS_SOURCE_H_
#define SECRET_RESOLVER_SERVER_AUTH_JWKS_SOURCE_H_

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
#include "server/auth/verification_key.h"

namespace secret_resolver {
namespace auth {

// Counters and state for metrics and /readyz. Key ids and errors are not secret.
struct JwksSourceStats {
  uint64_t loads = 0;          // documents successfully read or fetched and parsed
  uint64_t load_failures = 0;  // reads or fetches that failed or did not parse
  uint64_t fetches = 0;        // URL fetches started (0 for a file source)
  size_t key_count = 0;        // keys in the current set
  uint64_t skipped_keys = 0;   // unusable keys skipped, summed over the documents loaded
  std::string last_error;      // the most recent failure, empty if the latest load succeeded
};

// Called for each unusable key a loaded document held (the first 16 of a document; the rest are
// only counted in JwksSourceStats::skipped_keys), with the reason: its index and member, never
// key material. For logging. May be called on any thread, with no lock of the source held.
using SkippedKeyHook = std::function<void(absl::string_view reason)>;

// The outcome of one load (read or fetch) of the signing keys.
struct JwksLoad {
  // OK: the new document's usable keys are the current set. Otherwise why it was not loaded
  // (the previous keys stay).
  absl::Status status;
  // Unusable keys the loaded document held; 0 when none was loaded.
  size_t skipped_keys = 0;
  // The key ids of the current set after a load, sorted (key ids are public); empty when none
  // was loaded.
  std::vector<std::string> kids;
};

// Called after every load with its outcome. For health logging and metrics. May be called on
// any thread, with no lock of the source held; loads of one source are serialized, so calls are
// too.
using LoadHook = std::function<void(const JwksLoad& load)>;

class JwksSource {
 public:
  virtual ~JwksSource() = default;

  // Returns the key named `kid`, first reloading if the implementation says one is due (see
  // each implementation for when, and for whether this may block). Returns NOT_FOUND if no
  // current key has that id.
  virtual absl::StatusOr<std::shared_ptr<const VerificationKey>> Lookup(absl::string_view kid) = 0;

  // Whether `key` is the current key under its `kid`, when no periodic reload is due, without
  // loading, blocking on I/O or allocating; nullopt when one is due, and Lookup() must run where
  // blocking is allowed.
  virtual std::optional<bool> IsPublishedWithoutLoading(const VerificationKey& key) = 0;

  // The current key named `kid` when no periodic reload is due, without loading, blocking on
  // I/O or allocating; null when one is due or no current key has that id, and Lookup() must
  // run where blocking is allowed (it may load the key).
  virtual std::shared_ptr<const VerificationKey> FindWithoutLoading(absl::string_view kid) = 0;

  // Reloads now, ignoring the intervals; for SIGHUP and for a refresh timer. Returns the load's
  // error, in which case the previous keys stay in use.
  virtual absl::Status Reload() = 0;

  // The current key set (never null; empty before the first successful load).
  virtual std::shared_ptr<const KeySet> Current() const = 0;
  bool has_keys() const { return Current()->size() > 0; }
  virtual JwksSourceStats stats() const = 0;
};

}  // namespace auth
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_AUTH_JWKS_SOURCE_H_
