// ScaleCluster: the sidecar processes of a scale run (tests/scale/scale_config.h), started on a
// PostgreSQL database that already holds the run's secrets: in direct mode `sidecars` processes
// on the database, in tiered mode `tiers` central ones on it and `sidecars` on those (sidecar i
// on central i % tiers). Each is the real binary (tests/integration/sidecar_process.h) with a
// config of its own, a Unix socket the load calls, and an admin port for /metrics.
//
// Thread safety: use from one thread (the one that started it: sidecar_process.h).
#ifndef SECRET_RESOLVER_TESTS_SCALE_SCALE_CLUSTER_H_
#define SECRET_RESOLVER_TESTS_SCALE_SCALE_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/integration/sidecar_process.h"
#include "tests/scale/scale_config.h"

namespace secret_resolver {
namespace testing {

class ScaleCluster {
 public:
  // Writes every config, checks the first of each kind with the binary's --check-config (a
  // binary that does not know a key refuses it there, with its own message), then starts the
  // central sidecars and the sidecars, one after another. Errors: FAILED_PRECONDITION from
  // CheckConfig or a process that exits at start-up, DEADLINE_EXCEEDED from one that does not
  // listen (sidecar_process.h); INVALID_ARGUMENT from ValidateScaleOptions.
  static absl::StatusOr<std::unique_ptr<ScaleCluster>> Start(const ScaleOptions& options,
                                                             const ScaleFiles& files,
                                                             const std::string& dsn);

  // Stops every process (Stop()).
  ~ScaleCluster();

  // SIGTERM to every process at once, then waits for each. Returns how many did not exit 0.
  int Stop();

  // The sidecars the load calls (not the central ones).
  const std::vector<std::unique_ptr<SidecarProcess>>& sidecars() const { return sidecars_; }
  // The central sidecars (tiered mode; empty in direct mode).
  const std::vector<std::unique_ptr<SidecarProcess>>& tiers() const { return tiers_; }

  // The sidecars' gRPC targets, in order.
  std::vector<std::string> Targets() const;

 private:
  ScaleCluster() = default;

  std::vector<std::unique_ptr<SidecarProcess>> tiers_;
  std::vector<std::unique_ptr<SidecarProcess>> sidecars_;
};

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_SCALE_SCALE_CLUSTER_H_
