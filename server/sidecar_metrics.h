// SidecarMetrics: the sidecar's metric families (docs/server.md, "Metrics"), registered on one
// MetricsRegistry, and the calls that record into them. Series on the per-call path are looked
// up once and then reused, so recording a call takes no registry lock and builds no label
// strings.
//
// Thread safety: every Record method may be called from any thread, concurrently. The Add...
// methods register gauges; call them before serving.
#ifndef SECRET_RESOLVER_SERVER_SIDECAR_METRICS_H_
#define SECRET_RESOLVER_SERVER_SIDECAR_METRICS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/secret_cache.h"
#include "server/metrics.h"

namespace secret_resolver {

// One metric series, looked up on first use and then reused. Racing first uses look up the same
// series.
template <typename Series>
class CachedSeries {
 public:
  template <typename Lookup>
  Series* Get(Lookup lookup) {
    Series* series = slot_.load(std::memory_order_acquire);
    if (series == nullptr) {
      series = lookup();
      slot_.store(series, std::memory_order_release);
    }
    return series;
  }

 private:
  std::atomic<Series*> slot_{nullptr};
};

class SidecarMetrics {
 public:
  // Registers the families on `registry`, which must outlive this object.
  explicit SidecarMetrics(MetricsRegistry* registry);

  SidecarMetrics(const SidecarMetrics&) = delete;
  SidecarMetrics& operator=(const SidecarMetrics&) = delete;

  // secret_resolver_store_fetch_duration_seconds{code}: for CacheOptions::on_store_fetch.
  void RecordStoreFetch(absl::Duration latency, absl::StatusCode code);
  // secret_resolver_references_total{code, cache}; cache "none" when the cache was not asked.
  void RecordReference(absl::StatusCode code, std::optional<CacheOutcome> cache);
  // secret_resolver_auth_failures_total{reason}.
  void RecordAuthFailure(absl::string_view reason);
  // secret_resolver_calls_total{method, code} and secret_resolver_call_duration_seconds{method}.
  void RecordCall(absl::string_view method, absl::StatusCode code, absl::Duration latency);
  // secret_resolver_denied_calls_total{reason}: whole calls refused for who is calling (a
  // rejected credential, a stack the token does not cover, no decrypt permission).
  void RecordDeniedCall(absl::string_view reason);
  // secret_resolver_audit_lines_suppressed_total{reason}: audit lines of refused calls not
  // written because their reason's line budget was spent.
  void RecordSuppressedAuditLine(absl::string_view reason);
  // secret_resolver_backend_errors_total{code}: references that failed in the backend.
  void RecordBackendError(absl::StatusCode code);
  // secret_resolver_rate_limited_total{stack}: calls refused by the rate limit, by the caller's
  // token namespace (never a stack named only in a request).
  void RecordRateLimited(absl::string_view stack);

  // secret_resolver_store_incidents_total{kind}: the start of store trouble (server/
  // store_health.h); kind is one of kStoreIncidentKinds.
  void RecordStoreIncident(absl::string_view kind);
  static constexpr std::array<absl::string_view, 4> kStoreIncidentKinds = {
      "unavailable", "damaged", "change_feed_lost", "resync"};
  // secret_resolver_store_up and secret_resolver_change_feed_up, read at every scrape.
  void AddStoreHealthGauges(std::function<double()> store_up, std::function<double()> feed_up);

  // secret_resolver_change_streams (WatchChanges streams open) and
  // secret_resolver_change_events_sent (events written to them since start), read at every
  // scrape; registered only when the change stream is served.
  void AddChangeStreamGauges(std::function<double()> streams, std::function<double()> sent);
  // Gauges of `cache`'s counters and size; `cache` must outlive the registry's readers.
  void AddCacheGauges(SecretCache* cache);
  // secret_resolver_token_cache_size, read from `size` at every scrape.
  void AddTokenCacheGauge(std::function<double()> size);
  // secret_resolver_jwks_refresh_failures_total{reason}: failed loads of the token signing keys
  // (reasons in server/jwks_health.h; each starts at zero).
  void RecordJwksFailure(absl::string_view reason);
  // secret_resolver_jwks_up (1 while the latest load of the signing keys succeeded, else 0),
  // secret_resolver_jwks_keys (usable keys in use) and secret_resolver_jwks_skipped_keys
  // (unusable keys skipped in the document in use), read at every scrape.
  void AddJwksGauges(std::function<double()> up, std::function<double()> keys,
                     std::function<double()> skipped_keys);

 private:
  // absl::StatusCode 0 (OK) to 16 (UNAUTHENTICATED) as an index; anything else as UNKNOWN.
  static constexpr size_t kStatusCodes = 17;
  static constexpr size_t kCacheOutcomes = 5;  // none, then each CacheOutcome
  static constexpr std::array<absl::string_view, 2> kMethods = {"ResolveSecrets",
                                                                "DecryptSecureValues"};
  static size_t CodeIndex(absl::StatusCode code);
  // The cached series of a code index and cache outcome (0 none, else 1 + CacheOutcome), of a
  // method index and code index, and of a method's latency.
  Counter::Series* ReferenceSeries(size_t c, size_t o);
  Counter::Series* CallSeries(size_t m, size_t c);
  Histogram::Series* CallSecondsSeries(size_t m);

  MetricsRegistry* const registry_;
  Histogram* const store_seconds_;
  Counter* const calls_;
  Histogram* const call_seconds_;
  Counter* const references_;
  Counter* const auth_failures_;
  Counter* const denied_calls_;
  Counter* const suppressed_audit_lines_;
  Counter* const backend_errors_;
  Counter* const rate_limited_;
  Counter* const jwks_failures_;
  Counter* const store_incidents_;
  std::array<std::array<CachedSeries<Counter::Series>, kCacheOutcomes>, kStatusCodes>
      reference_series_;
  std::array<std::array<CachedSeries<Counter::Series>, kStatusCodes>, kMethods.size()>
      call_series_;
  std::array<CachedSeries<Histogram::Series>, kMethods.size()> call_seconds_series_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_SIDECAR_METRICS_H_
