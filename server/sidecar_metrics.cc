#include "server/sidecar_metrics.h"

#include <string>

namespace secret_resolver {

SidecarMetrics::SidecarMetrics(MetricsRegistry* registry)
    : registry_(registry),
      store_seconds_(registry->AddHistogram(
          "secret_resolver_store_fetch_duration_seconds",
          "Store fetch latency (cache misses and refreshes) by outcome.", {"code"},
          LatencyBucketsSeconds())),
      calls_(registry->AddCounter("secret_resolver_calls_total", "Finished gRPC calls.",
                                  {"method", "code"})),
      call_seconds_(registry->AddHistogram("secret_resolver_call_duration_seconds",
                                           "gRPC call latency.", {"method"},
                                           LatencyBucketsSeconds())),
      references_(registry->AddCounter("secret_resolver_references_total",
                                       "Per-reference outcomes.", {"code", "cache"})),
      auth_failures_(registry->AddCounter("secret_resolver_auth_failures_total",
                                          "Rejected credentials by reason.", {"reason"})),
      denied_calls_(registry->AddCounter(
          "secret_resolver_denied_calls_total",
          "Whole calls refused for who is calling, by reason.", {"reason"})),
      suppressed_audit_lines_(registry->AddCounter(
          "secret_resolver_audit_lines_suppressed_total",
          "Audit lines of refused calls not written because their reason's budget was spent.",
          {"reason"})),
      backend_errors_(registry->AddCounter("secret_resolver_backend_errors_total",
                                           "References that failed in the secrets backend.",
                                           {"code"})),
      // Labelled with the caller's token namespace, which the issuer vouches for: never a stack
      // named only in a request, which would let any caller add series.
      rate_limited_(registry->AddCounter(
          "secret_resolver_rate_limited_total",
          "Calls refused by the per-stack rate limit, by the caller's stack.", {"stack"})),
      jwks_failures_(registry->AddCounter(
          "secret_resolver_jwks_refresh_failures_total",
          "Failed loads of the token signing keys (JWKS file or URL), by reason.", {"reason"})),
      store_incidents_(registry->AddCounter(
          "secret_resolver_store_incidents_total",
          "Starts of store trouble: health check failing (unavailable, damaged), change feed "
          "lost, cache dropped for a resync.",
          {"kind"})) {
  registry->AddGauge("secret_resolver_build_info", "Build information.", [] { return 1.0; },
                     {{"version", "0.1.0"}});
  // The series the alerts (deploy/kubernetes/monitoring/alerts.yaml) watch start at zero:
  // Prometheus cannot see the first increment of a series that appears with value 1, so an
  // alert on increase() or rate() would miss a single DATA_LOSS.
  for (absl::StatusCode code : {absl::StatusCode::kUnavailable, absl::StatusCode::kDataLoss}) {
    for (size_t o = 0; o < kCacheOutcomes; ++o) ReferenceSeries(CodeIndex(code), o);
  }
  for (absl::string_view reason : {"missing", "unreadable", "invalid", "unreachable", "other"}) {
    jwks_failures_->WithLabels({reason});
  }
  for (absl::string_view kind : kStoreIncidentKinds) store_incidents_->WithLabels({kind});
  for (size_t m = 0; m < kMethods.size(); ++m) {
    CallSecondsSeries(m);
    for (absl::StatusCode code :
         {absl::StatusCode::kOk, absl::StatusCode::kInternal, absl::StatusCode::kUnknown,
          absl::StatusCode::kUnavailable, absl::StatusCode::kDataLoss,
          absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kResourceExhausted}) {
      CallSeries(m, CodeIndex(code));
    }
  }
}

Counter::Series* SidecarMetrics::ReferenceSeries(size_t c, size_t o) {
  return reference_series_[c][o].Get([&] {
    return references_->WithLabels(
        {absl::StatusCodeToString(static_cast<absl::StatusCode>(c)),
         o == 0 ? "none" : CacheOutcomeName(static_cast<CacheOutcome>(o - 1))});
  });
}

Counter::Series* SidecarMetrics::CallSeries(size_t m, size_t c) {
  return call_series_[m][c].Get([&] {
    return calls_->WithLabels(
        {kMethods[m], absl::StatusCodeToString(static_cast<absl::StatusCode>(c))});
  });
}

Histogram::Series* SidecarMetrics::CallSecondsSeries(size_t m) {
  return call_seconds_series_[m].Get([&] { return call_seconds_->WithLabels({kMethods[m]}); });
}

size_t SidecarMetrics::CodeIndex(absl::StatusCode code) {
  const auto index = static_cast<size_t>(code);
  return index < kStatusCodes ? index : static_cast<size_t>(absl::StatusCode::kUnknown);
}

void SidecarMetrics::RecordStoreFetch(absl::Duration latency, absl::StatusCode code) {
  store_seconds_->Observe({absl::StatusCodeToString(code)}, absl::ToDoubleSeconds(latency));
}

void SidecarMetrics::RecordReference(absl::StatusCode code, std::optional<CacheOutcome> cache) {
  ReferenceSeries(CodeIndex(code), cache.has_value() ? 1 + static_cast<size_t>(*cache) : 0)
      ->Increment();
}

void SidecarMetrics::RecordAuthFailure(absl::string_view reason) {
  auth_failures_->Increment({reason});
}

void SidecarMetrics::RecordCall(absl::string_view method, absl::StatusCode code,
                                absl::Duration latency) {
  const size_t m = method == kMethods[0] ? 0 : method == kMethods[1] ? 1 : kMethods.size();
  if (m == kMethods.size()) {  // not one of ours: no cached series
    calls_->Increment({method, absl::StatusCodeToString(code)});
    call_seconds_->Observe({method}, absl::ToDoubleSeconds(latency));
    return;
  }
  CallSeries(m, CodeIndex(code))->Increment();
  CallSecondsSeries(m)->Observe(absl::ToDoubleSeconds(latency));
}

void SidecarMetrics::RecordDeniedCall(absl::string_view reason) {
  denied_calls_->Increment({reason});
}

void SidecarMetrics::RecordSuppressedAuditLine(absl::string_view reason) {
  suppressed_audit_lines_->Increment({reason});
}

void SidecarMetrics::RecordBackendError(absl::StatusCode code) {
  backend_errors_->Increment({absl::StatusCodeToString(code)});
}

void SidecarMetrics::RecordRateLimited(absl::string_view stack) {
  rate_limited_->Increment({stack});
}

void SidecarMetrics::RecordStoreIncident(absl::string_view kind) {
  store_incidents_->Increment({kind});
}

void SidecarMetrics::AddStoreHealthGauges(std::function<double()> store_up,
                                          std::function<double()> feed_up) {
  registry_->AddGauge("secret_resolver_store_up",
                      "1 while the store passes its health check, else 0.", std::move(store_up));
  registry_->AddGauge("secret_resolver_change_feed_up",
                      "1 while the store's change notifications are known to arrive, else 0.",
                      std::move(feed_up));
}

void SidecarMetrics::AddChangeStreamGauges(std::function<double()> streams,
                                           std::function<double()> sent) {
  registry_->AddGauge("secret_resolver_change_streams", "WatchChanges streams open.",
                      std::move(streams));
  registry_->AddGauge("secret_resolver_change_events_sent",
                      "Events written to WatchChanges streams since start.", std::move(sent));
}

void SidecarMetrics::AddCacheGauges(SecretCache* cache) {
  registry_->AddGauge("secret_resolver_cache_hits", "Cache hits since start.",
                      [cache] { return static_cast<double>(cache->stats().hits); });
  registry_->AddGauge("secret_resolver_cache_misses", "Cache misses since start.",
                      [cache] { return static_cast<double>(cache->stats().misses); });
  registry_->AddGauge("secret_resolver_cache_stale_serves", "Stale values served since start.",
                      [cache] { return static_cast<double>(cache->stats().stale_serves); });
  registry_->AddGauge("secret_resolver_cache_evictions", "Cache evictions since start.",
                      [cache] { return static_cast<double>(cache->stats().evictions); });
  registry_->AddGauge("secret_resolver_cache_store_fetches", "Store fetches since start.",
                      [cache] { return static_cast<double>(cache->stats().store_fetches); });
  registry_->AddGauge("secret_resolver_cache_bytes", "Bytes held by the cache.",
                      [cache] { return static_cast<double>(cache->stats().bytes); });
}

void SidecarMetrics::AddTokenCacheGauge(std::function<double()> size) {
  registry_->AddGauge("secret_resolver_token_cache_size", "Verified tokens cached.",
                      std::move(size));
}

void SidecarMetrics::RecordJwksFailure(absl::string_view reason) {
  jwks_failures_->Increment({reason});
}

void SidecarMetrics::AddJwksGauges(std::function<double()> up, std::function<double()> keys,
                                   std::function<double()> skipped_keys) {
  registry_->AddGauge("secret_resolver_jwks_up",
                      "1 while the latest load of the token signing keys succeeded, else 0.",
                      std::move(up));
  registry_->AddGauge("secret_resolver_jwks_keys", "Usable token signing keys in use.",
                      std::move(keys));
  registry_->AddGauge("secret_resolver_jwks_skipped_keys",
                      "Unusable keys skipped in the signing key document in use.",
                      std::move(skipped_keys));
}

}  // namespace secret_resolver
