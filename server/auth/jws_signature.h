// JWS signature checks on OpenSSL 3.0 EVP (docs/contract.md section 3): whether a key may
// verify a token's `alg`, and whether the signature verifies.
//
// Why by hand: no Debian package verifies EdDSA JWS with the strictness required here
// (libcpp-jwt-dev and libcjose lack Ed25519). The `alg` must be the one that goes with the
// key's type (and the JWK's own `alg`, when the JWK has one); RSA keys must have at least 2048
// bits; ES256 signatures are exactly 64 bytes (JOSE r||s, converted to DER for OpenSSL); RS256
// signatures exactly the modulus size; Ed25519 signatures exactly 64 bytes.
//
// Thread safety: a key may verify on many threads at once (it lends each check a context of its
// own from an internally locked pool); no other state.
#ifndef SECRET_RESOLVER_SERVER_AUTH_JWS_SIGNATURE_H_
#define SECRET_RESOLVER_SERVER_AUTH_JWS_SIGNATURE_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/auth/verification_key.h"

namespace secret_resolver {
namespace auth {

// The JWS `alg` that goes with a key type: RS256, ES256 or EdDSA.
absl::string_view JwsAlgFor(KeyType type);

// OK if `key` may verify a token whose header says `alg`. Otherwise UNAUTHENTICATED (from
// AuthFailureStatus): `alg` does not go with the key's type or differs from the JWK's own `alg`
// (bad_alg); an RSA key under 2048 bits (weak_key).
absl::Status CheckKeyForAlg(const VerificationKey& key, absl::string_view alg);

// Returns true if `signature` (decoded bytes) is a valid signature of `signing_input` by `key`,
// for the one algorithm that goes with the key's type. Leaves no error on OpenSSL's queue.
bool JwsSignatureValid(const VerificationKey& key, absl::string_view signing_input,
                       absl::string_view signature);

}  // namespace auth
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_AUTH_JWS_SIGNATURE_H_
