// The caller-side log redactor (contract.md section 7): replaces every resolved secret value,
// and its common encodings, with that secret's placeholder in text a logger writes.
//
// A Redactor is built once from the secrets a workflow run resolved. It compiles, for each value,
// the patterns listed in client/redactor/patterns.h (the value; standard and URL base64 with and
// without padding at offsets 0, 1 and 2; percent-encoding; JSON string escaping; each line of a
// multi-line value) into one multi-pattern matcher. Matches are resolved leftmost-longest: the
// match that starts first wins, and of those starting at the same byte the longest wins. Bytes
// outside matches are copied unchanged, byte for byte.
//
// Engine: a sampled 4-byte-window prefilter, written here rather than taken from Hyperscan.
// The 4-byte window at every S-th position of the text (S = shortest pattern length - 3, at most
// 16) is probed in an L1-resident blocked Bloom filter built from the windows at pattern offsets
// 0..S-1; the rare hits are looked up in an exact window table and verified with memcmp. Secrets
// are long, so sampling every 13th byte or so does a fraction of a byte-at-a-time matcher's
// work, on par with Hyperscan (figures in docs/redactor.md) without Hyperscan's dependency or
// its unwipeable copy of the patterns. Patterns shorter than 4 bytes (only values of 1-3 bytes)
// are checked at every position through a first-byte table. docs/redactor.md has the details.
//
// Streaming: RedactionStream holds back the bytes that could still be the start of a match
// until enough text has arrived to decide (at most 2 * max_pattern_length() bytes, fewer than
// max_pattern_length() right after EmitDecided()), so a value
// split across Write() calls is still replaced. Its output equals RedactAll() of everything
// written between two Flush() calls.
//
// Secret material: pattern bytes live in one SecretBytes arena and the window tables are wiped
// with OPENSSL_cleanse when the Redactor is destroyed; RedactionStream wipes the bytes it holds
// back. Temporary encodings built while compiling are wiped before they are freed.
//
// Thread safety: a Redactor is immutable after Create() and may be shared by any number of
// threads (hold it by std::shared_ptr<const Redactor>). A RedactionStream is not thread-safe:
// one writer at a time, or external locking. Adapters for std::ostream and line-based loggers
// are in client/redactor/log_adapters.h.
#ifndef SECRET_RESOLVER_CLIENT_REDACTOR_REDACTOR_H_
#define SECRET_RESOLVER_CLIENT_REDACTOR_REDACTOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "resolver/secret_bytes.h"

namespace secret_resolver::client {

// One resolved secret: its value and what to write in its place (ResolvedSecret.value and
// ResolvedSecret.redaction.placeholder in the API).
struct RedactionSecret {
  SecretBytes value;
  std::string placeholder;
};

class Redactor {
 public:
  // Compiles the patterns of every secret. Secrets with an empty value contribute no pattern.
  // When two secrets yield the same pattern, the earlier secret's placeholder is used. Never
  // fails; a Redactor with no patterns copies text unchanged.
  static std::shared_ptr<const Redactor> Create(std::vector<RedactionSecret> secrets);

  ~Redactor();
  Redactor(const Redactor&) = delete;
  Redactor& operator=(const Redactor&) = delete;

  // `text` with every match replaced by its secret's placeholder (leftmost-longest).
  std::string RedactAll(absl::string_view text) const;
  // The same, appended to `out`, so a caller can reuse one buffer for many texts.
  void RedactAllTo(absl::string_view text, std::string* out) const;

  // Number of distinct patterns compiled, and the length of the longest (0 if none).
  size_t pattern_count() const { return patterns_.size(); }
  size_t max_pattern_length() const { return max_pattern_length_; }

  // Internal to the engine and RedactionStream (public so the streaming code needs no friend).
  struct Match {
    size_t start;
    uint32_t length;
    uint32_t pattern;
  };
  // Redacts text[0, decide_limit) (and any match that starts there and runs past it), passing
  // the result to `emit` in pieces: runs of `text` between matches, and placeholders. Returns
  // how many bytes of `text` were consumed: at least decide_limit, more when the last match ran
  // past it. `matches` is scratch space.
  size_t RedactPrefix(absl::string_view text, size_t decide_limit,
                      absl::FunctionRef<void(absl::string_view)> emit,
                      std::vector<Match>* matches) const;

 private:
  struct Pattern {
    uint32_t offset;  // into arena_
    uint32_t length;
    uint32_t secret;  // index into placeholders_
  };
  struct WindowEntry {
    uint32_t window;  // the 4 pattern bytes at `shift`, little-endian
    uint32_t pattern;
    uint32_t shift;
  };

  Redactor() = default;
  void Compile(std::vector<RedactionSecret> secrets);
  // Appends every match starting in [0, limit) that lies within `text`, in no particular order.
  void FindMatches(absl::string_view text, size_t limit, std::vector<Match>* matches) const;
  void FindShortMatches(absl::string_view text, size_t limit, std::vector<Match>* matches) const;
  bool Verify(absl::string_view text, size_t start, uint32_t pattern) const;

  std::vector<std::string> placeholders_;
  SecretBytes arena_;  // all pattern bytes, concatenated
  std::vector<Pattern> patterns_;
  size_t max_pattern_length_ = 0;

  // Prefilter over patterns of 4 bytes or more.
  size_t stride_ = 1;
  std::vector<uint64_t> bitmap_;         // 1 << kBitmapBits bits, indexed by window hash
  std::vector<uint32_t> bucket_starts_;  // CSR index of window_entries_ by hash bucket
  std::vector<WindowEntry> window_entries_;
  int bucket_shift_ = 64;

  // Patterns of 1-3 bytes, by first byte.
  bool has_short_patterns_ = false;
  std::vector<uint32_t> short_by_first_byte_[256];
};

// Receives redacted output from a RedactionStream. Called only with non-empty text.
using ChunkSink = std::function<void(absl::string_view redacted)>;

// A redacting pipe for one log stream: Write() any chunks, Flush() at the end of a record.
class RedactionStream {
 public:
  // `redactor` must not be null. `sink` receives the redacted bytes in order.
  RedactionStream(std::shared_ptr<const Redactor> redactor, ChunkSink sink);
  // Flushes.
  ~RedactionStream();
  RedactionStream(const RedactionStream&) = delete;
  RedactionStream& operator=(const RedactionStream&) = delete;

  // Redacts `chunk` and passes to the sink every byte that can be decided now. Bytes that might
  // begin a match (at most 2 * max_pattern_length() of them) wait for the next Write or Flush.
  void Write(absl::string_view chunk);

  // Passes to the sink every byte that can be decided now, so that fewer than
  // max_pattern_length() bytes stay held back (Write alone may hold back up to twice that, to
  // rescan less). For a caller that must answer each chunk with as much output as it can, like
  // the sidecar's RedactLogs.
  void EmitDecided();

  // Treats the text held back as complete: redacts it and passes it to the sink. A value split
  // by a Flush() is not matched across it, so flush at record (line) boundaries.
  void Flush();

  // Bytes currently held back.
  size_t pending_size() const { return pending_.size(); }

 private:
  void Process(bool final);
  void Emit(absl::string_view piece) {
    if (!piece.empty()) sink_(piece);
  }

  std::shared_ptr<const Redactor> redactor_;
  ChunkSink sink_;
  std::string pending_;  // undecided bytes, wiped when dropped
  std::vector<Redactor::Match> matches_;
};

}  // namespace secret_resolver::client

#endif  // SECRET_RESOLVER_CLIENT_REDACTOR_REDACTOR_H_
