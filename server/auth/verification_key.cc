#include "server/auth/verification_key.h"

#include <openssl/err.h>

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
  verify_template_.reset(EVP_MD_CTX_new());
  const EVP_MD* md = type_ == KeyType::kEd25519 ? nullptr : EVP_sha256();
  if (verify_template_ != nullptr &&
      EVP_DigestVerifyInit(verify_template_.get(), nullptr, md, nullptr, pkey_.get()) != 1) {
    verify_template_.reset();
    ERR_clear_error();
  }
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
