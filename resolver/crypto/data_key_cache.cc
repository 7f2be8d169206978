#include "resolver/crypto/data_key_cache.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace secret_resolver {
namespace {

// (stack, data key id) as one string that no other pair maps to: the stack's length first.
std::string MapKey(absl::string_view stack, absl::string_view data_key_id) {
  return absl::StrCat(stack.size(), ":", stack, data_key_id);
}

}  // namespace

DataKeyCache::DataKeyCache(const KeyRing* key_ring, size_t capacity)
    : key_ring_(key_ring), capacity_(capacity) {}

absl::StatusOr<SecretBytes> DataKeyCache::Unwrap(const WrappedDataKey& wrapped,
                                                 absl::string_view stack,
                                                 absl::string_view data_key_id) {
  std::string map_key = MapKey(stack, data_key_id);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(map_key);
    if (it != index_.end() && it->second->kek_id == wrapped.kek_id &&
        it->second->wrapped == wrapped.wrapped) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->data_key.Clone();
    }
    ++unwraps_;
  }
  absl::StatusOr<SecretBytes> key = UnwrapDataKey(*key_ring_, wrapped, stack, data_key_id);
  if (!key.ok() || capacity_ == 0) return key;

  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(map_key);
  if (it != index_.end()) {
    // Replaced (rewrapped elsewhere, or another thread's unwrap of the same key): the old bytes
    // are wiped by the assignment.
    it->second->kek_id = wrapped.kek_id;
    it->second->wrapped = wrapped.wrapped;
    it->second->data_key = key->Clone();
    lru_.splice(lru_.begin(), lru_, it->second);
    return key;
  }
  lru_.push_front(Entry{map_key, wrapped.kek_id, wrapped.wrapped, key->Clone()});
  index_.emplace(std::move(map_key), lru_.begin());
  if (lru_.size() > capacity_) {
    index_.erase(lru_.back().map_key);
    lru_.pop_back();  // wipes the evicted key
  }
  return key;
}

void DataKeyCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  index_.clear();
  lru_.clear();
}

size_t DataKeyCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

uint64_t DataKeyCache::unwraps() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unwraps_;
}

}  // namespace secret_resolver
