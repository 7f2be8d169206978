// Fuzz target for secret URI parsing and name/ref key validation (resolver/secret_uri.h).
//
// Invariants, checked with abort():
// - ParseSecretUri accepts exactly what a slow, obviously correct reference checker accepts;
//   an accepted name re-validates, and "secret://" + name round-trips to the input.
// - ValidateSecretName and ValidateRefKey agree with their reference checkers.
// - Every error is INVALID_ARGUMENT, starts with "<what>: byte N: " where N is a byte position
//   inside (or just past the end of) the input, and is short printable ASCII (so a long input
//   is never echoed); a URI error is its name error shifted by the scheme length.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "resolver/secret_uri.h"

namespace {

using secret_resolver::kSecretScheme;

// Names the broken invariant's line (never the input, which a report may carry elsewhere).
#define Check(condition)                                                           \
  do {                                                                             \
    if (!(condition)) {                                                            \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                \
    }                                                                              \
  } while (false)

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// DNS-1123 subdomain segments joined by '/', written as directly from the rules as possible.
bool ReferenceNameOk(absl::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (absl::string_view segment : absl::StrSplit(name, '/')) {
    if (segment.empty()) return false;
    for (absl::string_view label : absl::StrSplit(segment, '.')) {
      if (label.empty() || label.size() > 63) return false;
      if (!IsAlnum(label.front()) || !IsAlnum(label.back())) return false;
      for (char c : label) {
        if (!IsAlnum(c) && c != '-') return false;
      }
    }
  }
  return true;
}

bool ReferenceRefKeyOk(absl::string_view key) {
  if (key.empty() || key.size() > 253) return false;
  for (char c : key) {
    const bool ok = IsAlnum(c) || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Checks the shape of an error and returns the byte position it names.
size_t CheckError(const absl::Status& status, absl::string_view what, absl::string_view input) {
  Check(status.code() == absl::StatusCode::kInvalidArgument);
  absl::string_view message = status.message();
  Check(message.size() < 200);
  for (char c : message) Check(c >= 0x20 && c < 0x7f);
  const std::string prefix = absl::StrCat(what, ": byte ");
  Check(message.substr(0, prefix.size()) == prefix);
  message.remove_prefix(prefix.size());
  const size_t colon = message.find(": ");
  Check(colon != absl::string_view::npos);
  size_t position = 0;
  Check(absl::SimpleAtoi(message.substr(0, colon), &position));
  Check(position <= input.size());
  return position;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  // As a URI.
  const absl::StatusOr<absl::string_view> name = secret_resolver::ParseSecretUri(input);
  const bool has_scheme = input.substr(0, kSecretScheme.size()) == kSecretScheme;
  const absl::string_view rest = has_scheme ? input.substr(kSecretScheme.size()) : input;
  const absl::Status rest_status = secret_resolver::ValidateSecretName(rest);
  if (name.ok()) {
    Check(has_scheme);
    Check(*name == rest);
    Check(absl::StrCat(kSecretScheme, *name) == input);
    Check(rest_status.ok());
    Check(ReferenceNameOk(*name));
  } else {
    const size_t position = CheckError(name.status(), "secret URI", input);
    if (has_scheme) {
      Check(!ReferenceNameOk(rest));
      Check(position >= kSecretScheme.size());
      Check(position - kSecretScheme.size() == CheckError(rest_status, "secret name", rest));
    } else {
      Check(position == 0);
    }
  }

  // As a bare name and as a ref key.
  const absl::Status name_status = secret_resolver::ValidateSecretName(input);
  Check(name_status.ok() == ReferenceNameOk(input));
  if (!name_status.ok()) CheckError(name_status, "secret name", input);
  const absl::Status key_status = secret_resolver::ValidateRefKey(input);
  Check(key_status.ok() == ReferenceRefKeyOk(input));
  if (!key_status.ok()) {
    const size_t position = CheckError(key_status, "ref key", input);
    Check(position < input.size() || input.empty());
  }
  return 0;
}
