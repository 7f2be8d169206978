// Strict JSON parsing for untrusted security-relevant documents (JOSE headers, JWKS documents).
// JWT claim sets are read in one pass by claims_validator.cc under the same rules, without
// building a document (jws_token_fuzzer checks that the two agree on what is JSON).
//
// nlohmann::json alone keeps the last of duplicate object members, so `{"alg":"ES256",
// "alg":"none"}` would mean different things to different parsers; RFC 7515 section 5.2 asks a
// JWS recipient to reject such input. This parser rejects duplicate member names at any depth,
// nesting deeper than a limit, and everything nlohmann rejects (invalid UTF-8, trailing data,
// comments). It never throws.
//
// Thread safety: pure function.
#ifndef SECRET_RESOLVER_SERVER_AUTH_STRICT_JSON_H_
#define SECRET_RESOLVER_SERVER_AUTH_STRICT_JSON_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace secret_resolver {
namespace auth {

// Returns the parsed value of `text`, or nullopt if `text` is not one well-formed JSON value, has
// an object with a repeated member name, or nests objects and arrays deeper than `max_depth`.
std::optional<nlohmann::json> ParseStrictJson(absl::string_view text, int max_depth = 32);

}  // namespace auth
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_AUTH_STRICT_JSON_H_
