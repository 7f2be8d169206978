// JWKS: the public keys that sign access tokens (CONTRACT.md section 3), parsed from a JSON Web
// Key Set (RFC 7517) and kept current from a file or an HTTPS URL.
//
// Why by hand on OpenSSL 3.0 EVP: no Debian package verifies EdDSA JWS with the strictness this
// sidecar needs (libcpp-jwt-dev and libcjose lack Ed25519), so keys are built directly with
// EVP_PKEY_fromdata (RSA, EC P-256) and EVP_PKEY_new_raw_public_key (Ed25519).
//
// Parsing keeps signature keys of three kinds: RSA (`n`, `e`), EC P-256 (`crv`, `x`, `y`) and
// OKP Ed25519 (`x`). It skips, without error, keys of other types or curves, keys whose `use`
// is not `sig`, keys whose `key_ops` lack `verify`, and keys without a `kid` (a token must name
// its key, so such a key could never be chosen). A malformed entry of a supported kind fails the
// whole document with INVALID_ARGUMENT naming the member, e.g. `keys[2].x: invalid base64url`,
// so a half-broken document never replaces a good one.
//
// Thread safety: KeySet and VerificationKey are immutable once built and may be shared across
// threads. JwksSource is safe to use from any number of threads.
#ifndef SECRET_RESOLVER_SERVER_AUTH_JWKS_H_
#define SECRET_RESOLVER_SERVER_AUTH_JWKS_H_

#include <openssl/evp.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/clock.h"

namespace secret_resolver {
namespace auth {

// The kinds of key a token may be signed with; each goes with exactly one JWS `alg`.
enum class KeyType {
  kRsa,      // RS256
  kEcP256,   // ES256
  kEd25519,  // EdDSA
};

// "RSA", "EC P-256" or "Ed25519", for messages.
absl::string_view KeyTypeName(KeyType type);

// One public key from a JWKS. Immutable.
class VerificationKey {
 public:
  struct PkeyDeleter {
    void operator()(EVP_PKEY* pkey) const { EVP_PKEY_free(pkey); }
  };
  using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

  // `alg` is the JWK's own `alg` member, empty when it names none.
  VerificationKey(std::string kid, KeyType type, std::string alg, PkeyPtr pkey);

  const std::string& kid() const { return kid_; }
  KeyType type() const { return type_; }
  // The JWK `alg` member, or empty. When set, a token must use exactly this algorithm.
  const std::string& alg() const { return alg_; }
  // Key size in bits (the RSA modulus size; 256 for P-256 and Ed25519).
  int bits() const { return bits_; }
  // The OpenSSL key. Only EVP verification functions (which do not mutate it) may use it, so
  // one key may verify on many threads at once.
  EVP_PKEY* pkey() const { return pkey_.get(); }

 private:
  std::string kid_;
  KeyType type_;
  std::string alg_;
  int bits_;
  PkeyPtr pkey_;
};

// The usable keys of one JWKS document, by `kid`.
class KeySet {
 public:
  KeySet() = default;

  // The key named `kid`, or null.
  std::shared_ptr<const VerificationKey> Find(absl::string_view kid) const;
  // Whether `key` is the very key this set holds under its `kid`.
  bool Publishes(const VerificationKey& key) const;
  size_t size() const { return keys_.size(); }
  // The key ids, sorted; for diagnostics (key ids are public).
  std::vector<std::string> kids() const;

 private:
  friend absl::StatusOr<KeySet> ParseJwks(absl::string_view json);
  absl::flat_hash_map<std::string, std::shared_ptr<const VerificationKey>> keys_;
};

// Parses a JWKS document. Returns the usable keys (possibly none) on success, or
// INVALID_ARGUMENT naming the first malformed member: not a JSON object, no `keys` array, a
// duplicate `kid`, bad base64url, a wrong-length coordinate, a point not on the curve, an RSA
// modulus over 8192 bits.
absl::StatusOr<KeySet> ParseJwks(absl::string_view json);

// Where a JwksSource reads its document from a file.
struct JwksFileOptions {
  std::string path;
  // Required; not owned; must outlive the source.
  Clock* clock = nullptr;
  // Lookups look at the file (stat: mtime, size, inode, device) at most this often, and read and
  // parse it only when one of those changed.
  absl::Duration check_interval = absl::Seconds(1);
  // A larger file is an error.
  size_t max_document_bytes = 1 << 20;
};

// Where a JwksSource fetches its document over HTTPS (libcurl).
struct JwksUrlOptions {
  // An `https://` URL. Redirects are not followed.
  std::string url;
  // Required; not owned; must outlive the source.
  Clock* clock = nullptr;
  // A lookup refetches once the last successful fetch is this old.
  absl::Duration refresh_interval = absl::Minutes(5);
  // Rate limit: a lookup of an unknown `kid` refetches only if no fetch started within this
  // interval; a failed fetch is retried by lookups no sooner than this.
  absl::Duration min_refetch_interval = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(2);
  // Bound on one whole fetch, connect included.
  absl::Duration fetch_timeout = absl::Seconds(5);
  // A larger response is an error.
  size_t max_document_bytes = 1 << 20;
  // PEM bundle of trusted CAs; empty means the system's default trust store.
  std::string ca_file;
  // Allows `http://` URLs. For tests against a local server only; never set in production.
  bool allow_insecure_http = false;
};

// Counters and state for metrics and /readyz. Key ids and errors are not secret.
struct JwksSourceStats {
  uint64_t loads = 0;          // documents successfully read or fetched and parsed
  uint64_t load_failures = 0;  // reads or fetches that failed or did not parse
  uint64_t fetches = 0;        // URL fetches started (0 for a file source)
  size_t key_count = 0;        // keys in the current set
  std::string last_error;      // the most recent failure, empty if the latest load succeeded
};

// A thread-safe holder of the current key set, kept fresh from a file or a URL.
//
// Loads happen on the calling thread: Lookup() may read the file or, for a URL source, make a
// blocking HTTPS request (bounded by fetch_timeout) when a refresh is due or a `kid` is unknown.
// Callers on latency-sensitive threads should keep Lookup() off gRPC threads, or call
// Reload() periodically from a thread of their own. A failed load always keeps the previous keys.
// Only one load runs at a time; while one runs, other lookups use the current keys, except a
// lookup of an unknown `kid` that is allowed to refetch, which waits for the load in flight.
class JwksSource {
 public:
  // Reads and parses the file once. Returns INVALID_ARGUMENT for bad options or a malformed
  // document, NOT_FOUND if the file does not exist, FAILED_PRECONDITION if it cannot be read.
  static absl::StatusOr<std::unique_ptr<JwksSource>> FromFile(JwksFileOptions options);

  // Validates the options (INVALID_ARGUMENT: no clock, a URL that is not https, or http without
  // allow_insecure_http) and fetches once. A failed first fetch does not fail creation: the
  // source starts empty (has_keys() false, stats().last_error says why) and lookups retry,
  // rate-limited, so the sidecar can start before its issuer is reachable.
  static absl::StatusOr<std::unique_ptr<JwksSource>> FromUrl(JwksUrlOptions options);

  ~JwksSource();
  JwksSource(const JwksSource&) = delete;
  JwksSource& operator=(const JwksSource&) = delete;

  // Returns the key named `kid`. First reloads if one is due: a file source checks the file at
  // most once per check_interval; a URL source refreshes after refresh_interval, and refetches
  // for an unknown `kid` at most once per min_refetch_interval. While another thread loads, a
  // known `kid` is answered from the current keys at once; an unknown one waits for that load.
  // Returns NOT_FOUND if no current key has that id.
  absl::StatusOr<std::shared_ptr<const VerificationKey>> Lookup(absl::string_view kid);

  // Whether `key` is the current key under its `kid`, when no periodic reload is due, without
  // loading or copying anything; nullopt when one is due, and Lookup() must run where blocking
  // is allowed.
  std::optional<bool> IsPublishedWithoutLoading(const VerificationKey& key);

  // Rereads the file (even if it looks unchanged) or refetches the URL now, ignoring the
  // intervals; for SIGHUP and for a refresh timer. Returns the load's error, in which case the
  // previous keys stay in use.
  absl::Status Reload();

  // The current key set (never null; empty before the first successful load).
  std::shared_ptr<const KeySet> Current() const;
  bool has_keys() const { return Current()->size() > 0; }
  JwksSourceStats stats() const;

 private:
  enum class Kind { kFile, kUrl };
  // What a file looked like when last examined; a change in any field means "reread".
  struct FileSignature {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = -1;
    int64_t mtime_ns = 0;
    bool operator==(const FileSignature& o) const {
      return device == o.device && inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
    }
  };

  explicit JwksSource(JwksFileOptions options);
  explicit JwksSource(JwksUrlOptions options);

  Clock* clock() const;
  // Runs a load with load_mu_ held. `force` rereads a file whose signature did not change.
  absl::Status LoadLocked(bool force);
  absl::Status LoadFileLocked(bool force);
  absl::Status FetchUrlLocked();
  // Swaps in a parsed document or records the failure; `ok` tells which.
  void RecordLoad(absl::StatusOr<KeySet> parsed);
  // True if a periodic check or refresh is due at `now`. Needs mu_.
  bool PeriodicLoadDueLocked(absl::Time now) const;

  const Kind kind_;
  const JwksFileOptions file_options_;
  const JwksUrlOptions url_options_;

  // Serializes loads. Taken before mu_, never while holding it.
  std::mutex load_mu_;

  mutable std::mutex mu_;
  std::shared_ptr<const KeySet> keys_;              // guarded by mu_
  JwksSourceStats stats_;                           // guarded by mu_
  absl::Time last_check_ = absl::InfinitePast();    // file: last stat; guarded by mu_
  absl::Time last_attempt_ = absl::InfinitePast();  // url: last fetch start; guarded by mu_
  absl::Time next_refresh_ = absl::InfinitePast();  // url: periodic refresh due; guarded by mu_
  // File: the signature last examined (loaded or rejected). Guarded by load_mu_.
  bool have_signature_ = false;
  FileSignature signature_;
};

}  // namespace auth
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_AUTH_JWKS_H_
