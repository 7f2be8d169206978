#include "resolver/cache_entries.h"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace secret_resolver {
namespace cache_internal {
namespace {

// What an entry costs beyond the bytes of its strings and value: the entry record, the shared
// CachedValue with its control block, the value's heap block, the set slot and the allocator's
// headers (docs/BENCHMARKS.md: about 335 bytes in all measured for a 32-byte value and a
// 12-character name, which this charge with the strings and value covers).
// Charged to negative entries too, so a flood of unknown names is bounded like everything else.
constexpr size_t kEntryOverheadBytes = 320;

// Decrypter lists are shared, so they are not charged to each entry.
size_t EntryBytes(absl::string_view stack, const Entry& entry) {
  size_t bytes = kEntryOverheadBytes + stack.size() + entry.name.size();
  if (entry.value != nullptr) bytes += entry.value->value.size() + entry.value->fingerprint_size;
  if (entry.not_found_message != nullptr) bytes += entry.not_found_message->size();
  return bytes;
}

}  // namespace

Entry* CacheEntries::Find(const KeyView& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->get();
}

void CacheEntries::Insert(absl::string_view stack, std::unique_ptr<Entry> entry, absl::Time now,
                          Dropped& dropped) {
  const bool negative = entry->value == nullptr;
  if (negative && negatives_.size() >= next_negative_sweep_) SweepNegatives(now, dropped);
  // The new entry replaces the old one whatever happens next: the old value is superseded.
  if (Entry* old = Find(KeyView{stack, entry->name, entry->version}); old != nullptr) {
    Remove(old, dropped);
  }
  const size_t bytes = EntryBytes(stack, *entry);
  entry->bytes = static_cast<uint32_t>(bytes);
  if (bytes > stack_limit_ || bytes > max_bytes_) {
    dropped.push_back(std::move(entry));
    return;
  }
  // First the stack makes room within its own share, from its own least recently used
  // entries, so a noisy stack evicts itself rather than its neighbours...
  for (;;) {
    auto sit = stacks_.find(stack);
    if (sit == stacks_.end() || sit->second.bytes + bytes <= stack_limit_) break;
    Remove(sit->second.lru.back(), dropped);
    ++evictions_;
  }
  // ...then the cache as a whole, from the globally least recently used.
  while (bytes_ + bytes > max_bytes_ && !global_lru_.empty()) {
    Remove(global_lru_.back(), dropped);
    ++evictions_;
  }
  // Looked up only now: the evictions above may have erased the stack's state.
  auto [stack_it, added] = stacks_.try_emplace(stack);
  StackState& state = stack_it->second;
  if (added) state.name = stack_it->first;
  Entry* raw = entry.get();
  raw->stack_state = &state;
  entries_.insert(std::move(entry));
  state.lru.PushFront(raw);
  global_lru_.PushFront(raw);
  state.bytes += bytes;
  bytes_ += bytes;
  if (negative) negatives_.insert(raw);
}

void CacheEntries::SweepNegatives(absl::Time now, Dropped& dropped) {
  std::vector<Entry*> expired;
  for (Entry* entry : negatives_) {
    if (now >= entry->expires_at) expired.push_back(entry);
  }
  for (Entry* entry : expired) Remove(entry, dropped);
  next_negative_sweep_ = std::max(kFirstNegativeSweep, 2 * negatives_.size());
}

void CacheEntries::Remove(Entry* entry, Dropped& dropped) {
  // Out of the set first: its key views the stack's name, which erasing the stack frees.
  dropped.push_back(std::move(entries_.extract(entries_.find(entry->key())).value()));
  StackState& stack = *entry->stack_state;
  stack.lru.Remove(entry);
  stack.bytes -= entry->bytes;
  global_lru_.Remove(entry);
  bytes_ -= entry->bytes;
  if (entry->value == nullptr) negatives_.erase(entry);
  if (stack.lru.empty()) stacks_.erase(stacks_.find(stack.name));
}

void CacheEntries::Touch(Entry& entry) {
  global_lru_.MoveToFront(&entry);
  entry.stack_state->lru.MoveToFront(&entry);
}

void CacheEntries::Clear(Dropped& dropped) {
  dropped.reserve(dropped.size() + entries_.size());
  while (!entries_.empty()) {
    dropped.push_back(std::move(entries_.extract(entries_.begin()).value()));
  }
  stacks_.clear();
  global_lru_.Clear();
  negatives_.clear();
  next_negative_sweep_ = kFirstNegativeSweep;
  bytes_ = 0;
}

}  // namespace cache_internal
}  // namespace secret_resolver
