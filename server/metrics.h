// The sidecar's Prometheus registry: counters, histograms and callback gauges, rendered in the
// text exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
// Built on Debian's prometheus-cpp 1.0.1 core library (prometheus::Registry, Family<Counter>,
// Family<Histogram>, TextSerializer); this layer keeps the project's calling conventions
// (cached series, label values in declared order, abort on programming errors) on top. Why the
// library and what it costs per call: docs/BENCHMARKS.md ("Metrics").
//
//   MetricsRegistry registry;
//   Counter* calls = registry.AddCounter("secret_resolver_grpc_calls_total",
//                                        "gRPC calls by method and code.", {"method", "code"});
//   calls->Increment({"ResolveSecrets", "OK"});
//   std::string text = registry.Render();
//
// Label values are for codes, reasons, outcomes and method names only: small, fixed sets chosen
// by the code. Never a secret value, a token, a secret name or anything else a caller supplies:
// every label combination is kept for the life of the process and shown to anyone who can reach
// /metrics.
//
// Metric and label names are constants in the code, so a bad or duplicate name, or the wrong
// number of label values, is a programming error: the process aborts with a message (like a
// failed CHECK) rather than returning a status at every call site. Everything is checked here
// before the library sees it, so the library never throws.
//
// Thread safety: every method is safe to call from any thread. A counter series is an atomic
// double; a histogram series takes its own short std::mutex per observation. The library is not
// built with ThreadSanitizer, which sees its mutexes (intercepted pthread calls) but not its
// atomics. The registry's locks are not held while gauge callbacks run, so a callback may take
// its own locks or update other metrics.
#ifndef SECRET_RESOLVER_SERVER_METRICS_H_
#define SECRET_RESOLVER_SERVER_METRICS_H_

#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace secret_resolver {

// Label values in the order of the family's label names.
using LabelValues = std::initializer_list<absl::string_view>;

// A monotonically increasing count, one series per combination of label values.
class Counter {
 public:
  // One series. Stable for the life of the registry; cache it on hot paths.
  class Series {
   public:
    // Counts are exact up to 2^53 (the library keeps a double).
    void Increment(uint64_t by = 1) { counter_->Increment(static_cast<double>(by)); }
    uint64_t value() const { return static_cast<uint64_t>(counter_->Value()); }

   private:
    friend class Counter;
    explicit Series(prometheus::Counter* counter) : counter_(counter) {}
    prometheus::Counter* const counter_;  // owned by the library's family
  };

  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // The series for `label_values`, created at zero on first use.
  Series* WithLabels(LabelValues label_values);

  // Adds `by` to the series for `label_values`.
  void Increment(LabelValues label_values = {}, uint64_t by = 1) {
    WithLabels(label_values)->Increment(by);
  }

  // The current value of one series (0 if it was never touched). For tests.
  uint64_t Value(LabelValues label_values = {});

 private:
  friend class MetricsRegistry;
  Counter(prometheus::Family<prometheus::Counter>* family, std::vector<std::string> label_names);

  prometheus::Family<prometheus::Counter>* const family_;
  const std::vector<std::string> label_names_;
  std::mutex mu_;
  // By label values, so a lookup builds no prometheus::Labels map; the Series addresses are fixed.
  std::map<std::vector<std::string>, std::unique_ptr<Series>> series_;
};

// Observations counted into fixed buckets, with their sum and count, per label combination.
class Histogram {
 public:
  // One series. Stable for the life of the registry; cache it on hot paths.
  class Series {
   public:
    // Records one observation, e.g. a latency in seconds. NaN is ignored (the library would
    // count it in the first bucket and make the sum NaN).
    void Observe(double value) {
      if (!std::isnan(value)) histogram_->Observe(value);
    }

   private:
    friend class Histogram;
    explicit Series(prometheus::Histogram* histogram) : histogram_(histogram) {}
    prometheus::Histogram* const histogram_;  // owned by the library's family
  };

  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // The series for `label_values`, created empty on first use.
  Series* WithLabels(LabelValues label_values);

  // Records `value` in the series for `label_values`.
  void Observe(LabelValues label_values, double value) { WithLabels(label_values)->Observe(value); }
  void Observe(double value) { WithLabels({})->Observe(value); }

 private:
  friend class MetricsRegistry;
  Histogram(prometheus::Family<prometheus::Histogram>* family,
            std::vector<std::string> label_names, std::vector<double> bounds);

  prometheus::Family<prometheus::Histogram>* const family_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;  // upper bounds, strictly increasing, finite
  std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Series>> series_;
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registers a counter family. By convention the name ends in "_total". Names match
  // [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*, neither with a leading "__".
  // A family without labels shows its single series (at 0) from the start. The pointer lives as
  // long as the registry.
  Counter* AddCounter(absl::string_view name, absl::string_view help,
                      std::vector<std::string> label_names = {});

  // Registers a histogram family with upper bucket bounds `bounds` (finite, strictly increasing;
  // the +Inf bucket is implicit). The label name "le" is reserved.
  Histogram* AddHistogram(absl::string_view name, absl::string_view help,
                          std::vector<std::string> label_names, std::vector<double> bounds);

  // Registers a gauge whose value `read` returns at every Render (cache size, token cache size),
  // with constant labels such as {{"version", "1.2.0"}} for an info metric (value 1). `read`
  // runs on the thread that calls Render, without the registry's locks held.
  void AddGauge(absl::string_view name, absl::string_view help, std::function<double()> read,
                std::vector<std::pair<std::string, std::string>> const_labels = {});

  // Every family that has a series, in registration order, in the text format 0.0.4 as
  // prometheus::TextSerializer writes it: "# HELP" and "# TYPE" lines, then one line per series,
  // sorted by label values, labels in the order they were declared; histograms as _count, _sum
  // and _bucket{le="..."} (cumulative, ending in +Inf). A labelled family with no series yet is
  // left out. Ends with a newline, or is empty while no family has a series.
  std::string Render() const;

 private:
  class CallbackGauges;
  // Checks the name and label names and that the name is new; aborts otherwise.
  void Reserve(absl::string_view name, const std::vector<std::string>& label_names);

  const std::unique_ptr<prometheus::Registry> registry_;  // counters and histograms
  const std::unique_ptr<CallbackGauges> gauges_;
  mutable std::mutex mu_;
  // Every family's registration index and declared label names, by name.
  std::map<std::string, std::pair<size_t, std::vector<std::string>>> families_;
  std::vector<std::unique_ptr<Counter>> counters_;
  std::vector<std::unique_ptr<Histogram>> histograms_;
};

// Bucket bounds in seconds for latencies from 0.5 ms to 10 s.
std::vector<double> LatencyBucketsSeconds();

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_METRICS_H_
