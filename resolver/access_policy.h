// Access policy (contract.md sections 3 and 4): which verified caller may resolve which secret.
//
// The caller is what a verified access token says: its namespace (the stack it speaks for), its
// service identity (the decrypter identity) and its permissions. Three checks:
//   - stack match: the request's stack equals the token namespace, with `stack-N` and
//     `stacks-N` the same stack (Grafana); a namespace of `*` matches every stack only when
//     the operator enabled wildcard namespaces;
//   - permission: `secret.grafana.app/securevalues:decrypt` for every secret, or
//     `secret.grafana.app/securevalues/<name>:decrypt` for one;
//   - decrypter: the service identity equals one entry of the secret's decrypters exactly
//     (case-sensitive); an empty list denies everyone.
//
// Thread safety: pure functions and an immutable value type.
#ifndef SECRET_RESOLVER_RESOLVER_ACCESS_POLICY_H_
#define SECRET_RESOLVER_RESOLVER_ACCESS_POLICY_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace secret_resolver {

inline constexpr absl::string_view kDecryptAllPermission =
    "secret.grafana.app/securevalues:decrypt";

// Who is calling, as established by a verified access token.
struct Caller {
  std::string token_namespace;           // token `namespace` claim, e.g. "stacks-123"
  std::string service_identity;          // token `serviceIdentity` claim
  std::vector<std::string> permissions;  // token `permissions` claim
  // The token's `exp`: when a stream opened with it must end (WatchSecrets).
  absl::Time expires = absl::InfiniteFuture();
};

struct AccessPolicyOptions {
  // Lets a token namespace of `*` speak for every stack. Off by default.
  bool allow_wildcard_namespace = false;
};

// Returns true if `a` and `b` name the same stack (`stack-N` and `stacks-N` are equal).
bool SameStack(absl::string_view a, absl::string_view b);

// Returns the one spelling under which a stack's secrets are stored and fingerprinted:
// `stacks-N` for `stack-N` (N digits), otherwise `stack` unchanged.
std::string CanonicalStack(absl::string_view stack);

// Returns OK if `caller` may act for `stack`, else PERMISSION_DENIED naming both namespaces
// (namespaces are not secret).
absl::Status CheckStack(const Caller& caller, absl::string_view stack,
                        const AccessPolicyOptions& options);

// Returns true if `caller` holds the decrypt permission for the secret `name`.
bool HasDecryptPermission(const Caller& caller, absl::string_view name);

// Returns true if `caller` holds any decrypt permission, generic or for some name. A caller
// with none may not use the resolver at all (a whole-call PERMISSION_DENIED).
bool HasAnyDecryptPermission(const Caller& caller);

// Returns true if `service_identity` is exactly one of `decrypters`.
bool IsAllowedDecrypter(absl::string_view service_identity,
                        const std::vector<std::string>& decrypters);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_ACCESS_POLICY_H_
