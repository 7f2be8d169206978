// Token-signing public keys (docs/contract.md section 3): one key of a JSON Web Key Set, and the
// set of them by key id.
//
// Thread safety: VerificationKey (apart from its internally locked pool of verification
// contexts) and a KeySet that is no longer being built are immutable and may be shared across
// threads.
#ifndef SECRET_RESOLVER_SERVER_AUTH_VERIFICATION_KEY_H_
#define SECRET_RESOLVER_SERVER_AUTH_VERIFICATION_KEY_H_

#include <openssl/evp.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace secret_resolver {
namespace auth {

// The kinds of key a token may be signed with; each goes with exactly one JWS `alg`.
enum class KeyType {
  kRsa,      // RS256
  kEcP256,   // ES256
  kEd25519,  // EdDSA
};

// "RSA", "EC P-256" or "Ed25519", for messages.
absl::string_view KeyTypeName(KeyType type);

// One public key from a JWKS. Immutable but for its pool of verification contexts.
class VerificationKey {
 public:
  struct PkeyDeleter {
    void operator()(EVP_PKEY* pkey) const { EVP_PKEY_free(pkey); }
  };
  using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

  // `alg` is the JWK's own `alg` member, empty when it names none.
  VerificationKey(std::string kid, KeyType type, std::string alg, PkeyPtr pkey);

  const std::string& kid() const { return kid_; }
  KeyType type() const { return type_; }
  // The JWK `alg` member, or empty. When set, a token must use exactly this algorithm.
  const std::string& alg() const { return alg_; }
  // Key size in bits, as OpenSSL counts it: the RSA modulus size, 256 for P-256, 253 for Ed25519.
  int bits() const { return bits_; }
  // The OpenSSL key. Only EVP verification functions (which do not mutate it) may use it, so
  // one key may verify on many threads at once.
  EVP_PKEY* pkey() const { return pkey_.get(); }
  // A context for EVP_PKEY_verify with this key over a SHA-256 digest (RSA: PKCS#1 v1.5; P-256:
  // ECDSA with a DER signature), lent to one caller at a time from a pool the key keeps: OpenSSL
  // 3 spends as long fetching the algorithm and setting a context up (or copying a set-up one)
  // as hashing the token, on every new token. The lease returns the context when it ends; at
  // most kIdleVerifiers wait in the pool, and a lease beyond them makes a context of its own.
  // Null get() for Ed25519 (EdDSA signs the message, not a digest: verify_template()) or if
  // OpenSSL could not make one.
  class DigestVerifierLease {
   public:
    DigestVerifierLease(DigestVerifierLease&& other) noexcept;
    DigestVerifierLease& operator=(DigestVerifierLease&&) = delete;
    ~DigestVerifierLease();
    EVP_PKEY_CTX* get() const { return ctx_; }
    // Frees the context instead of returning it: after an OpenSSL error, so that no context
    // left in an unusual state is lent again.
    void Discard();

   private:
    friend class VerificationKey;
    DigestVerifierLease(const VerificationKey* key, EVP_PKEY_CTX* ctx) : key_(key), ctx_(ctx) {}
    const VerificationKey* key_;
    EVP_PKEY_CTX* ctx_;
  };
  DigestVerifierLease LeaseDigestVerifier() const;
  // How many contexts wait in the pool now (at most kIdleVerifiers).
  size_t idle_verifiers() const;
  // Ed25519 only: a verification context initialized once (EVP_DigestVerifyInit, no digest), to
  // be copied with EVP_MD_CTX_copy_ex into a context of the caller's and never used directly.
  // Copying only reads it, so any number of threads may copy it at once. Null for other key
  // types, or if OpenSSL could not initialize it (then callers initialize their own).
  const EVP_MD_CTX* verify_template() const { return verify_template_.get(); }

  ~VerificationKey();
  VerificationKey(const VerificationKey&) = delete;
  VerificationKey& operator=(const VerificationKey&) = delete;

  static constexpr size_t kIdleVerifiers = 8;

 private:
  struct MdCtxDeleter {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };

  // A new context for LeaseDigestVerifier, or null.
  EVP_PKEY_CTX* NewDigestVerifier() const;

  std::string kid_;
  KeyType type_;
  std::string alg_;
  int bits_;
  PkeyPtr pkey_;
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> verify_template_;
  mutable std::mutex idle_mu_;
  mutable std::vector<EVP_PKEY_CTX*> idle_;  // guarded by idle_mu_
};

// The usable keys of one JWKS document, by `kid`.
class KeySet {
 public:
  KeySet() = default;

  // Adds `key` under its kid. Returns false, and adds nothing, if the set already holds a key
  // with that kid. For building a set before it is shared.
  bool Add(std::shared_ptr<const VerificationKey> key);

  // The key named `kid`, or null.
  std::shared_ptr<const VerificationKey> Find(absl::string_view kid) const;
  // Whether `key` is the very key this set holds under its `kid`.
  bool Publishes(const VerificationKey& key) const;
  size_t size() const { return keys_.size(); }
  // The key ids, sorted; for diagnostics (key ids are public).
  std::vector<std::string> kids() const;

 private:
  absl::flat_hash_map<std::string, std::shared_ptr<const VerificationKey>> keys_;
};

}  // namespace auth
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_AUTH_VERIFICATION_KEY_H_
