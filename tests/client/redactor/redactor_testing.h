// Helpers shared by the redactor tests: building redactors from fake secrets, a reference
// redactor (leftmost-longest by brute force over the same patterns), streaming through random
// chunks, and a text comparison whose failure message gives sizes and the first differing
// offset but never the text, so a failing test prints no secret.
//
// Thread safety: test-only helpers for one thread.
#ifndef SECRET_RESOLVER_TESTS_CLIENT_REDACTOR_REDACTOR_TESTING_H_
#define SECRET_RESOLVER_TESTS_CLIENT_REDACTOR_REDACTOR_TESTING_H_

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "client/redactor/patterns.h"
#include "client/redactor/redactor.h"

namespace secret_resolver::client::testing {

struct FakeSecret {
  std::string value;  // a clearly fake value, e.g. "TEST-FAKE-SECRET-0001"
  std::string placeholder;
};

inline std::vector<RedactionSecret> ToRedactionSecrets(const std::vector<FakeSecret>& fakes) {
  std::vector<RedactionSecret> secrets;
  for (const FakeSecret& fake : fakes) {
    secrets.push_back(RedactionSecret{SecretBytes(fake.value), fake.placeholder});
  }
  return secrets;
}

inline std::shared_ptr<const Redactor> MakeRedactor(const std::vector<FakeSecret>& fakes) {
  return Redactor::Create(ToRedactionSecrets(fakes));
}

// Brute force: at each position the longest pattern that matches there, else copy one byte.
class ReferenceRedactor {
 public:
  explicit ReferenceRedactor(const std::vector<FakeSecret>& fakes) {
    absl::flat_hash_set<std::string> seen;
    for (const FakeSecret& fake : fakes) {
      for (const SecretBytes& pattern : DeriveRedactionPatterns(fake.value)) {
        std::string text(pattern.reveal());
        if (seen.insert(text).second) patterns_.emplace_back(text, fake.placeholder);
      }
    }
  }

  std::string RedactAll(absl::string_view text) const {
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
      const std::pair<std::string, std::string>* best = nullptr;
      for (const auto& candidate : patterns_) {
        if (absl::string_view(text).substr(i).substr(0, candidate.first.size()) ==
                candidate.first &&
            (best == nullptr || candidate.first.size() > best->first.size())) {
          best = &candidate;
        }
      }
      if (best == nullptr) {
        out.push_back(text[i++]);
      } else {
        out.append(best->second);
        i += best->first.size();
      }
    }
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> patterns_;  // pattern, placeholder
};

// Writes `text` through a RedactionStream in the given pieces, then flushes.
inline std::string StreamPieces(std::shared_ptr<const Redactor> redactor,
                                const std::vector<absl::string_view>& pieces) {
  std::string out;
  {
    RedactionStream stream(std::move(redactor), [&out](absl::string_view redacted) {
      out.append(redacted.data(), redacted.size());
    });
    for (absl::string_view piece : pieces) stream.Write(piece);
    stream.Flush();
  }
  return out;
}

// Splits `text` at random points (piece sizes 0..max_piece) and streams it.
inline std::string StreamRandomChunks(std::shared_ptr<const Redactor> redactor,
                                      absl::string_view text, std::mt19937_64* rng,
                                      size_t max_piece) {
  std::vector<absl::string_view> pieces;
  size_t i = 0;
  while (i < text.size()) {
    const size_t n = std::uniform_int_distribution<size_t>(0, max_piece)(*rng);
    pieces.push_back(text.substr(i, n));
    i += std::min(n, text.size() - i);
  }
  return StreamPieces(std::move(redactor), pieces);
}

// Equality that never prints either text.
inline ::testing::AssertionResult SameText(absl::string_view actual, absl::string_view expected) {
  if (actual == expected) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < actual.size() && i < expected.size() && actual[i] == expected[i]) ++i;
  return ::testing::AssertionFailure()
         << "texts differ (contents not printed): actual size " << actual.size()
         << ", expected size " << expected.size() << ", first difference at offset " << i;
}

inline bool Contains(absl::string_view haystack, absl::string_view needle) {
  return haystack.find(needle) != absl::string_view::npos;
}

// How many times `needle` occurs in `haystack`, without overlaps.
inline size_t Count(absl::string_view haystack, absl::string_view needle) {
  size_t count = 0;
  for (size_t at = haystack.find(needle); at != absl::string_view::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

}  // namespace secret_resolver::client::testing

#endif  // SECRET_RESOLVER_TESTS_CLIENT_REDACTOR_REDACTOR_TESTING_H_
