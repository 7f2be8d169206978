#include "server/store_health.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace secret_resolver {
namespace {

// What a failed health check means for serving: damaged data, or a store that cannot answer.
bool Damaged(absl::StatusCode code) { return code == absl::StatusCode::kDataLoss; }

}  // namespace

StoreHealth::StoreHealth(SecretStore* store, JsonLogger* log, SidecarMetrics* metrics)
    : store_(store), log_(log), metrics_(metrics) {
  metrics->AddStoreHealthGauges([this] { return store_up_.load() ? 1.0 : 0.0; },
                                [this] { return feed_up_.load() ? 1.0 : 0.0; });
}

absl::Status StoreHealth::Probe() {
  const absl::Status status = store_->CheckHealth();
  const absl::StatusCode code = status.code();
  absl::StatusCode before;
  {
    std::lock_guard<std::mutex> lock(mu_);
    before = probe_failure_;
    probe_failure_ = code;
  }
  store_up_.store(status.ok());
  // A change of kind (unavailable to damaged, or back) is a new incident; a different code of
  // the same kind (UNAVAILABLE, then DEADLINE_EXCEEDED) is the same one.
  const bool changed = status.ok() != (before == absl::StatusCode::kOk) ||
                       (!status.ok() && Damaged(code) != Damaged(before));
  if (changed && status.ok()) {
    log_->Info("store healthy again");
  } else if (changed) {
    metrics_->RecordStoreIncident(Damaged(code) ? "damaged" : "unavailable");
    log_->Warning(Damaged(code) ? "store data damaged" : "store unavailable",
                  {LogField("error", status)});
  }
  if (status.ok()) return status;
  return absl::Status(code, absl::StrCat(Damaged(code) ? "store data damaged: "
                                                       : "store unavailable: ",
                                         status.message()));
}

void StoreHealth::OnChange(const SecretChange& change) {
  if (change.feed_lost) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!feed_up_.load()) return;
      feed_up_.store(false);
      feed_lost_detail_ = change.detail;
    }
    metrics_->RecordStoreIncident("change_feed_lost");
    log_->Warning("store change feed lost; cached values are re-read from the store before use "
                  "once older than cache.unconfirmed_grace",
                  {LogField("detail", change.detail)});
    return;
  }
  if (!change.resync) return;
  bool was_lost;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_lost = !feed_up_.load();
    feed_up_.store(true);
    feed_lost_detail_.clear();
  }
  if (was_lost) {
    log_->Info("store change feed restored; the cache was dropped",
               {LogField("detail", change.detail)});
    return;
  }
  metrics_->RecordStoreIncident("resync");
  log_->Warning("store changes may have been missed; the cache was dropped",
                {LogField("detail", change.detail)});
}

std::vector<std::string> StoreHealth::Notes() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (feed_up_.load()) return {};
  return {absl::StrCat("store change feed lost (", feed_lost_detail_,
                       "); serving continues, cached values are re-read after "
                       "cache.unconfirmed_grace")};
}

}  // namespace secret_resolver
