// TokenMinter: runs mint_tokens.py (PyJWT + python3-cryptography, an implementation independent
// of the verifier) as a subprocess at test time, and gives the tests its keys and tokens.
//
// The script is a `data` dependency of each test; it runs under /usr/bin/python3 (Debian's,
// which has python3-jwt and python3-cryptography; the `python3` first on PATH may not). Keys
// and tokens are written under the test's TEST_TMPDIR and read back from there; nothing here
// prints a token.
//
// Thread safety: none needed (tests call it from SetUpTestSuite).
#ifndef SECRET_RESOLVER_TESTS_SERVER_AUTH_TOKEN_MINTER_H_
#define SECRET_RESOLVER_TESTS_SERVER_AUTH_TOKEN_MINTER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace secret_resolver {
namespace auth {
namespace testing {

struct MintedTokens {
  std::string dir;                            // where keys and tokens were written
  nlohmann::json public_jwks;                 // key name -> public JWK (kid = key name)
  std::map<std::string, std::string> tokens;  // token name -> compact JWS
};

// Runs the script with `specs` (token name -> spec, as mint_tokens.py documents) in `dir`.
// Returns the keys and tokens, or an error carrying the script's stderr.
absl::StatusOr<MintedTokens> MintTokens(const std::string& dir, const nlohmann::json& specs);

// A JWKS document holding the public keys of `key_names` from `minted`.
std::string JwksDocument(const MintedTokens& minted, const std::vector<std::string>& key_names);

// A fresh directory under TEST_TMPDIR (or /tmp).
std::string TempDir(absl::string_view name);

// Writes `contents` to `path` by writing a sibling and renaming it over, as a careful operator
// (or Kubernetes) replaces a file.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

}  // namespace testing
}  // namespace auth
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_SERVER_AUTH_TOKEN_MINTER_H_
