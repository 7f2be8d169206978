// The input checks a SecretStore applies before it touches its database, shared by every store
// so that they accept and reject the same writes (CONTRACT.md section 5 limits, via
// resolver/secret_validation.h and resolver/secret_uri.h).
//
// The SQLite store keeps an equivalent private copy of ValidateSecretWrite for now; it can
// switch to this one without a change in behaviour.
//
// Thread safety: pure functions.
#ifndef SECRET_RESOLVER_RESOLVER_STORE_COMMON_SECRET_WRITE_VALIDATION_H_
#define SECRET_RESOLVER_RESOLVER_STORE_COMMON_SECRET_WRITE_VALIDATION_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "resolver/secret_store.h"

namespace secret_resolver {

// Returns OK if `write` may be stored: a valid stack, name, decrypter list, value size and
// description length. Errors: INVALID_ARGUMENT naming the field (and, where it applies, the
// byte position or list index), never quoting the value.
absl::Status ValidateSecretWrite(const SecretWrite& write);

// Returns OK if (stack, name) could name a stored secret. Errors: INVALID_ARGUMENT naming the
// field and byte position.
absl::Status ValidateSecretKey(absl::string_view stack, absl::string_view name);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_STORE_COMMON_SECRET_WRITE_VALIDATION_H_
