// SecretBytes: the one type that holds secret material (decrypted values, keys) in memory.
//
// The bytes live in a heap buffer that is wiped with OPENSSL_cleanse when the object is
// destroyed or assigned over. The type is move-only (copies are explicit, through Clone()), has
// no stream operator, and compares in constant time, so a value is neither duplicated, printed
// nor leaked through timing by accident. Access is explicit: reveal().
//
// Thread safety: a const SecretBytes may be read from many threads; mutation needs exclusive
// access, as for any value type.
#ifndef SECRET_RESOLVER_RESOLVER_SECRET_BYTES_H_
#define SECRET_RESOLVER_RESOLVER_SECRET_BYTES_H_

#include <cstddef>
#include <memory>

#include "absl/strings/string_view.h"

namespace secret_resolver {

class SecretBytes {
 public:
  // An empty value.
  SecretBytes() = default;
  // Copies `bytes` into a new buffer. The caller remains responsible for wiping its own copy.
  explicit SecretBytes(absl::string_view bytes);
  ~SecretBytes();

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  // An explicit copy, for the few places that must hand a value to a second owner.
  SecretBytes Clone() const;

  // The secret bytes. The view is valid until this object is destroyed, moved or assigned.
  absl::string_view reveal() const { return absl::string_view(data_.get(), size_); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Constant-time equality: the time taken depends on the sizes only, not on the contents.
  bool Equals(const SecretBytes& other) const;
  bool Equals(absl::string_view other) const;

 private:
  void Wipe();

  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
};

// Equality whose time depends on the sizes only, never on the contents (SecretBytes::Equals;
// also for other credentials, such as cached access tokens). Written out because OpenSSL's
// CRYPTO_memcmp compares one byte per step: this compares eight, equally without branches on the
// data, which matters on a path that compares a token on every call.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_SECRET_BYTES_H_
