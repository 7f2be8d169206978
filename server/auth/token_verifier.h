// Access-token verification (docs/contract.md sections 2 and 3): turns the token a caller sends
// into a verified Caller, or UNAUTHENTICATED with a short reason code.
//
// Tokens are Grafana authlib access tokens: JWS compact serialization (RFC 7515) of a JWT
// (RFC 7519) with header `typ: at+jwt` (RFC 9068), signed ES256, RS256 or EdDSA (Ed25519) by a
// key from a JWKS. The verifier composes the parts: the token's size; the verified-token cache
// (token_cache.h); then, for a token not cached, splitting and header checks (jws.h; a header
// that passed before is answered from a small map of such headers), the key
// from a JwksSource (jwks_source.h), the key's fit and the signature (jws_signature.h), and the
// claims (claims_validator.h).
//
// A cache hit skips the signature but re-checks the time claims against the clock and that the
// signing key is still published (a key removed or replaced in the JWKS revokes the cached
// tokens it signed).
//
// No message this file produces contains a token or any part of one.
//
// Thread safety: TokenVerifier is safe to use from any number of threads.
#ifndef SECRET_RESOLVER_SERVER_AUTH_TOKEN_VERIFIER_H_
#define SECRET_RESOLVER_SERVER_AUTH_TOKEN_VERIFIER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/access_policy.h"
#include "resolver/clock.h"
#include "server/auth/auth_failure.h"
#include "server/auth/claims_validator.h"
#include "server/auth/jws.h"
#include "server/auth/jwks_source.h"
#include "server/auth/token_cache.h"

namespace secret_resolver {
namespace auth {

struct TokenVerifierOptions {
  // Required: `iss` must equal this exactly.
  std::string issuer;
  // Required, not empty: `aud` (a string or an array of strings) must contain one of these.
  std::vector<std::string> audiences;
  // Allowed `alg` values, a subset of ES256, RS256 and EdDSA; empty: all three.
  std::vector<std::string> algorithms;
  // `exp` may lie at most this far ahead (plus leeway): a token that never expires is refused.
  absl::Duration max_token_lifetime = absl::Hours(24);
  // Tolerated clock skew for `exp`, `nbf` and `iat`. Not negative.
  absl::Duration leeway = absl::Seconds(60);
  // Accept tokens without a `typ` header, for issuers older than Grafana 11.1. A `typ` that is
  // present must still be `at+jwt`.
  bool allow_missing_typ = false;
  // Longer tokens are rejected before any parsing.
  size_t max_token_bytes = 16 * 1024;
  // Verified tokens kept; 0 disables the cache.
  size_t cache_capacity = 10000;
  // Bytes of cached tokens kept (the cache holds the tokens themselves): tokens may be up to
  // max_token_bytes long, and 10,000 of them must not take 160 MiB. A token longer than this is
  // verified on every call.
  size_t cache_max_bytes = 8 << 20;
  // Required; not owned; must outlive the verifier.
  Clock* clock = nullptr;
};

// The outcome of one verification: the caller, or an UNAUTHENTICATED status and its reason.
struct TokenVerification {
  // Shared with the verified-token cache, so a cache hit copies no claims.
  absl::StatusOr<std::shared_ptr<const Caller>> caller;
  AuthFailure failure = AuthFailure::kNone;
};

// Counters for metrics.
struct TokenVerifierStats {
  uint64_t cache_hits = 0;        // verifications answered from the cache
  uint64_t cache_misses = 0;      // verifications that ran the full checks
  uint64_t signature_checks = 0;  // EVP_DigestVerify calls
  size_t cache_size = 0;          // tokens in the cache now
};

class TokenVerifier {
 public:
  // Returns INVALID_ARGUMENT if the issuer or the audience list is empty (or holds an empty
  // entry), an algorithm is not one of ES256, RS256, EdDSA, the leeway is negative, the
  // maximum lifetime is not positive, or the clock or `keys` is null. `keys` is not owned and
  // must outlive the verifier.
  static absl::StatusOr<std::unique_ptr<TokenVerifier>> Create(TokenVerifierOptions options,
                                                               JwksSource* keys);

  TokenVerifier(const TokenVerifier&) = delete;
  TokenVerifier& operator=(const TokenVerifier&) = delete;

  // Returns the caller a valid token speaks for, or an UNAUTHENTICATED status whose message
  // names the reason (never the token), whose payload AuthFailureOf() reads, and whose reason
  // is also in `failure`. May block: the key source may load keys.
  TokenVerification Verify(absl::string_view token);

  // Verify, if it can be done without I/O: no key reload is due and the token is cached (or too
  // large), or its `kid` names a key already loaded, in which case the full checks, signature
  // included, run on this thread (CPU work, no I/O). nullopt otherwise (a reload
  // is due, or the kid is unknown and a reload might bring it); then Verify() must run where
  // blocking is allowed.
  std::optional<TokenVerification> VerifyWithoutBlocking(absl::string_view token);

  // Tokens in the cache now (expired entries are dropped lazily).
  size_t cache_size() const;
  TokenVerifierStats stats() const;

 private:
  TokenVerifier(TokenVerifierOptions options, JwksSource* keys);

  // Verify and VerifyWithoutBlocking: without `may_load`, nullopt where a key would have to be
  // loaded.
  std::optional<TokenVerification> Verify(absl::string_view token, bool may_load);
  // ParseJwsHeader, answered from the headers that passed before when it can: an issuer signs
  // every token with the same few headers, so a new token mostly skips decoding and parsing its
  // header.
  absl::StatusOr<JwsHeader> ParsedHeader(absl::string_view header_b64);
  // The full checks. On success fills `entry`. Without `may_load`, nullopt if the key is not
  // loaded or a reload is due.
  std::optional<TokenVerification> VerifyUncached(absl::string_view token, bool may_load,
                                                  VerifiedTokenCache::Entry* entry);
  // Answers from the cache if it can. nullopt means "not cached (any more)", or, without
  // `may_load`, that confirming the token's key would need a JWKS reload.
  std::optional<TokenVerification> VerifyCached(absl::string_view token, bool may_load);

  const TokenVerifierOptions options_;
  const JwsHeaderPolicy header_policy_;
  const ClaimsPolicy claims_policy_;
  JwksSource* const keys_;
  VerifiedTokenCache cache_;

  // Base64url headers that passed ParseJwsHeader under header_policy_ -> what they say; emptied
  // when it reaches kMaxParsedHeaders entries. Guarded by headers_mu_.
  static constexpr size_t kMaxParsedHeaders = 64;
  std::mutex headers_mu_;
  absl::flat_hash_map<std::string, JwsHeader> headers_;

  std::atomic<uint64_t> cache_hits_{0};
  std::atomic<uint64_t> cache_misses_{0};
  std::atomic<uint64_t> signature_checks_{0};
};

}  // namespace auth
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_AUTH_TOKEN_VERIFIER_H_
