#include "client/redactor/redactor.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include <openssl/crypto.h>

#include "absl/container/flat_hash_set.h"
#include "client/redactor/patterns.h"

namespace secret_resolver::client {
namespace {

// The prefilter is a blocked Bloom filter: each window sets two bits of one 64-bit word, so a
// probe is one load and a mask test. 2^12 words = 32 KiB stay in L1 while the text streams past.
constexpr int kBloomWordBits = 12;
constexpr uint64_t kHashMultiplier = 0x9E3779B97F4A7C15ull;
constexpr size_t kMaxStride = 16;
constexpr size_t kWindow = 4;
constexpr size_t kBlockBytes = size_t{128} << 10;

inline uint32_t LoadWindow(const char* p) {
  uint32_t window;
  std::memcpy(&window, p, sizeof(window));
  return window;
}

// The top bits of a 64-bit product depend on every bit of the window.
inline uint64_t HashWindow(uint32_t window) { return uint64_t{window} * kHashMultiplier; }
inline uint64_t BloomWord(uint64_t hash) { return hash >> (64 - kBloomWordBits); }
inline uint64_t BloomMask(uint64_t hash) {
  return (uint64_t{1} << ((hash >> 40) & 63)) | (uint64_t{1} << ((hash >> 34) & 63));
}

// Wipes a string's whole buffer (capacity, not just size) and empties it.
void WipeString(std::string* s) {
  s->resize(s->capacity());
  OPENSSL_cleanse(s->data(), s->size());
  s->clear();
}

// Appends to `buffer` without leaving an unwiped copy behind when it grows.
void AppendWiping(std::string* buffer, absl::string_view bytes) {
  if (buffer->size() + bytes.size() > buffer->capacity()) {
    std::string grown;
    grown.reserve(std::max(2 * buffer->capacity(), buffer->size() + bytes.size()));
    grown.append(*buffer);
    WipeString(buffer);
    buffer->swap(grown);
  }
  buffer->append(bytes.data(), bytes.size());
}

// Removes the first `n` bytes of `buffer`, wiping the bytes the shorter content vacates.
void EraseWiping(std::string* buffer, size_t n) {
  if (n == 0) return;
  const size_t old_size = buffer->size();
  const size_t new_size = old_size - n;
  std::memmove(buffer->data(), buffer->data() + n, new_size);
  OPENSSL_cleanse(buffer->data() + new_size, old_size - new_size);
  buffer->resize(new_size);
}

}  // namespace

std::shared_ptr<const Redactor> Redactor::Create(std::vector<RedactionSecret> secrets) {
  std::shared_ptr<Redactor> redactor(new Redactor());
  redactor->Compile(std::move(secrets));
  return redactor;
}

Redactor::~Redactor() {
  if (!window_entries_.empty()) {
    OPENSSL_cleanse(window_entries_.data(), window_entries_.size() * sizeof(WindowEntry));
  }
  if (!bitmap_.empty()) OPENSSL_cleanse(bitmap_.data(), bitmap_.size() * sizeof(uint64_t));
}

void Redactor::Compile(std::vector<RedactionSecret> secrets) {
  // Distinct patterns in secret order; the first secret to yield a pattern owns it.
  std::vector<std::pair<SecretBytes, uint32_t>> derived;
  absl::flat_hash_set<absl::string_view> seen;  // views into `derived`'s heap buffers
  for (size_t i = 0; i < secrets.size(); ++i) {
    placeholders_.push_back(std::move(secrets[i].placeholder));
    for (SecretBytes& pattern : DeriveRedactionPatterns(secrets[i].value.reveal())) {
      if (!seen.insert(pattern.reveal()).second) continue;
      derived.emplace_back(std::move(pattern), static_cast<uint32_t>(i));
    }
  }
  seen.clear();

  size_t total = 0;
  for (const auto& [pattern, secret] : derived) total += pattern.size();
  std::string arena;
  arena.reserve(total);
  size_t min_long_length = SIZE_MAX;
  for (const auto& [pattern, secret] : derived) {
    patterns_.push_back(Pattern{static_cast<uint32_t>(arena.size()),
                                static_cast<uint32_t>(pattern.size()), secret});
    arena.append(pattern.reveal().data(), pattern.size());
    max_pattern_length_ = std::max(max_pattern_length_, pattern.size());
    if (pattern.size() >= kWindow) min_long_length = std::min(min_long_length, pattern.size());
  }
  derived.clear();  // wipes the per-pattern copies
  arena_ = SecretBytes(arena);
  WipeString(&arena);
  const char* bytes = arena_.reveal().data();

  // Short patterns (1-3 bytes) by first byte.
  for (uint32_t p = 0; p < patterns_.size(); ++p) {
    if (patterns_[p].length >= kWindow) continue;
    short_by_first_byte_[static_cast<unsigned char>(bytes[patterns_[p].offset])].push_back(p);
    has_short_patterns_ = true;
  }
  if (min_long_length == SIZE_MAX) return;

  // Every pattern of at least stride_ + 3 bytes has a window starting at each of its first
  // stride_ offsets, so sampling every stride_-th text position sees each occurrence once.
  stride_ = std::min(kMaxStride, min_long_length - (kWindow - 1));
  // Window entries are sized exactly and bucketed by a counting sort, so no reallocation or
  // sort buffer leaves an unwiped copy of these secret fragments behind.
  size_t long_patterns = 0;
  for (const Pattern& pattern : patterns_) long_patterns += pattern.length >= kWindow ? 1 : 0;
  std::vector<WindowEntry> unsorted;
  unsorted.reserve(long_patterns * stride_);
  for (uint32_t p = 0; p < patterns_.size(); ++p) {
    if (patterns_[p].length < kWindow) continue;
    for (uint32_t shift = 0; shift < stride_; ++shift) {
      unsorted.push_back(WindowEntry{LoadWindow(bytes + patterns_[p].offset + shift), p, shift});
    }
  }
  bitmap_.assign(size_t{1} << kBloomWordBits, 0);
  int bucket_bits = 1;
  while ((size_t{1} << bucket_bits) < unsorted.size() && bucket_bits < 24) ++bucket_bits;
  bucket_shift_ = 64 - bucket_bits;
  bucket_starts_.assign((size_t{1} << bucket_bits) + 1, 0);
  for (const WindowEntry& entry : unsorted) {
    const uint64_t hash = HashWindow(entry.window);
    bitmap_[BloomWord(hash)] |= BloomMask(hash);
    ++bucket_starts_[(hash >> bucket_shift_) + 1];
  }
  for (size_t b = 1; b < bucket_starts_.size(); ++b) bucket_starts_[b] += bucket_starts_[b - 1];
  window_entries_.resize(unsorted.size());
  std::vector<uint32_t> next(bucket_starts_.begin(), bucket_starts_.end() - 1);
  for (const WindowEntry& entry : unsorted) {
    window_entries_[next[HashWindow(entry.window) >> bucket_shift_]++] = entry;
  }
  OPENSSL_cleanse(unsorted.data(), unsorted.size() * sizeof(WindowEntry));
}

bool Redactor::Verify(absl::string_view text, size_t start, uint32_t pattern) const {
  const Pattern& p = patterns_[pattern];
  return start + p.length <= text.size() &&
         std::memcmp(text.data() + start, arena_.reveal().data() + p.offset, p.length) == 0;
}

void Redactor::FindMatches(absl::string_view text, size_t limit,
                           std::vector<Match>* matches) const {
  const size_t n = text.size();
  limit = std::min(limit, n);
  if (!window_entries_.empty() && n >= kWindow) {
    const char* data = text.data();
    const uint64_t* bitmap = bitmap_.data();
    const size_t stride = stride_;
    // Sampled positions s = 0, stride, 2*stride, ...: an occurrence starting at p < limit
    // contains exactly one of them in [p, p + stride), and its window lies inside the pattern.
    const size_t end = std::min(limit + stride - 1, n - (kWindow - 1));
    auto hit = [&](size_t s) {
      const uint64_t hash = HashWindow(LoadWindow(data + s));
      const uint64_t mask = BloomMask(hash);
      return (bitmap[BloomWord(hash)] & mask) == mask;
    };
    auto check = [&](size_t s) {
      const uint32_t window = LoadWindow(data + s);
      const uint64_t hash = HashWindow(window);
      const uint64_t mask = BloomMask(hash);
      if ((bitmap[BloomWord(hash)] & mask) != mask) return;
      const uint64_t bucket = hash >> bucket_shift_;
      for (uint32_t e = bucket_starts_[bucket]; e < bucket_starts_[bucket + 1]; ++e) {
        const WindowEntry& entry = window_entries_[e];
        if (entry.window != window || entry.shift > s) continue;
        const size_t start = s - entry.shift;
        if (start < limit && Verify(text, start, entry.pattern)) {
          matches->push_back(Match{start, patterns_[entry.pattern].length, entry.pattern});
        }
      }
    };
    size_t s = 0;
    // Four independent probes per iteration; the rare hit is rechecked in full.
    for (; s + 3 * stride < end; s += 4 * stride) {
      const bool any = hit(s) | hit(s + stride) | hit(s + 2 * stride) | hit(s + 3 * stride);
      if (__builtin_expect(any, 0)) {
        check(s);
        check(s + stride);
        check(s + 2 * stride);
        check(s + 3 * stride);
      }
    }
    for (; s < end; s += stride) check(s);
  }
  if (has_short_patterns_) FindShortMatches(text, limit, matches);
}

void Redactor::FindShortMatches(absl::string_view text, size_t limit,
                                std::vector<Match>* matches) const {
  for (size_t s = 0; s < limit; ++s) {
    const auto& candidates = short_by_first_byte_[static_cast<unsigned char>(text[s])];
    for (uint32_t p : candidates) {
      if (Verify(text, s, p)) matches->push_back(Match{s, patterns_[p].length, p});
    }
  }
}

size_t Redactor::RedactPrefix(absl::string_view text, size_t decide_limit,
                              absl::FunctionRef<void(absl::string_view)> emit,
                              std::vector<Match>* matches) const {
  decide_limit = std::min(decide_limit, text.size());
  size_t cursor = 0;  // everything before it has been emitted or replaced
  // Block by block, so each block is copied out while it is still in cache from the scan.
  for (size_t block = 0; block < decide_limit; block += kBlockBytes) {
    const size_t block_end = std::min(decide_limit, block + kBlockBytes);
    matches->clear();
    FindMatches(text.substr(block), block_end - block, matches);
    std::sort(matches->begin(), matches->end(), [](const Match& a, const Match& b) {
      return a.start != b.start ? a.start < b.start : a.length > b.length;
    });
    for (const Match& match : *matches) {
      const size_t start = block + match.start;
      if (start < cursor) continue;  // inside the match already taken
      emit(text.substr(cursor, start - cursor));
      emit(placeholders_[patterns_[match.pattern].secret]);
      cursor = start + match.length;
    }
    if (cursor < block_end) {
      emit(text.substr(cursor, block_end - cursor));
      cursor = block_end;
    }
  }
  return cursor;
}

std::string Redactor::RedactAll(absl::string_view text) const {
  std::string out;
  out.reserve(text.size());
  RedactAllTo(text, &out);
  return out;
}

void Redactor::RedactAllTo(absl::string_view text, std::string* out) const {
  std::vector<Match> matches;
  RedactPrefix(
      text, text.size(),
      [out](absl::string_view piece) { out->append(piece.data(), piece.size()); }, &matches);
}

RedactionStream::RedactionStream(std::shared_ptr<const Redactor> redactor, ChunkSink sink)
    : redactor_(std::move(redactor)), sink_(std::move(sink)) {}

RedactionStream::~RedactionStream() {
  Flush();
  WipeString(&pending_);
}

void RedactionStream::Write(absl::string_view chunk) {
  if (chunk.empty()) return;
  const size_t max_length = redactor_->max_pattern_length();
  if (max_length == 0) {
    sink_(chunk);
    return;
  }
  auto emit = [this](absl::string_view piece) { Emit(piece); };
  if (chunk.size() < 2 * max_length) {
    AppendWiping(&pending_, chunk);
    // Waiting for 2 * max_length bytes makes each byte rescanned at most about once.
    if (pending_.size() >= 2 * max_length) Process(false);
    return;
  }
  // A large chunk is redacted in place, without copying it behind the held-back bytes: first
  // the held-back bytes with just enough of the chunk to decide them, then the chunk itself.
  size_t skip = 0;
  if (!pending_.empty()) {
    const size_t held = pending_.size();
    AppendWiping(&pending_, chunk.substr(0, max_length));
    skip = redactor_->RedactPrefix(pending_, held, emit, &matches_) - held;
    EraseWiping(&pending_, pending_.size());
  }
  const absl::string_view rest = chunk.substr(skip);  // at least max_length bytes
  const size_t consumed =
      redactor_->RedactPrefix(rest, rest.size() - max_length + 1, emit, &matches_);
  AppendWiping(&pending_, rest.substr(consumed));
}

void RedactionStream::EmitDecided() {
  if (!pending_.empty() && pending_.size() >= redactor_->max_pattern_length()) Process(false);
}

void RedactionStream::Flush() {
  if (!pending_.empty()) Process(true);
}

void RedactionStream::Process(bool final) {
  const size_t max_length = redactor_->max_pattern_length();
  // A match starting at p is decided once p + max_length bytes are visible.
  const size_t decide_limit = final ? pending_.size() : pending_.size() - max_length + 1;
  const size_t consumed = redactor_->RedactPrefix(
      pending_, decide_limit, [this](absl::string_view piece) { Emit(piece); }, &matches_);
  EraseWiping(&pending_, consumed);
}

}  // namespace secret_resolver::client
