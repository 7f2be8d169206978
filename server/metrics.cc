#include "server/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "prometheus/check_names.h"
#include "prometheus/client_metric.h"
#include "prometheus/collectable.h"
#include "prometheus/labels.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace secret_resolver {
namespace {

[[noreturn]] void Die(absl::string_view what) {
  std::fprintf(stderr, "metrics: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

std::vector<std::string> ToKey(absl::string_view metric, size_t label_count, LabelValues values) {
  if (values.size() != label_count) {
    Die(absl::StrCat(metric, ": ", values.size(), " label values for ", label_count,
                     " label names"));
  }
  return std::vector<std::string>(values.begin(), values.end());
}

prometheus::Labels ToLabels(const std::vector<std::string>& names,
                            const std::vector<std::string>& values) {
  prometheus::Labels labels;
  for (size_t i = 0; i < names.size(); ++i) labels.emplace(names[i], values[i]);
  return labels;
}

// prometheus::Labels is a std::map, so a collected series has its labels sorted by name; put them
// back in the order the family declared.
std::vector<prometheus::ClientMetric::Label> InDeclaredOrder(
    const std::vector<std::string>& names, std::vector<prometheus::ClientMetric::Label> labels) {
  std::vector<prometheus::ClientMetric::Label> ordered;
  ordered.reserve(labels.size());
  for (const std::string& name : names) {
    for (prometheus::ClientMetric::Label& label : labels) {
      if (label.name == name) ordered.push_back(std::move(label));
    }
  }
  return ordered;
}

// prometheus-cpp 1.0.1 writes HELP text as given; the format escapes backslash and newline.
std::string EscapeHelp(absl::string_view help) {
  return absl::StrReplaceAll(help, {{"\\", "\\\\"}, {"\n", "\\n"}});
}

}  // namespace

std::vector<double> LatencyBucketsSeconds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

// ---- Counter ----

Counter::Counter(prometheus::Family<prometheus::Counter>* family,
                 std::vector<std::string> label_names)
    : family_(family), label_names_(std::move(label_names)) {
  if (label_names_.empty()) WithLabels({});
}

Counter::Series* Counter::WithLabels(LabelValues label_values) {
  std::vector<std::string> key = ToKey(family_->GetName(), label_names_.size(), label_values);
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<Series>& series = series_[key];
  if (series == nullptr) series.reset(new Series(&family_->Add(ToLabels(label_names_, key))));
  return series.get();
}

uint64_t Counter::Value(LabelValues label_values) {
  std::vector<std::string> key = ToKey(family_->GetName(), label_names_.size(), label_values);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(key);
  return it == series_.end() ? 0 : it->second->value();
}

// ---- Histogram ----

Histogram::Histogram(prometheus::Family<prometheus::Histogram>* family,
                     std::vector<std::string> label_names, std::vector<double> bounds)
    : family_(family), label_names_(std::move(label_names)), bounds_(std::move(bounds)) {
  if (label_names_.empty()) WithLabels({});
}

Histogram::Series* Histogram::WithLabels(LabelValues label_values) {
  std::vector<std::string> key = ToKey(family_->GetName(), label_names_.size(), label_values);
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<Series>& series = series_[key];
  if (series == nullptr) {
    series.reset(new Series(&family_->Add(ToLabels(label_names_, key), bounds_)));
  }
  return series.get();
}

// ---- Callback gauges ----

// Gauges whose value is read when collected. prometheus-cpp's own Gauge holds a value that the
// code sets; these read the cache's and the token cache's counters at scrape time instead.
class MetricsRegistry::CallbackGauges : public prometheus::Collectable {
 public:
  void Add(std::string name, std::string help, std::function<double()> read,
           std::vector<std::pair<std::string, std::string>> labels) {
    auto gauge = std::make_unique<Gauge>();
    gauge->name = std::move(name);
    gauge->help = std::move(help);
    gauge->read = std::move(read);
    for (auto& [label, value] : labels) gauge->labels.push_back({label, value});
    std::lock_guard<std::mutex> lock(mu_);
    gauges_.push_back(std::move(gauge));
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    // Gauges are never removed, so the pointers stay valid after the lock is released; the
    // callbacks then run without it.
    std::vector<const Gauge*> gauges;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& gauge : gauges_) gauges.push_back(gauge.get());
    }
    std::vector<prometheus::MetricFamily> families;
    families.reserve(gauges.size());
    for (const Gauge* gauge : gauges) {
      prometheus::ClientMetric metric;
      metric.label = gauge->labels;
      metric.gauge.value = gauge->read();
      families.push_back(
          {gauge->name, gauge->help, prometheus::MetricType::Gauge, {std::move(metric)}});
    }
    return families;
  }

 private:
  struct Gauge {
    std::string name;
    std::string help;
    std::function<double()> read;
    std::vector<prometheus::ClientMetric::Label> labels;
  };

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Gauge>> gauges_;
};

// ---- MetricsRegistry ----

MetricsRegistry::MetricsRegistry()
    : registry_(std::make_unique<prometheus::Registry>(prometheus::Registry::InsertBehavior::Throw)),
      gauges_(std::make_unique<CallbackGauges>()) {}

MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::Reserve(absl::string_view name, const std::vector<std::string>& label_names) {
  if (!prometheus::CheckMetricName(std::string(name))) {
    Die(absl::StrCat("invalid metric name \"", name, "\""));
  }
  std::set<std::string> seen;
  for (const std::string& label : label_names) {
    if (!prometheus::CheckLabelName(label)) {
      Die(absl::StrCat(name, ": invalid label name \"", label, "\""));
    }
    if (!seen.insert(label).second) {
      Die(absl::StrCat(name, ": label name \"", label, "\" given twice"));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  const size_t index = families_.size();
  if (!families_.emplace(std::string(name), std::make_pair(index, label_names)).second) {
    Die(absl::StrCat("metric \"", name, "\" registered twice"));
  }
}

Counter* MetricsRegistry::AddCounter(absl::string_view name, absl::string_view help,
                                     std::vector<std::string> label_names) {
  Reserve(name, label_names);
  prometheus::Family<prometheus::Counter>& family = prometheus::BuildCounter()
                                                        .Name(std::string(name))
                                                        .Help(EscapeHelp(help))
                                                        .Register(*registry_);
  std::lock_guard<std::mutex> lock(mu_);
  counters_.emplace_back(new Counter(&family, std::move(label_names)));
  return counters_.back().get();
}

Histogram* MetricsRegistry::AddHistogram(absl::string_view name, absl::string_view help,
                                         std::vector<std::string> label_names,
                                         std::vector<double> bounds) {
  for (const std::string& label : label_names) {
    if (label == "le") Die(absl::StrCat(name, ": the label name \"le\" is reserved"));
  }
  if (bounds.empty()) Die(absl::StrCat(name, ": a histogram needs at least one bucket"));
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      Die(absl::StrCat(name, ": bucket bounds must be finite and strictly increasing"));
    }
  }
  Reserve(name, label_names);
  prometheus::Family<prometheus::Histogram>& family = prometheus::BuildHistogram()
                                                          .Name(std::string(name))
                                                          .Help(EscapeHelp(help))
                                                          .Register(*registry_);
  std::lock_guard<std::mutex> lock(mu_);
  histograms_.emplace_back(new Histogram(&family, std::move(label_names), std::move(bounds)));
  return histograms_.back().get();
}

void MetricsRegistry::AddGauge(absl::string_view name, absl::string_view help,
                               std::function<double()> read,
                               std::vector<std::pair<std::string, std::string>> const_labels) {
  if (!read) Die(absl::StrCat(name, ": a gauge needs a callback"));
  std::vector<std::string> label_names;
  for (const auto& label : const_labels) label_names.push_back(label.first);
  Reserve(name, label_names);
  gauges_->Add(std::string(name), EscapeHelp(help), std::move(read), std::move(const_labels));
}

std::string MetricsRegistry::Render() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::vector<prometheus::MetricFamily> gauges = gauges_->Collect();
  families.insert(families.end(), std::make_move_iterator(gauges.begin()),
                  std::make_move_iterator(gauges.end()));
  std::vector<std::pair<size_t, prometheus::MetricFamily*>> ordered;
  ordered.reserve(families.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (prometheus::MetricFamily& family : families) {
      const auto& [index, label_names] = families_.at(family.name);
      for (prometheus::ClientMetric& metric : family.metric) {
        metric.label = InDeclaredOrder(label_names, std::move(metric.label));
      }
      std::sort(family.metric.begin(), family.metric.end(),
                [](const prometheus::ClientMetric& a, const prometheus::ClientMetric& b) {
                  return a.label < b.label;
                });
      ordered.emplace_back(index, &family);
    }
  }
  std::sort(ordered.begin(), ordered.end());
  std::vector<prometheus::MetricFamily> in_order;
  in_order.reserve(ordered.size());
  for (const auto& entry : ordered) in_order.push_back(std::move(*entry.second));
  return prometheus::TextSerializer().Serialize(in_order);
}

}  // namespace secret_resolver
