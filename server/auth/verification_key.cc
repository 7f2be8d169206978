#include "server/auth/verification_key.h"

#include <openssl/err.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <utility>

namespace secret_resolver {
namespace auth {

absl::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kRsa:
      return "RSA";
    case KeyType::kEcP256:
      return "EC P-256";
    case KeyType::kEd25519:
      return "Ed25519";
  }
  return "unknown";
}

VerificationKey::VerificationKey(std::string kid, KeyType type, std::string alg, PkeyPtr pkey)
    : kid_(std::move(kid)),
      type_(type),
      alg_(std::move(alg)),
      bits_(pkey == nullptr ? 0 : EVP_PKEY_get_bits(pkey.get())),
      pkey_(std::move(pkey)) {
  if (pkey_ == nullptr) return;
  if (type_ != KeyType::kEd25519) {
    idle_.reserve(kIdleVerifiers);  // so returning a lease never allocates
    return;
  }
  verify_template_.reset(EVP_MD_CTX_new());
  if (verify_template_ != nullptr &&
      EVP_DigestVerifyInit(verify_template_.get(), nullptr, nullptr, nullptr, pkey_.get()) != 1) {
    verify_template_.reset();
    ERR_clear_error();
  }
}

VerificationKey::~VerificationKey() {
  for (EVP_PKEY_CTX* ctx : idle_) EVP_PKEY_CTX_free(ctx);
}

EVP_PKEY_CTX* VerificationKey::NewDigestVerifier() const {
  if (pkey_ == nullptr || type_ == KeyType::kEd25519) return nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_.get(), nullptr);
  const bool ready =
      ctx != nullptr && EVP_PKEY_verify_init(ctx) == 1 &&
      (type_ != KeyType::kRsa || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1) &&
      EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1;
  if (!ready) {
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return nullptr;
  }
  return ctx;
}

VerificationKey::DigestVerifierLease VerificationKey::LeaseDigestVerifier() const {
  {
    std::lock_guard<std::mutex> lock(idle_mu_);
    if (!idle_.empty()) {
      EVP_PKEY_CTX* ctx = idle_.back();
      idle_.pop_back();
      return DigestVerifierLease(this, ctx);
    }
  }
  return DigestVerifierLease(this, NewDigestVerifier());
}

size_t VerificationKey::idle_verifiers() const {
  std::lock_guard<std::mutex> lock(idle_mu_);
  return idle_.size();
}

VerificationKey::DigestVerifierLease::DigestVerifierLease(DigestVerifierLease&& other) noexcept
    : key_(other.key_), ctx_(std::exchange(other.ctx_, nullptr)) {}

void VerificationKey::DigestVerifierLease::Discard() {
  EVP_PKEY_CTX_free(std::exchange(ctx_, nullptr));
}

VerificationKey::DigestVerifierLease::~DigestVerifierLease() {
  if (ctx_ == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(key_->idle_mu_);
    if (key_->idle_.size() < kIdleVerifiers) {
      key_->idle_.push_back(ctx_);
      return;
    }
  }
  EVP_PKEY_CTX_free(ctx_);
}

bool KeySet::Add(std::shared_ptr<const VerificationKey> key) {
  const std::string kid = key->kid();
  return keys_.emplace(kid, std::move(key)).second;
}

std::shared_ptr<const VerificationKey> KeySet::Find(absl::string_view kid) const {
  auto it = keys_.find(kid);
  return it == keys_.end() ? nullptr : it->second;
}

bool KeySet::Publishes(const VerificationKey& key) const {
  auto it = keys_.find(key.kid());
  return it != keys_.end() && it->second.get() == &key;
}

std::vector<std::string> KeySet::kids() const {
  std::vector<std::string> out;
  out.reserve(keys_.size());
  for (const auto& [kid, key] : keys_) out.push_back(kid);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace auth
}  // namespace secret_resolver
