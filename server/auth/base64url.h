// Strict base64url (RFC 4648 section 5) without padding, as JWS compact serialization and JWK
// members use it (RFC 7515 section 2).
//
// "Strict" means exactly one encoding is accepted for each byte string: only the URL-safe
// alphabet, no `=` padding, no whitespace, no length that leaves a dangling character, and the
// unused low bits of the last character must be zero. Accepting any other spelling would let one
// token be written in several ways.
//
// Thread safety: pure functions.
#ifndef SECRET_RESOLVER_SERVER_AUTH_BASE64URL_H_
#define SECRET_RESOLVER_SERVER_AUTH_BASE64URL_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace secret_resolver {
namespace auth {

// Returns the decoded bytes of `encoded`, or nullopt if it is not canonical unpadded base64url.
// The empty string decodes to the empty string.
std::optional<std::string> Base64UrlDecode(absl::string_view encoded);

// Returns the canonical unpadded base64url encoding of `bytes`.
std::string Base64UrlEncode(absl::string_view bytes);

}  // namespace auth
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_AUTH_BASE64URL_H_
