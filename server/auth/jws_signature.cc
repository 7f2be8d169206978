#include "server/auth/jws_signature.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/auth/auth_failure.h"

namespace secret_resolver {
namespace auth {
namespace {

constexpr int kMinRsaBits = 2048;

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* sig) const { ECDSA_SIG_free(sig); }
};

// SHA-256, fetched from OpenSSL's default provider once: EVP_sha256() makes every EVP_Digest
// fetch it again.
const EVP_MD* Sha256() {
  static const EVP_MD* const md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
}

// JOSE ES256 signatures are r||s, 32 bytes each (RFC 7518 section 3.4); OpenSSL wants DER.
std::optional<std::string> RawEcdsaToDer(absl::string_view raw) {
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> sig(ECDSA_SIG_new());
  if (sig == nullptr) return std::nullopt;
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
  BIGNUM* r = BN_bin2bn(bytes, 32, nullptr);
  BIGNUM* s = BN_bin2bn(bytes + 32, 32, nullptr);
  if (r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return std::nullopt;
  std::string der(static_cast<size_t>(len), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &out) != len) return std::nullopt;
  return der;
}

}  // namespace

absl::string_view JwsAlgFor(KeyType type) {
  switch (type) {
    case KeyType::kRsa:
      return "RS256";
    case KeyType::kEcP256:
      return "ES256";
    case KeyType::kEd25519:
      return "EdDSA";
  }
  return "";
}

absl::Status CheckKeyForAlg(const VerificationKey& key, absl::string_view alg) {
  if (alg != JwsAlgFor(key.type())) {
    return AuthFailureStatus(
        AuthFailure::kBadAlg,
        absl::StrCat(alg, " does not match the ", KeyTypeName(key.type()), " key"));
  }
  if (!key.alg().empty() && key.alg() != alg) {
    return AuthFailureStatus(AuthFailure::kBadAlg, "alg differs from the key's own alg");
  }
  if (key.type() == KeyType::kRsa && key.bits() < kMinRsaBits) {
    return AuthFailureStatus(AuthFailure::kWeakKey,
                             absl::StrCat("RSA key under ", kMinRsaBits, " bits"));
  }
  return absl::OkStatus();
}

bool JwsSignatureValid(const VerificationKey& key, absl::string_view signing_input,
                       absl::string_view signature) {
  const EVP_MD* md = Sha256();
  std::string der;
  absl::string_view to_verify = signature;
  switch (key.type()) {
    case KeyType::kEcP256: {
      if (signature.size() != 64) return false;
      std::optional<std::string> converted = RawEcdsaToDer(signature);
      if (!converted.has_value()) return false;
      der = *std::move(converted);
      to_verify = der;
      break;
    }
    case KeyType::kRsa:
      // RFC 7518 section 3.3: the signature is exactly as long as the modulus.
      if (signature.size() != static_cast<size_t>(EVP_PKEY_get_size(key.pkey()))) return false;
      break;
    case KeyType::kEd25519:
      if (signature.size() != 64) return false;
      md = nullptr;  // EdDSA hashes internally; one-shot only
      break;
  }
  const auto* sig = reinterpret_cast<const unsigned char*>(to_verify.data());
  const auto* input = reinterpret_cast<const unsigned char*>(signing_input.data());
  bool ok = false;
  if (VerificationKey::DigestVerifierLease verifier = key.LeaseDigestVerifier();
      verifier.get() != nullptr) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_size = 0;
    const int verified =
        EVP_Digest(input, signing_input.size(), digest, &digest_size, Sha256(), nullptr) == 1
            ? EVP_PKEY_verify(verifier.get(), sig, to_verify.size(), digest, digest_size)
            : -1;
    ok = verified == 1;
    // 0 is a signature that does not match, which leaves the context as it was (so forged
    // tokens cannot drain the pool); anything else is an error, and that context goes.
    if (verified < 0) verifier.Discard();
  } else {
    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
    const bool ready =
        ctx != nullptr &&
        (key.verify_template() != nullptr
             ? EVP_MD_CTX_copy_ex(ctx.get(), key.verify_template()) == 1
             : EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key.pkey()) == 1);
    ok = ready && EVP_DigestVerify(ctx.get(), sig, to_verify.size(), input,
                                   signing_input.size()) == 1;
  }
  ERR_clear_error();  // a failed verification leaves errors on the thread's queue
  return ok;
}

}  // namespace auth
}  // namespace secret_resolver
