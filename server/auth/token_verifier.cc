#include "server/auth/token_verifier.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/auth/base64url.h"
#include "server/auth/jws_signature.h"

namespace secret_resolver {
namespace auth {
namespace {

TokenVerification Fail(absl::Status status) {
  const AuthFailure failure = AuthFailureOf(status);
  return TokenVerification{std::move(status), failure};
}

TokenVerification Fail(AuthFailure failure, absl::string_view detail) {
  return TokenVerification{AuthFailureStatus(failure, detail), failure};
}

JwsHeaderPolicy HeaderPolicy(const TokenVerifierOptions& options) {
  JwsHeaderPolicy policy;
  policy.algorithms = options.algorithms;
  policy.allow_missing_typ = options.allow_missing_typ;
  return policy;
}

ClaimsPolicy ClaimsPolicyOf(const TokenVerifierOptions& options) {
  ClaimsPolicy policy;
  policy.issuer = options.issuer;
  policy.audiences = options.audiences;
  policy.max_token_lifetime = options.max_token_lifetime;
  policy.leeway = options.leeway;
  return policy;
}

}  // namespace

TokenVerifier::TokenVerifier(TokenVerifierOptions options, JwksSource* keys)
    : options_(std::move(options)),
      header_policy_(HeaderPolicy(options_)),
      claims_policy_(ClaimsPolicyOf(options_)),
      keys_(keys),
      cache_(options_.cache_capacity, options_.cache_max_bytes, options_.leeway) {}

absl::StatusOr<std::unique_ptr<TokenVerifier>> TokenVerifier::Create(TokenVerifierOptions options,
                                                                     JwksSource* keys) {
  if (options.issuer.empty()) return absl::InvalidArgumentError("token verifier: issuer is empty");
  if (options.audiences.empty()) {
    return absl::InvalidArgumentError("token verifier: no audience");
  }
  for (const std::string& audience : options.audiences) {
    if (audience.empty()) return absl::InvalidArgumentError("token verifier: an audience is empty");
  }
  for (const std::string& alg : options.algorithms) {
    if (!IsSupportedJwsAlg(alg)) {
      return absl::InvalidArgumentError(absl::StrCat("token verifier: algorithm \"",
                                                     absl::CHexEscape(alg),
                                                     "\" is not one of ES256, RS256, EdDSA"));
    }
  }
  if (options.max_token_lifetime <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("token verifier: max_token_lifetime is not positive");
  }
  if (options.leeway < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("token verifier: leeway is negative");
  }
  if (options.clock == nullptr) return absl::InvalidArgumentError("token verifier: no clock");
  if (keys == nullptr) return absl::InvalidArgumentError("token verifier: no key source");
  return std::unique_ptr<TokenVerifier>(new TokenVerifier(std::move(options), keys));
}

TokenVerification TokenVerifier::Verify(absl::string_view token) {
  return *Verify(token, /*may_load=*/true);
}

std::optional<TokenVerification> TokenVerifier::VerifyWithoutBlocking(absl::string_view token) {
  return Verify(token, /*may_load=*/false);
}

std::optional<TokenVerification> TokenVerifier::Verify(absl::string_view token, bool may_load) {
  if (token.size() > options_.max_token_bytes) {
    return Fail(AuthFailure::kTooLarge,
                absl::StrCat("longer than ", options_.max_token_bytes, " bytes"));
  }
  const bool cacheable = options_.cache_capacity > 0;
  if (cacheable) {
    if (std::optional<TokenVerification> cached = VerifyCached(token, may_load)) return cached;
  }
  VerifiedTokenCache::Entry entry;
  std::optional<TokenVerification> result = VerifyUncached(token, may_load, &entry);
  if (!result.has_value()) return std::nullopt;
  cache_misses_.fetch_add(1, std::memory_order_relaxed);
  if (result->caller.ok() && cacheable) {
    cache_.Insert(token, std::move(entry), options_.clock->Now());
  }
  return result;
}

std::optional<TokenVerification> TokenVerifier::VerifyCached(absl::string_view token,
                                                             bool may_load) {
  std::shared_ptr<const Caller> caller;
  std::shared_ptr<const VerificationKey> key;
  switch (cache_.Find(token, options_.clock->Now(), &caller, &key)) {
    case VerifiedTokenCache::Found::kMiss:
      return std::nullopt;
    case VerifiedTokenCache::Found::kExpired:
      cache_hits_.fetch_add(1, std::memory_order_relaxed);
      return Fail(AuthFailure::kExpired, "exp is in the past (beyond leeway)");
    case VerifiedTokenCache::Found::kHit:
      break;
  }
  // The key must still be the one published under its id: rotation revokes cached tokens. Asked
  // outside the cache's lock, so the two locks are never held together.
  bool published = false;
  if (may_load) {
    absl::StatusOr<std::shared_ptr<const VerificationKey>> current = keys_->Lookup(key->kid());
    published = current.ok() && *current == key;
  } else {
    std::optional<bool> is_published = keys_->IsPublishedWithoutLoading(*key);
    if (!is_published.has_value()) return std::nullopt;  // a reload is due: leave it to Verify()
    published = *is_published;
  }
  if (!published) {
    cache_.EraseIfSignedBy(token, key);
    return std::nullopt;
  }
  cache_hits_.fetch_add(1, std::memory_order_relaxed);
  return TokenVerification{std::move(caller), AuthFailure::kNone};
}

size_t TokenVerifier::cache_size() const { return cache_.size(); }

TokenVerifierStats TokenVerifier::stats() const {
  TokenVerifierStats out;
  out.cache_hits = cache_hits_.load(std::memory_order_relaxed);
  out.cache_misses = cache_misses_.load(std::memory_order_relaxed);
  out.signature_checks = signature_checks_.load(std::memory_order_relaxed);
  out.cache_size = cache_.size();
  return out;
}

absl::StatusOr<JwsHeader> TokenVerifier::ParsedHeader(absl::string_view header_b64) {
  {
    std::lock_guard<std::mutex> lock(headers_mu_);
    auto it = headers_.find(header_b64);
    if (it != headers_.end()) return it->second;
  }
  absl::StatusOr<JwsHeader> header = ParseJwsHeader(header_b64, header_policy_);
  if (header.ok()) {
    std::lock_guard<std::mutex> lock(headers_mu_);
    if (headers_.size() >= kMaxParsedHeaders) headers_.clear();
    headers_.emplace(header_b64, *header);
  }
  return header;
}

std::optional<TokenVerification> TokenVerifier::VerifyUncached(absl::string_view token,
                                                               bool may_load,
                                                               VerifiedTokenCache::Entry* entry) {
  // Checked here rather than on every call: a token with such a byte is never in the cache.
  absl::StatusOr<JwsParts> parts = SplitCompactJws(token);
  if (!parts.ok()) return Fail(parts.status());
  absl::StatusOr<JwsHeader> header = ParsedHeader(parts->header);
  if (!header.ok()) return Fail(header.status());

  std::shared_ptr<const VerificationKey> key;
  if (may_load) {
    absl::StatusOr<std::shared_ptr<const VerificationKey>> found = keys_->Lookup(header->kid);
    if (!found.ok()) return Fail(AuthFailure::kUnknownKid, "no published key has this kid");
    key = *std::move(found);
  } else {
    key = keys_->FindWithoutLoading(header->kid);
    if (key == nullptr) return std::nullopt;  // a reload is due or the kid is unknown
  }
  if (absl::Status fits = CheckKeyForAlg(*key, header->alg); !fits.ok()) return Fail(fits);

  std::optional<std::string> payload = Base64UrlDecode(parts->payload);
  if (!payload.has_value()) return Fail(AuthFailure::kMalformed, "payload is not base64url");
  std::optional<std::string> signature = Base64UrlDecode(parts->signature);
  if (!signature.has_value()) return Fail(AuthFailure::kMalformed, "signature is not base64url");
  signature_checks_.fetch_add(1, std::memory_order_relaxed);
  if (!JwsSignatureValid(*key, parts->signing_input, *signature)) {
    return Fail(AuthFailure::kBadSignature, "signature does not verify");
  }

  absl::StatusOr<ValidatedClaims> claims =
      ValidateClaims(*payload, claims_policy_, options_.clock->Now());
  if (!claims.ok()) return Fail(claims.status());

  claims->caller.expires = claims->expires;
  auto shared = std::make_shared<const Caller>(std::move(claims->caller));
  entry->caller = shared;
  entry->expires = claims->expires;
  entry->valid_from = claims->valid_from;
  entry->key = std::move(key);
  return TokenVerification{std::move(shared), AuthFailure::kNone};
}

}  // namespace auth
}  // namespace secret_resolver
