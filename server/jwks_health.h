// JwksHealth: whether the token signing keys (a JWKS file or URL, server/auth/jwks_source.h)
// still load, told by the source's LoadHook. A source that stops loading keeps its previous
// keys, so tokens keep verifying and nothing else shows the trouble: this logs one warning line
// when loads start failing and one info line when they succeed again (not one per attempt),
// counts every failure in secret_resolver_jwks_refresh_failures_total{reason}, and backs the
// gauges secret_resolver_jwks_up and secret_resolver_jwks_skipped_keys. It also logs the key
// ids in use ("kids") at the first load and whenever a load changes them, so that an operator
// who rotated keys sees the sidecar take them (a refresh that changes nothing logs nothing).
//
// Thread safety: Record and the accessors may be called from any thread.
#ifndef SECRET_RESOLVER_SERVER_JWKS_HEALTH_H_
#define SECRET_RESOLVER_SERVER_JWKS_HEALTH_H_

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/auth/jwks_source.h"
#include "server/json_log.h"
#include "server/sidecar_metrics.h"

namespace secret_resolver {

// The `reason` label of a failed load: "missing" (NOT_FOUND: no such file), "unreadable"
// (FAILED_PRECONDITION, PERMISSION_DENIED: cannot open or read, not a regular file), "invalid"
// (INVALID_ARGUMENT: does not parse, too large, no usable key), "unreachable" (UNAVAILABLE,
// DEADLINE_EXCEEDED: a URL that does not answer, or answers with an HTTP error), else "other".
absl::string_view JwksFailureReason(absl::StatusCode code);

class JwksHealth {
 public:
  // `metrics` and `log` must outlive this object. Starts up (a failing first load is reported
  // as trouble starting).
  JwksHealth(SidecarMetrics* metrics, JsonLogger* log);

  JwksHealth(const JwksHealth&) = delete;
  JwksHealth& operator=(const JwksHealth&) = delete;

  // A load's outcome, as a LoadHook gets it.
  void Record(const auth::JwksLoad& load);

  // Whether the latest load succeeded.
  bool up() const;
  // Unusable keys skipped in the document now in use.
  size_t skipped_keys() const;

 private:
  SidecarMetrics* const metrics_;
  JsonLogger* const log_;
  mutable std::mutex mu_;
  bool up_ = true;           // guarded by mu_
  size_t skipped_keys_ = 0;  // guarded by mu_
  std::vector<std::string> kids_;  // guarded by mu_: of the last document loaded
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_JWKS_HEALTH_H_
