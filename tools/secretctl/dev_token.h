// Development access tokens: an Ed25519 signing key with its JWKS, and tokens signed by it in the
// shape of Grafana authlib access tokens (`typ: at+jwt`, `namespace`, `serviceIdentity`,
// `permissions`). For local runs and demos (`secretctl dev-token`), never for production, where
// tokens come from the identity system.
//
// Thread safety: pure functions over files.
#ifndef SECRET_RESOLVER_TOOLS_SECRETCTL_DEV_TOKEN_H_
#define SECRET_RESOLVER_TOOLS_SECRETCTL_DEV_TOKEN_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace secret_resolver {

// Generates an Ed25519 key: the private key (PKCS#8 PEM, mode 0600) to `private_key_path`, the
// public key as a JWKS with key id `kid` to `jwks_path`. Refuses to overwrite either file
// (ALREADY_EXISTS). Errors: INTERNAL (OpenSSL), FAILED_PRECONDITION (I/O).
absl::Status WriteDevSigningKey(const std::string& private_key_path,
                                const std::string& jwks_path, const std::string& kid);

struct DevTokenClaims {
  std::string kid;
  std::string issuer;
  std::string audience;
  std::string stack;             // the `namespace` claim
  std::string service_identity;  // the `serviceIdentity` claim
  // Default: the generic decrypt permission.
  std::vector<std::string> permissions = {"secret.grafana.app/securevalues:decrypt"};
  absl::Time now;
  absl::Duration ttl = absl::Hours(1);
};

// Returns a compact JWS signed EdDSA with the key at `private_key_path`.
// Errors: FAILED_PRECONDITION (unreadable or not an Ed25519 key), INTERNAL (OpenSSL).
absl::StatusOr<std::string> MintDevToken(const std::string& private_key_path,
                                         const DevTokenClaims& claims);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TOOLS_SECRETCTL_DEV_TOKEN_H_
