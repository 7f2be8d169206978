#include "resolver/secret_bytes.h"

#include <cstring>
#include <utility>

#include <openssl/crypto.h>

namespace secret_resolver {

SecretBytes::SecretBytes(absl::string_view bytes) : size_(bytes.size()) {
  if (size_ == 0) return;
  data_ = std::make_unique<char[]>(size_);
  std::memcpy(data_.get(), bytes.data(), size_);
}

SecretBytes::~SecretBytes() { Wipe(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Wipe();
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecretBytes SecretBytes::Clone() const { return SecretBytes(reveal()); }

bool SecretBytes::Equals(const SecretBytes& other) const { return Equals(other.reveal()); }

bool SecretBytes::Equals(absl::string_view other) const {
  if (other.size() != size_) return false;
  if (size_ == 0) return true;
  return CRYPTO_memcmp(data_.get(), other.data(), size_) == 0;
}

void SecretBytes::Wipe() {
  if (data_ != nullptr) OPENSSL_cleanse(data_.get(), size_);
  data_.reset();
  size_ = 0;
}

}  // namespace secret_resolver
