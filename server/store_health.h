// StoreHealth: what the sidecar knows of its store's health (reachable, damaged, its change
// feed working), for the operator's log, the metrics and /readyz (docs/server.md, "Store
// health").
//
// Two inputs: Probe(), the readiness check's call of SecretStore::CheckHealth (run on the admin
// server's readiness thread), and OnChange(), the store's Watch events. Each kind of trouble
// gets one warning line when it starts and one info line when it ends, never one per probe:
//   - the store failing its health check (unreachable, timed out: "store unavailable"; damaged
//     data, DATA_LOSS: "store data damaged") and passing it again ("store healthy again");
//   - the change feed lost ("store change feed lost": cached values are re-read after
//     cache.unconfirmed_grace) and back ("store change feed restored");
//   - a resync while the feed works (e.g. the SQLite file replaced): one warning line.
// Metrics: secret_resolver_store_up and secret_resolver_change_feed_up (gauges, 1 or 0),
// secret_resolver_store_incidents_total{kind} (kind: unavailable, damaged, change_feed_lost,
// resync; each starts at zero).
//
// Thread safety: all methods may be called from any thread, concurrently.
#ifndef SECRET_RESOLVER_SERVER_STORE_HEALTH_H_
#define SECRET_RESOLVER_SERVER_STORE_HEALTH_H_

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "resolver/secret_store.h"
#include "server/json_log.h"
#include "server/sidecar_metrics.h"

namespace secret_resolver {

class StoreHealth {
 public:
  // Registers the gauges on `metrics`. `store`, `log` and `metrics` must outlive this object;
  // the gauges read it at every scrape, so it must also outlive the registry's readers.
  StoreHealth(SecretStore* store, JsonLogger* log, SidecarMetrics* metrics);

  StoreHealth(const StoreHealth&) = delete;
  StoreHealth& operator=(const StoreHealth&) = delete;

  // Runs the store's CheckHealth (blocking, bounded by the store's own timeout), logs and
  // counts a change of state, and returns the result for readiness: OK, or UNAVAILABLE /
  // DATA_LOSS with a message that starts "store unavailable: " or "store data damaged: ".
  absl::Status Probe();

  // Takes a feed_lost or resync event from the store's Watch (changes to single secrets are
  // ignored). Never blocks on the store.
  void OnChange(const SecretChange& change);

  // Trouble that does not stop serving, for /readyz's body while it answers 200: today the
  // lost change feed. Empty when there is none.
  std::vector<std::string> Notes() const;

 private:
  SecretStore* const store_;
  JsonLogger* const log_;
  SidecarMetrics* const metrics_;

  std::atomic<bool> store_up_{true};
  std::atomic<bool> feed_up_{true};

  mutable std::mutex mu_;
  absl::StatusCode probe_failure_ = absl::StatusCode::kOk;  // guarded by mu_
  std::string feed_lost_detail_;                            // guarded by mu_
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_STORE_HEALTH_H_
