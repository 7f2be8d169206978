// JWT claim validation for Grafana authlib access tokens (docs/contract.md sections 2 and 3):
// turns a signed claim set into the Caller it speaks for, or UNAUTHENTICATED with a reason.
//
// authlib (authn/verifier_access_token.go, AccessTokenClaims) decodes its custom claims from
// the top level of the claim set, next to the registered ones, so `namespace`,
// `serviceIdentity` and `permissions` are read from the top level only; a nested `ext` object
// is not consulted. As authlib reads them:
//   - `serviceIdentity` is a string or a one-element array of strings, surrounding whitespace
//     trimmed; absent, empty or an array of another length leaves Caller::service_identity empty
//     (Grafana's decrypt authorizer then says "not authorized"; ResolveSecrets needs it:
//     ClaimsForResolving);
//   - a token whose innermost `act` (actor) claim names a user or a service account (its `type`,
//     or the prefix of its `sub`) is a delegated token: its `permissions` are not the caller's,
//     so the Caller gets none and may decrypt nothing.
// `exp` is required, a whole number of seconds that fits 64 bits, at most max_token_lifetime
// ahead (plus leeway); `nbf` and `iat` are honoured; `iss` must equal the issuer; `aud` (a
// string or an array of strings) must contain one of the audiences.
//
// The claim set is read in one pass over nlohmann's SAX events, holding ParseStrictJson's rules
// (strict_json.h: no repeated member name at any depth, at most 32 nested containers, nothing but
// one JSON value); members no check reads are parsed and dropped.
//
// Every error is UNAUTHENTICATED from AuthFailureStatus (auth_failure.h); no message holds a
// claim's value.
//
// Thread safety: pure functions.
#ifndef SECRET_RESOLVER_SERVER_AUTH_CLAIMS_VALIDATOR_H_
#define SECRET_RESOLVER_SERVER_AUTH_CLAIMS_VALIDATOR_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/access_policy.h"

namespace secret_resolver {
namespace auth {

struct ClaimsPolicy {
  // `iss` must equal this exactly.
  std::string issuer;
  // `aud` must contain one of these.
  std::vector<std::string> audiences;
  // `exp` may lie at most this far ahead (plus leeway).
  absl::Duration max_token_lifetime = absl::Hours(24);
  // Tolerated clock skew for `exp`, `nbf` and `iat`.
  absl::Duration leeway = absl::Seconds(60);
};

// A valid claim set: who it speaks for and when.
struct ValidatedClaims {
  Caller caller;
  absl::Time expires;                         // `exp`
  absl::Time valid_from = absl::InfinitePast();  // the later of `nbf` and `iat`, if any
};

// Validates the decoded claim set `claims_json` at `now`. Errors, all UNAUTHENTICATED: not one
// JSON object with unique members, a claim of the wrong JSON type, `exp` not whole seconds
// fitting 64 bits, a malformed `act` chain (malformed); no `exp` (missing_claim); `exp` passed
// beyond leeway (expired); `exp` beyond max_token_lifetime (too_long_lived); `nbf` or `iat` in
// the future beyond leeway (not_yet_valid); `iss` missing or not ours (wrong_issuer); `aud`
// missing or without ours (wrong_audience).
absl::StatusOr<ValidatedClaims> ValidateClaims(absl::string_view claims_json,
                                               const ClaimsPolicy& policy, absl::Time now);

// Returns OK if `caller` carries what ResolveSecrets needs beyond a valid token: a namespace and
// a service identity. Otherwise UNAUTHENTICATED (missing_claim, readable by AuthFailureOf).
// Grafana's decrypt API does not call this: there a token without them is "not authorized" per
// name.
absl::Status ClaimsForResolving(const Caller& caller);

}  // namespace auth
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_AUTH_CLAIMS_VALIDATOR_H_
