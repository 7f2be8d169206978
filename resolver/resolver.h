// Resolver: one ResolveSecrets request, or one of Grafana's DecryptSecureValues requests, end to
// end, without gRPC (contract.md sections 1-4); and CheckReferences, ResolveSecrets' checks
// without any value.
//
// For a verified caller and a request it checks the request's shape (whole-call errors; none
// under Grafana's rules, where every outcome is per name), then for each ref key: parses the `secret://` URI, checks the decrypt permission, fetches the
// secret through the cache (two keys naming one secret cost one fetch), applies the decrypter
// check (on every resolution, cache hits included) and attaches what the redaction tokens are
// made from (RefResult::tokens and the fingerprint's digest). A ref pinned to a version
// (ResolveRequest::versions) is judged on the newest version (existence, decrypter check) and
// then answered with the pinned one, fetched through the cache under (stack, name, version).
//
// Thread safety: Resolve() may be called concurrently. It blocks on store I/O on cache misses,
// so it must not run on a gRPC thread (ResolveWithoutBlocking may).
#ifndef SECRET_RESOLVER_RESOLVER_RESOLVER_H_
#define SECRET_RESOLVER_RESOLVER_RESOLVER_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "resolver/access_policy.h"
#include "resolver/redaction.h"
#include "resolver/secret_cache.h"
#include "resolver/secret_store.h"

namespace secret_resolver {

inline constexpr size_t kDefaultMaxRefs = 128;

// Which API's rules a request follows (contract.md section 2).
enum class RequestRules {
  // ResolveSecrets: a bad stack, no refs, more than max_refs, a malformed or repeated ref key, a
  // caller who may not act for the stack or holds no decrypt permission are whole-call errors.
  kResolveSecrets,
  // Grafana's DecryptSecureValues: nothing is a whole-call error. Each ref key is a secure value
  // name (any string; keys must be distinct) and its URI `secret://` + name. A caller who may
  // not act for the stack, has no service identity or holds no decrypt permission gets
  // PERMISSION_DENIED ("not authorized") for every name, judged before any lookup and before
  // the names' shape; a stack that cannot exist gets
  // NOT_FOUND for every name; a value that is not valid UTF-8 (the API carries values as proto3
  // strings) gets OUT_OF_RANGE (the sidecar's own refusal, not a backend failure).
  kGrafanaDecrypt,
};

// The request, as views of the caller's strings (which must outlive the Resolve call): the
// stack, and (ref key, `secret://` URI) pairs in any order. A key given twice is a whole-call
// error.
struct ResolveRequest {
  using Ref = std::pair<absl::string_view, absl::string_view>;
  // (ref key, version): the version that key must resolve to.
  using Pin = std::pair<absl::string_view, int64_t>;
  absl::string_view stack;
  absl::InlinedVector<Ref, 8> refs;
  // Under kResolveSecrets only, in any order; each key must be a key of `refs`, given once, and
  // each version at least 1 (whole-call INVALID_ARGUMENT otherwise).
  std::vector<Pin> versions;
  RequestRules rules = RequestRules::kResolveSecrets;
  // The caller's verified access token, for a store whose answers depend on the caller
  // (SecretStore::caller_scoped_reads: the upstream store forwards it); may be empty otherwise.
  // Never logged.
  absl::string_view credential;
};

// The outcome for one ref key.
struct RefResult {
  // The ref key, and the secret name when the URI parsed: views of the request's strings.
  absl::string_view key;
  absl::string_view name;
  // OK, or the per-reference error: INVALID_ARGUMENT (malformed URI, with its position),
  // NOT_FOUND, PERMISSION_DENIED ("not authorized"), UNAVAILABLE, DATA_LOSS; under Grafana's
  // rules also OUT_OF_RANGE (a value that is not valid UTF-8).
  absl::Status status;
  // How the cache answered, when the cache was consulted.
  std::optional<CacheOutcome> cache_outcome;
  // Check only: the secret's current version when `status` is OK.
  int64_t checked_version = 0;
  // Set when `status` is OK: the secret (shared with the cache, value wiped when released),
  // whether it is stale, the resolver's redaction tokens and the fingerprint's raw digest.
  std::shared_ptr<const CachedValue> value;
  bool stale = false;
  // The ref was pinned to a version older than the newest.
  bool superseded = false;
  const RedactionTokens* tokens = nullptr;
  // The fingerprint's digest, kept inline (std::string would allocate for 16 bytes): the first
  // `fingerprint_digest_size` bytes; none if OpenSSL failed.
  std::array<char, kFingerprintDigestBytes> fingerprint_digest_bytes{};
  size_t fingerprint_digest_size = 0;

  absl::string_view fingerprint_digest() const {
    return absl::string_view(fingerprint_digest_bytes.data(), fingerprint_digest_size);
  }

  // The redaction tokens as text, empty unless `status` is OK. (A caller that writes them into
  // a buffer of its own uses `tokens` and fingerprint_digest(), as the response encoder does.)
  std::string placeholder() const {
    return tokens == nullptr ? std::string() : tokens->Placeholder(key, name);
  }
  std::string fingerprint() const {
    return RedactionTokens::FormatFingerprint(fingerprint_digest());
  }
};

// One result per ref key of the request, in key order. The results view the request's
// strings, which must outlive them.
using ResolveResults = std::vector<RefResult>;

struct ResolverOptions {
  size_t max_refs = kDefaultMaxRefs;
  AccessPolicyOptions access;
  // Where Check reads metadata; not owned, must outlive the resolver. Null: Check answers
  // FAILED_PRECONDITION. When its answers depend on the caller (caller_scoped_reads), lookups
  // are keyed by the caller's identity and carry ResolveRequest::credential, which the store
  // also remembers for refreshes when the token speaks for the request's stack.
  SecretStore* store = nullptr;
};

class Resolver {
 public:
  // `cache` and `tokens` must outlive the resolver, and `tokens` the results too (they point
  // at it). Give the cache FingerprintFunction(tokens) so that fingerprints are computed once
  // per cached version; without it (or with a function whose digests are longer than
  // kFingerprintDigestBytes) they are computed on every resolution.
  Resolver(SecretCache* cache, const RedactionTokens* tokens, ResolverOptions options);

  // Resolves `request` for `caller`. Whole-call errors, under RequestRules::kResolveSecrets
  // only:
  //   INVALID_ARGUMENT: empty or malformed stack, no refs, more than max_refs, a malformed ref
  //     key (the message names it by index and position, since the key itself may be garbage),
  //     a key given twice;
  //   PERMISSION_DENIED: the caller does not speak for the stack, or holds no decrypt
  //     permission at all.
  // Otherwise returns one RefResult per ref key, in key order. `deadline` bounds waits on the
  // cache.
  absl::StatusOr<ResolveResults> Resolve(const Caller& caller, const ResolveRequest& request,
                                         absl::Time deadline = absl::InfiniteFuture()) const;

  // Resolve, if every reference the caller may read is answered by the cache alone
  // (SecretCache::GetAllIfCached); nullopt otherwise, and then Resolve must run where blocking on
  // the store is allowed. Never blocks. A call that returns nullopt after some hits has counted
  // those hits, which Resolve then counts again.
  std::optional<absl::StatusOr<ResolveResults>> ResolveWithoutBlocking(
      const Caller& caller, const ResolveRequest& request) const;

  // CheckReferences: Resolve's whole-call errors and per-reference outcomes for `request`
  // (whose rules must be kResolveSecrets and which pins nothing), judged on the store's metadata
  // (SecretStore::GetMetadata) without reading, decrypting or caching any value: per ref key,
  // OK with RefResult::checked_version, or the error Resolve would give (INVALID_ARGUMENT,
  // NOT_FOUND, PERMISSION_DENIED "not authorized", the store's errors). `value` and `tokens`
  // stay null. Blocks on the store, but not past `deadline`: references not yet checked when it
  // passes get DEADLINE_EXCEEDED, and after the store's first UNAVAILABLE or DEADLINE_EXCEEDED
  // the remaining references get that error without asking the store again.
  // FAILED_PRECONDITION when no store was given.
  absl::StatusOr<ResolveResults> Check(const Caller& caller, const ResolveRequest& request,
                                       absl::Time deadline = absl::InfiniteFuture()) const;

  // A CacheOptions::fingerprint that computes `tokens`' fingerprint digest (RedactionTokens::
  // FingerprintDigest, formatted later by RedactionTokens::WriteFingerprint). `tokens` must
  // outlive it.
  static std::function<std::string(const StoredSecret&)> FingerprintFunction(
      const RedactionTokens* tokens);

 private:
  // Looks up distinct secret names of one stack: an answer per name into `found` (as many as
  // `names`), or false to give up on the whole call. `versions` is empty (every name's newest
  // version) or as many as `names` (0: the newest; else that version).
  using Lookup = std::function<bool(
      absl::string_view stack, absl::Span<const absl::string_view> names,
      absl::Span<const int64_t> versions, absl::Span<absl::StatusOr<CachedSecret>> found)>;
  // The whole-call checks of kResolveSecrets, on `refs` (the request's, sorted by key).
  absl::Status CheckWholeCall(const Caller& caller, const ResolveRequest& request,
                              absl::Span<const ResolveRequest::Ref> refs) const;
  // For each result of `refs` (sorted by key; `results` as many): its key, and its name once
  // the URI parses and the per-name permission holds (otherwise its error). Returns the results
  // that got that far, by name, as (name, result) pairs sorted by name.
  using Wanted = absl::InlinedVector<std::pair<absl::string_view, RefResult*>, 8>;
  Wanted ParseEach(const Caller& caller, absl::Span<const ResolveRequest::Ref> refs,
                   ResolveResults& results) const;
  // Replaces the values of the results in `wanted` that `request` pins to an older version (or
  // to a newer one than a stale newest) by that version's (a second lookup); errors per
  // reference. False when `lookup` gave up.
  bool ApplyPins(const ResolveRequest& request, absl::string_view stack, const Wanted& wanted,
                 const Lookup& lookup) const;
  std::optional<absl::StatusOr<ResolveResults>> ResolveWith(const Caller& caller,
                                                            const ResolveRequest& request,
                                                            const Lookup& lookup) const;
  // Who the cache's lookups for `request` are for (CacheCaller); remembers the credential
  // with a caller-scoped store (see ResolverOptions::store).
  CacheCaller LookupCaller(const Caller& caller, const ResolveRequest& request) const;
  // ResolveWith under RequestRules::kGrafanaDecrypt.
  std::optional<absl::StatusOr<ResolveResults>> DecryptWith(const Caller& caller,
                                                            const ResolveRequest& request,
                                                            const Lookup& lookup) const;
  // The per-reference work both rules share, for `refs` sorted by key and `results` as many:
  // parses each URI, checks the per-name permission, looks each distinct name up once,
  // completes the results and applies the request's pins. False when `lookup` gave up.
  bool ResolveEach(const Caller& caller, const ResolveRequest& request,
                   absl::Span<const ResolveRequest::Ref> refs, const Lookup& lookup,
                   ResolveResults& results) const;
  // Fills `result` (its key and name set) from the lookup of its name: the per-reference
  // error, or the decrypter check, value and redaction tokens. `last_use`: no other result
  // will read `found`, which may then give up its value.
  void Complete(const Caller& caller, absl::string_view stack,
                absl::StatusOr<CachedSecret>& found, bool last_use, RefResult& result) const;
  // Sets `result`'s value, staleness and fingerprint from `found`, which holds a value.
  void SetValue(absl::string_view stack, CachedSecret& found, bool last_use,
                RefResult& result) const;

  SecretCache* cache_;
  const RedactionTokens* tokens_;
  ResolverOptions options_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_RESOLVER_H_
