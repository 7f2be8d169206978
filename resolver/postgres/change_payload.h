// The payload of the PostgreSQL store's change notifications (docs/storage-format.md, "The
// PostgreSQL store"): a compact JSON object naming the changed secret, never its value, e.g.
//
//   {"stack":"stacks-1","name":"workflows/http/auth-token"}
//
// It is sent with pg_notify(channel, payload) in the transaction that makes the change, so
// listeners hear of it exactly when it commits.
//
// Thread safety: pure functions.
#ifndef SECRET_RESOLVER_RESOLVER_POSTGRES_CHANGE_PAYLOAD_H_
#define SECRET_RESOLVER_RESOLVER_POSTGRES_CHANGE_PAYLOAD_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "resolver/secret_store.h"

namespace secret_resolver {

// Returns the payload for a change of (stack, name): keys in that order, no whitespace. '"',
// '\' and control characters are escaped as JSON requires (valid stacks and names need none).
std::string EncodeChangePayload(absl::string_view stack, absl::string_view name);

// Parses a payload: a JSON object with string members "stack" and "name", in any order, with
// optional whitespace between tokens; other members are ignored when their values are strings,
// numbers, true, false or null. Understands every JSON string escape (\uXXXX included, also
// surrogate pairs). Returns a change with resync = false. Errors: INVALID_ARGUMENT giving the
// byte position (not such an object, or "stack" or "name" missing or empty).
absl::StatusOr<SecretChange> DecodeChangePayload(absl::string_view payload);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_POSTGRES_CHANGE_PAYLOAD_H_
