// Fuzz target for the YAML configuration loader (server/config.h): ParseConfigYaml, then the
// defaults and the cross-field rules, as the sidecar and `--check-config` run them.
//
// Invariants, checked with abort():
// - nothing crashes or throws, whatever the bytes (yaml-cpp throws; the loader must not);
// - a parse error is INVALID_ARGUMENT, printable ASCII (whatever bytes the input holds), starts
//   with the source's name, and no piece of it between "; " separators (outside quoted values)
//   is empty;
// - ApplyDefaults is idempotent, and ValidateConfig answers OK or INVALID_ARGUMENT, its message
//   printable ASCII too.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "server/config.h"

namespace {

#define Check(condition)                                                                      \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (false)

// Configuration files are small; the loader refuses files over 1 MiB before parsing.
constexpr size_t kMaxInput = 64 << 10;
constexpr absl::string_view kSource = "fuzz.yaml";

// A parse error's message split at "; " outside double quotes: a quoted value is escaped (a quote
// inside it is \") and may itself hold "; ", or "; ; ".
std::vector<absl::string_view> Pieces(absl::string_view message) {
  std::vector<absl::string_view> out;
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i < message.size(); ++i) {
    if (quoted && message[i] == '\\') {
      ++i;
    } else if (message[i] == '"') {
      quoted = !quoted;
    } else if (!quoted && message.substr(i, 2) == "; ") {
      out.push_back(message.substr(start, i - start));
      start = i + 2;
      ++i;
    }
  }
  out.push_back(message.substr(start));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInput) return 0;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<secretresolver::config::v1::Config> config =
      secret_resolver::ParseConfigYaml(text, kSource);
  if (!config.ok()) {
    Check(config.status().code() == absl::StatusCode::kInvalidArgument);
    // Every problem starts with the source; a problem's own text may hold "; " too ("unknown
    // field; expected one of: ..."), so a piece that does not must at least not be empty.
    Check(absl::StartsWith(config.status().message(), kSource));
    for (char c : config.status().message()) Check(c >= 0x20 && c < 0x7f);
    for (absl::string_view problem : Pieces(config.status().message())) {
      Check(!problem.empty());
    }
    return 0;
  }
  secretresolver::config::v1::Config once = *config;
  secret_resolver::ApplyDefaults(&once);
  secretresolver::config::v1::Config twice = once;
  secret_resolver::ApplyDefaults(&twice);
  Check(once.SerializeAsString() == twice.SerializeAsString());
  const absl::Status valid = secret_resolver::ValidateConfig(once);
  Check(valid.ok() || valid.code() == absl::StatusCode::kInvalidArgument);
  for (char c : valid.message()) Check(c >= 0x20 && c < 0x7f);
  return 0;
}
