// Fixed test keys and signing helpers for fuzz targets that need tokens the real verifier
// accepts: a JWKS document with an Ed25519, a P-256 and an RSA public key (kids "ed", "ec",
// "rsa"), the Ed25519 and P-256 private keys, a JwksSource that serves the document and never
// reloads, and a JOSE signer. Failures of the fixed setup abort (FUZZ_CHECK): they are bugs in
// the target, not findings.
//
// The keys are test keys, made for the fuzz targets and used nowhere else.
//
// Thread safety: FixedJwksSource is immutable; the functions are pure.
#ifndef SECRET_RESOLVER_TESTS_FUZZ_FUZZ_SIGNING_H_
#define SECRET_RESOLVER_TESTS_FUZZ_FUZZ_SIGNING_H_

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/auth/jwks_parser.h"
#include "server/auth/jwks_source.h"

// Aborts with the failed condition: an invariant of a fuzz target.
#define FUZZ_CHECK(condition)                                                                \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)

namespace secret_resolver::fuzzing {

// The public keys: "ed" (Ed25519), "ec" (P-256), "rsa" (RSA, RS256).
extern const char kFuzzJwks[];
// PKCS#8 PEM private keys of "ed" and "ec".
extern const char kFuzzEd25519Pem[];
extern const char kFuzzP256Pem[];

// kFuzzJwks, parsed once, never reloaded.
class FixedJwksSource : public auth::JwksSource {
 public:
  FixedJwksSource();
  absl::StatusOr<std::shared_ptr<const auth::VerificationKey>> Lookup(
      absl::string_view kid) override;
  std::optional<bool> IsPublishedWithoutLoading(const auth::VerificationKey& key) override;
  std::shared_ptr<const auth::VerificationKey> FindWithoutLoading(absl::string_view kid) override;
  absl::Status Reload() override;
  std::shared_ptr<const auth::KeySet> Current() const override;
  auth::JwksSourceStats stats() const override;

 private:
  std::shared_ptr<const auth::KeySet> keys_;
};

struct PkeyDeleter {
  void operator()(EVP_PKEY* pkey) const { EVP_PKEY_free(pkey); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// The private key in `pem`.
PkeyPtr LoadPrivateKey(const char* pem);

// The JOSE signature of `input`: Ed25519's own, or with `p256` ES256's r||s.
std::string Sign(EVP_PKEY* key, bool p256, absl::string_view input);

// A compact JWS of `claims` (JSON) with header {"alg","kid","typ":"at+jwt"}, signed by `key`.
std::string SignToken(EVP_PKEY* key, bool p256, absl::string_view claims);

}  // namespace secret_resolver::fuzzing

#endif  // SECRET_RESOLVER_TESTS_FUZZ_FUZZ_SIGNING_H_
