// CacheEntries: the secret cache's entries, keyed by (stack, name, version), bounded in bytes
// overall and per stack, least recently used out first; and the Entry record itself.
// SecretCache owns one and decides what goes in (fetches, refreshes, single flight); this part
// only keeps and accounts what it is given.
//
// Values never die here: entries that leave (replaced, evicted, swept, removed, cleared) are
// moved to the caller's `Dropped`, which the caller destroys after releasing its lock, because
// releasing a value's last reference wipes it.
//
// Thread safety: none. SecretCache calls every method under its lock.
#ifndef SECRET_RESOLVER_RESOLVER_CACHE_ENTRIES_H_
#define SECRET_RESOLVER_RESOLVER_CACHE_ENTRIES_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/cached_value.h"

namespace secret_resolver {
namespace cache_internal {

// The cache key as views; the strings belong to the record the key is looked up for, so a
// lookup builds no std::string and the key is stored only once. `version` 0 is the newest
// version; any other, that pinned version.
struct KeyView {
  absl::string_view stack;
  absl::string_view name;
  int64_t version = 0;

  friend bool operator==(const KeyView& a, const KeyView& b) {
    return a.version == b.version && a.stack == b.stack && a.name == b.name;
  }
  template <typename H>
  friend H AbslHashValue(H h, const KeyView& k) {
    return H::combine(std::move(h), k.stack, k.name, k.version);
  }
};

struct Entry;
struct StackState;

// An entry's place in one LRU list. The links live inside the entry, so moving it to the front
// on a hit touches no separately allocated node.
struct LruLinks {
  Entry* prev = nullptr;
  Entry* next = nullptr;
};

// An absl::Time in 8 bytes instead of 16: nanoseconds since the Unix epoch, the infinite
// future and past kept as such (a finite time past year 2262 reads as infinite). Entries hold
// two, and every byte of an entry is paid once per cached secret.
class PackedTime {
 public:
  PackedTime() = default;
  PackedTime(absl::Time t)  // NOLINT(google-explicit-constructor): a drop-in for absl::Time
      : nanos_(absl::ToUnixNanos(t)) {}
  operator absl::Time() const {  // NOLINT(google-explicit-constructor)
    if (nanos_ == std::numeric_limits<int64_t>::max()) return absl::InfiniteFuture();
    if (nanos_ == std::numeric_limits<int64_t>::min()) return absl::InfinitePast();
    return absl::FromUnixNanos(nanos_);
  }

 private:
  int64_t nanos_ = 0;
};

// One cached answer for (stack, name, version): a value, or a NOT_FOUND. Laid out to fill
// 128 bytes (a 144-byte malloc block): the stack's name is not here but in its StackState, and
// times are PackedTime.
struct Entry {
  explicit Entry(absl::string_view n, int64_t v = 0) : name(n), version(v) {}
  // Only once CacheEntries::Insert has set stack_state.
  absl::string_view stack() const;
  KeyView key() const { return KeyView{stack(), name, version}; }

  const std::string name;
  const int64_t version;
  // Null for a cached NOT_FOUND; `not_found_message` is then the store's message (out of line:
  // most entries are positive).
  std::shared_ptr<const CachedValue> value;
  std::unique_ptr<const std::string> not_found_message;
  PackedTime expires_at;
  // From here to expires_at, the first hit schedules a refresh. InfiniteFuture: never.
  PackedTime refresh_at = absl::InfiniteFuture();

  // Set by CacheEntries::Insert.
  uint32_t bytes = 0;  // what the entry is charged; an entry is far smaller than 4 GiB
  // Set once a refresh has been scheduled for this entry, so a failing store is not asked again
  // on every hit; a successful refresh replaces the entry and so clears it.
  bool refresh_scheduled = false;
  // Where the entry is accounted and listed, and whose name is its stack. StackState lives in a
  // node_hash_map and is erased only once its last entry is gone, so the pointer stays valid.
  StackState* stack_state = nullptr;
  LruLinks global_links;
  LruLinks stack_links;
};

// A doubly linked list of entries threaded through their `Links` member, most recently used
// first. It does not own the entries.
template <LruLinks Entry::*Links>
class LruList {
 public:
  bool empty() const { return head_ == nullptr; }
  Entry* back() const { return tail_; }

  void PushFront(Entry* e) {
    LruLinks& links = e->*Links;
    links.prev = nullptr;
    links.next = head_;
    if (head_ != nullptr) (head_->*Links).prev = e;
    head_ = e;
    if (tail_ == nullptr) tail_ = e;
  }

  void Remove(Entry* e) {
    LruLinks& links = e->*Links;
    if (links.prev != nullptr) {
      (links.prev->*Links).next = links.next;
    } else {
      head_ = links.next;
    }
    if (links.next != nullptr) {
      (links.next->*Links).prev = links.prev;
    } else {
      tail_ = links.prev;
    }
    links.prev = links.next = nullptr;
  }

  void MoveToFront(Entry* e) {
    if (head_ == e) return;
    Remove(e);
    PushFront(e);
  }

  void Clear() { head_ = tail_ = nullptr; }

 private:
  Entry* head_ = nullptr;
  Entry* tail_ = nullptr;
};

// One stack's share of the cache.
struct StackState {
  // The key of this state in CacheEntries' node map (keys do not move): one copy of a stack's
  // name for all its entries.
  absl::string_view name;
  size_t bytes = 0;
  LruList<&Entry::stack_links> lru;
};

inline absl::string_view Entry::stack() const { return stack_state->name; }

class CacheEntries {
 public:
  using Dropped = std::vector<std::unique_ptr<Entry>>;

  // Holds at most `max_bytes` in all and `stack_limit` for any one stack.
  CacheEntries(size_t max_bytes, size_t stack_limit)
      : max_bytes_(max_bytes), stack_limit_(stack_limit) {}

  // The entry for `key`, or null. The entry stays valid until it leaves (any non-const call).
  Entry* Find(const KeyView& key) const;

  // Caches `entry` for `stack`, replacing the one for its key: first the stack evicts its own
  // least recently used entries down to its share (so a noisy stack evicts itself rather than
  // its neighbours), then the cache as a whole its globally least recently used. An entry
  // larger than the stack's share goes straight to `dropped` (the old one for its key is
  // dropped all the same). Inserting a NOT_FOUND may first sweep out those expired by `now`
  // (see SweepNegatives). `stack` need not outlive the call: the cache keeps its own copy.
  void Insert(absl::string_view stack, std::unique_ptr<Entry> entry, absl::Time now,
              Dropped& dropped);

  // Moves `entry`, which must be in the cache, to `dropped`.
  void Remove(Entry* entry, Dropped& dropped);

  // Marks `entry` most recently used, in its stack and overall.
  void Touch(Entry& entry);

  // Moves every entry to `dropped`.
  void Clear(Dropped& dropped);

  // Bytes charged for the entries held, and their number.
  size_t bytes() const { return bytes_; }
  size_t size() const { return entries_.size(); }
  // Entries evicted to make room since construction (not those replaced, removed or swept).
  uint64_t evictions() const { return evictions_; }

 private:
  // Hashes and compares entries by key, and looks them up by a KeyView.
  struct EntryHash {
    using is_transparent = void;
    size_t operator()(const KeyView& key) const { return absl::HashOf(key); }
    size_t operator()(const std::unique_ptr<Entry>& entry) const {
      return absl::HashOf(entry->key());
    }
  };
  struct EntryEq {
    using is_transparent = void;
    static KeyView Of(const KeyView& key) { return key; }
    static KeyView Of(const std::unique_ptr<Entry>& entry) { return entry->key(); }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return Of(a) == Of(b);
    }
  };

  // Removes every cached NOT_FOUND expired by `now`. An expired positive entry stays (it may
  // yet be served stale); an expired negative one is of no further use, and a stream of
  // unknown names would otherwise keep them until the byte bound evicts them. Called once the
  // negative entries have doubled since the last sweep, so its cost per insert is constant.
  void SweepNegatives(absl::Time now, Dropped& dropped);

  // The number of cached NOT_FOUNDs at which expired ones are first swept out; afterwards,
  // twice the number that survived the last sweep (and never fewer than this).
  static constexpr size_t kFirstNegativeSweep = 64;

  const size_t max_bytes_;
  const size_t stack_limit_;
  // A set keyed by the entries themselves: one pointer per slot (a map from KeyView would
  // spend 40 bytes a slot on a copy of the key).
  absl::flat_hash_set<std::unique_ptr<Entry>, EntryHash, EntryEq> entries_;
  // node_hash_map: entries and Insert hold references across other insertions.
  absl::node_hash_map<std::string, StackState> stacks_;
  LruList<&Entry::global_links> global_lru_;
  // The cached NOT_FOUNDs, for SweepNegatives, which runs when there are next_negative_sweep_
  // of them.
  absl::flat_hash_set<Entry*> negatives_;
  size_t next_negative_sweep_ = kFirstNegativeSweep;
  size_t bytes_ = 0;
  uint64_t evictions_ = 0;
};

}  // namespace cache_internal
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_CACHE_ENTRIES_H_
