#include "server/jwks_health.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_join.h"

namespace secret_resolver {

absl::string_view JwksFailureReason(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kNotFound:
      return "missing";
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
      return "unreadable";
    case absl::StatusCode::kInvalidArgument:
      return "invalid";
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return "unreachable";
    default:
      return "other";
  }
}

JwksHealth::JwksHealth(SidecarMetrics* metrics, JsonLogger* log) : metrics_(metrics), log_(log) {}

void JwksHealth::Record(const auth::JwksLoad& load) {
  const absl::Status& status = load.status;
  // Logged under the lock, so that a start and an end line cannot come out in the wrong order.
  std::lock_guard<std::mutex> lock(mu_);
  if (!status.ok()) {
    const absl::string_view reason = JwksFailureReason(status.code());
    metrics_->RecordJwksFailure(reason);
    if (up_) {
      up_ = false;
      log_->Warning(
          "the token signing keys stopped loading; the previous keys stay in use until a load "
          "succeeds",
          {LogField("reason", reason), LogField("error", status)});
    }
    return;
  }
  skipped_keys_ = load.skipped_keys;
  if (!up_) {
    up_ = true;
    log_->Info("the token signing keys load again", {LogField("skipped_keys", skipped_keys_)});
  }
  if (load.kids != kids_) {
    kids_ = load.kids;
    // A line of bounded length, whatever the document holds; `keys` counts them all.
    constexpr size_t kMaxKidsLogged = 32;
    std::string kids = absl::StrJoin(
        kids_.begin(), kids_.begin() + std::min(kids_.size(), kMaxKidsLogged), ",",
        [](std::string* out, const std::string& kid) { out->append(kid.substr(0, 64)); });
    if (kids_.size() > kMaxKidsLogged) kids += ",...";
    log_->Info("the token signing keys in use changed",
               {LogField("kids", kids), LogField("keys", kids_.size()),
                LogField("skipped_keys", skipped_keys_)});
  }
}

bool JwksHealth::up() const {
  std::lock_guard<std::mutex> lock(mu_);
  return up_;
}

size_t JwksHealth::skipped_keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  return skipped_keys_;
}

}  // namespace secret_resolver
