// The input checks every SecretStore applies before it touches its data, so that the SQLite
// store, the PostgreSQL store and the test fake accept and reject exactly the same writes and
// keys (contract.md section 5 limits, via resolver/secret_validation.h and
// resolver/secret_uri.h).
//
// Thread safety: pure functions.
#ifndef SECRET_RESOLVER_RESOLVER_STORAGE_FORMAT_SECRET_WRITE_VALIDATION_H_
#define SECRET_RESOLVER_RESOLVER_STORAGE_FORMAT_SECRET_WRITE_VALIDATION_H_

#include <cstdint>

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

// Returns OK if `version` could be a stored version (at least 1). Errors: INVALID_ARGUMENT
// naming the field.
absl::Status ValidateSecretVersion(int64_t version);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_STORAGE_FORMAT_SECRET_WRITE_VALIDATION_H_
