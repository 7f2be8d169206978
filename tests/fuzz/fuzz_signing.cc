#include "tests/fuzz/fuzz_signing.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/auth/base64url.h"

namespace secret_resolver::fuzzing {

const char kFuzzJwks[] =
    R"({"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"P_MXc1NUBwk9jGBdOZivaULCBEy_KLy7SvWu)"
    R"(hvRMK7s","use":"sig"},{"kty":"EC","crv":"P-256","kid":"ec","x":"ecJOYWU2RimD8SkwPMdfPoYpjN)"
    R"(6N_nYdgzWC8mZouHM","y":"2TkMzLKM9RUa-PdzPinC8vfWJVBGgS-yufZzzkq38Q4"},{"kty":"RSA","kid":")"
    R"(rsa","n":"qhGIHrfWZffR4flSrTlp5q9hYHLbJZ3_kYMkv45LYq7tqeLZ62OVC8mAMeu9V3lOc1kWPXiXCIj72Vtu)"
    R"(hEaAgSGVnqjvF4Gi-eYqOp64IUIRy127LWG1_rZ7yqwHih4l_MpMcSB4dvWS5YaBrG8wTnJlcz_3B8K9zly2ZZ5ACJ)"
    R"(hAHNs_ahLW1lZzbfrICOvXQf7o_PQFc_SNe7cLlDCFP-vgISqK2npZd18psfmyZ410kap7nzSkC-JzkvwU9dIhZq9d)"
    R"(vuRzxOfzFkbO_EUgp0GOr8bxArn-_TbfF20M0T-Yq9N_8KxnUk-esJdMaNBHL_m8AHjDyYAwtjI0494X-w","e":"A)"
    R"(QAB","alg":"RS256"}]})";

const char kFuzzEd25519Pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIFDvgECcJgCgX+uzyCFZGEQEVUKHoMhKOuUxgbrzYYTi\n"
    "-----END PRIVATE KEY-----\n";

const char kFuzzP256Pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgdhNf7sWiNlbAmuaM\n"
    "Jme4K/HbybQc48JtNPogcdrpzJChRANCAAR5wk5hZTZGKYPxKTA8x18+himM3o3+\n"
    "dh2DNYLyZmi4c9k5DMyyjPUVGvj3cz4pwvL31iVQRoEvsrn2c85Kt/EO\n"
    "-----END PRIVATE KEY-----\n";

FixedJwksSource::FixedJwksSource() {
  absl::StatusOr<auth::ParsedJwks> parsed = auth::ParseJwks(kFuzzJwks);
  FUZZ_CHECK(parsed.ok());
  keys_ = std::make_shared<const auth::KeySet>(std::move(parsed->keys));
}

absl::StatusOr<std::shared_ptr<const auth::VerificationKey>> FixedJwksSource::Lookup(
    absl::string_view kid) {
  if (auto key = keys_->Find(kid)) return key;
  return absl::NotFoundError("unknown key id");
}

std::optional<bool> FixedJwksSource::IsPublishedWithoutLoading(
    const auth::VerificationKey& key) {
  return keys_->Publishes(key);
}

std::shared_ptr<const auth::VerificationKey> FixedJwksSource::FindWithoutLoading(
    absl::string_view kid) {
  return keys_->Find(kid);
}

absl::Status FixedJwksSource::Reload() { return absl::OkStatus(); }

std::shared_ptr<const auth::KeySet> FixedJwksSource::Current() const { return keys_; }

auth::JwksSourceStats FixedJwksSource::stats() const { return auth::JwksSourceStats(); }

PkeyPtr LoadPrivateKey(const char* pem) {
  BIO* bio = BIO_new_mem_buf(pem, -1);
  FUZZ_CHECK(bio != nullptr);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  FUZZ_CHECK(key != nullptr);
  return PkeyPtr(key);
}

std::string Sign(EVP_PKEY* key, bool p256, absl::string_view input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  FUZZ_CHECK(ctx != nullptr);
  FUZZ_CHECK(EVP_DigestSignInit(ctx, nullptr, p256 ? EVP_sha256() : nullptr, nullptr, key) == 1);
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  FUZZ_CHECK(EVP_DigestSign(ctx, nullptr, &len, in, input.size()) == 1);
  std::string sig(len, '\0');
  FUZZ_CHECK(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                            input.size()) == 1);
  EVP_MD_CTX_free(ctx);
  sig.resize(len);
  if (!p256) return sig;
  const auto* der = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(sig.size()));
  FUZZ_CHECK(ecdsa != nullptr);
  std::string raw(64, '\0');
  FUZZ_CHECK(BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), reinterpret_cast<unsigned char*>(&raw[0]),
                          32) == 32);
  FUZZ_CHECK(BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), reinterpret_cast<unsigned char*>(&raw[32]),
                          32) == 32);
  ECDSA_SIG_free(ecdsa);
  return raw;
}

std::string SignToken(EVP_PKEY* key, bool p256, absl::string_view claims) {
  const absl::string_view header = p256 ? R"({"alg":"ES256","kid":"ec","typ":"at+jwt"})"
                                        : R"({"alg":"EdDSA","kid":"ed","typ":"at+jwt"})";
  const std::string input =
      absl::StrCat(auth::Base64UrlEncode(header), ".", auth::Base64UrlEncode(claims));
  return absl::StrCat(input, ".", auth::Base64UrlEncode(Sign(key, p256, input)));
}

}  // namespace secret_resolver::fuzzing
