#include "server/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace secret_resolver {
namespace {

[[noreturn]] void Die(absl::string_view what) {
  std::fprintf(stderr, "metrics: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

bool IsMetricName(absl::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok =
        absl::ascii_isalpha(c) || c == '_' || c == ':' || (i > 0 && absl::ascii_isdigit(c));
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(absl::string_view name) {
  if (name.empty() || absl::StartsWith(name, "__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!(absl::ascii_isalpha(c) || c == '_' || (i > 0 && absl::ascii_isdigit(c)))) return false;
  }
  return true;
}

void CheckLabelNames(absl::string_view metric, const std::vector<std::string>& names) {
  std::set<std::string> seen;
  for (const std::string& name : names) {
    if (!IsLabelName(name)) Die(absl::StrCat(metric, ": invalid label name \"", name, "\""));
    if (!seen.insert(name).second) {
      Die(absl::StrCat(metric, ": label name \"", name, "\" given twice"));
    }
  }
}

// HELP text escapes backslash and newline only.
std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Go's strconv.FormatFloat(v, 'g', -1, 64) conventions that Prometheus parsers accept: the
// shortest text that reads back to the same double, "+Inf", "-Inf", "NaN".
std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), v);
  return std::string(buffer, result.ptr);
}

// `{a="x",b="y"}`, or "" without labels. `extra` is appended last (the histogram's le).
std::string LabelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      absl::string_view extra_name = "", absl::string_view extra_value = "") {
  if (names.empty() && extra_name.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ",";
    absl::StrAppend(&out, names[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out += ",";
    absl::StrAppend(&out, extra_name, "=\"", EscapeLabelValue(extra_value), "\"");
  }
  out += "}";
  return out;
}

std::vector<std::string> ToKey(absl::string_view metric, size_t label_count, LabelValues values) {
  if (values.size() != label_count) {
    Die(absl::StrCat(metric, ": ", values.size(), " label values for ", label_count,
                     " label names"));
  }
  std::vector<std::string> key;
  key.reserve(values.size());
  for (absl::string_view v : values) key.emplace_back(v);
  return key;
}

}  // namespace

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::vector<double> LatencyBucketsSeconds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

// ---- Counter ----

Counter::Counter(std::string name, std::vector<std::string> label_names)
    : name_(std::move(name)), label_names_(std::move(label_names)) {
  if (label_names_.empty()) series_.emplace(std::vector<std::string>(), new Series());
}

Counter::Series* Counter::WithLabels(LabelValues label_values) {
  std::vector<std::string> key = ToKey(name_, label_names_.size(), label_values);
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<Series>& series = series_[std::move(key)];
  if (series == nullptr) series.reset(new Series());
  return series.get();
}

uint64_t Counter::Value(LabelValues label_values) {
  std::vector<std::string> key = ToKey(name_, label_names_.size(), label_values);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(key);
  return it == series_.end() ? 0 : it->second->value();
}

void Counter::Render(std::string* out) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, series] : series_) {
    absl::StrAppend(out, name_, LabelText(label_names_, values), " ", series->value(), "\n");
  }
}

// ---- Histogram ----

Histogram::Histogram(std::string name, std::vector<std::string> label_names,
                     std::vector<double> bounds)
    : name_(std::move(name)), label_names_(std::move(label_names)), bounds_(std::move(bounds)) {
  if (label_names_.empty()) {
    series_.emplace(std::vector<std::string>(), std::unique_ptr<Series>(new Series(&bounds_)));
  }
}

void Histogram::Series::Observe(double value) {
  if (std::isnan(value)) return;
  // The first bucket whose upper bound is >= value; the +Inf bucket otherwise.
  size_t bucket = 0;
  while (bucket < bounds_->size() && value > (*bounds_)[bucket]) ++bucket;
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

Histogram::Series* Histogram::WithLabels(LabelValues label_values) {
  std::vector<std::string> key = ToKey(name_, label_names_.size(), label_values);
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<Series>& series = series_[std::move(key)];
  if (series == nullptr) series.reset(new Series(&bounds_));
  return series.get();
}

void Histogram::Render(std::string* out) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, series] : series_) {
    const double sum = series->sum_.load(std::memory_order_relaxed);
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += series->counts_[i].load(std::memory_order_relaxed);
      const std::string le = i < bounds_.size() ? FormatDouble(bounds_[i]) : "+Inf";
      absl::StrAppend(out, name_, "_bucket", LabelText(label_names_, values, "le", le), " ",
                      cumulative, "\n");
    }
    const std::string labels = LabelText(label_names_, values);
    absl::StrAppend(out, name_, "_sum", labels, " ", FormatDouble(sum), "\n");
    absl::StrAppend(out, name_, "_count", labels, " ", cumulative, "\n");
  }
}

// ---- MetricsRegistry ----

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  std::string type;  // "counter", "histogram", "gauge"
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Histogram> histogram;
  std::function<double()> read;
  std::vector<std::pair<std::string, std::string>> const_labels;

  void Render(std::string* out) const {
    absl::StrAppend(out, "# HELP ", name, " ", EscapeHelp(help), "\n");
    absl::StrAppend(out, "# TYPE ", name, " ", type, "\n");
    if (counter != nullptr) counter->Render(out);
    if (histogram != nullptr) histogram->Render(out);
    if (read) {
      std::vector<std::string> names;
      std::vector<std::string> values;
      for (const auto& [n, v] : const_labels) {
        names.push_back(n);
        values.push_back(v);
      }
      absl::StrAppend(out, name, LabelText(names, values), " ", FormatDouble(read()), "\n");
    }
  }
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::Register(std::unique_ptr<Family> family) {
  if (!IsMetricName(family->name)) Die(absl::StrCat("invalid metric name \"", family->name, "\""));
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& existing : families_) {
    if (existing->name == family->name) {
      Die(absl::StrCat("metric \"", family->name, "\" registered twice"));
    }
  }
  families_.push_back(std::move(family));
}

Counter* MetricsRegistry::AddCounter(absl::string_view name, absl::string_view help,
                                     std::vector<std::string> label_names) {
  CheckLabelNames(name, label_names);
  auto family = std::make_unique<Family>();
  family->name = std::string(name);
  family->help = std::string(help);
  family->type = "counter";
  family->counter.reset(new Counter(std::string(name), std::move(label_names)));
  Counter* counter = family->counter.get();
  Register(std::move(family));
  return counter;
}

Histogram* MetricsRegistry::AddHistogram(absl::string_view name, absl::string_view help,
                                         std::vector<std::string> label_names,
                                         std::vector<double> bounds) {
  CheckLabelNames(name, label_names);
  for (const std::string& label : label_names) {
    if (label == "le") Die(absl::StrCat(name, ": the label name \"le\" is reserved"));
  }
  if (bounds.empty()) Die(absl::StrCat(name, ": a histogram needs at least one bucket"));
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      Die(absl::StrCat(name, ": bucket bounds must be finite and strictly increasing"));
    }
  }
  auto family = std::make_unique<Family>();
  family->name = std::string(name);
  family->help = std::string(help);
  family->type = "histogram";
  family->histogram.reset(
      new Histogram(std::string(name), std::move(label_names), std::move(bounds)));
  Histogram* histogram = family->histogram.get();
  Register(std::move(family));
  return histogram;
}

void MetricsRegistry::AddGauge(absl::string_view name, absl::string_view help,
                               std::function<double()> read,
                               std::vector<std::pair<std::string, std::string>> const_labels) {
  if (!read) Die(absl::StrCat(name, ": a gauge needs a callback"));
  std::vector<std::string> label_names;
  for (const auto& label : const_labels) label_names.push_back(label.first);
  CheckLabelNames(name, label_names);
  auto family = std::make_unique<Family>();
  family->name = std::string(name);
  family->help = std::string(help);
  family->type = "gauge";
  family->read = std::move(read);
  family->const_labels = std::move(const_labels);
  Register(std::move(family));
}

std::string MetricsRegistry::Render() const {
  // Families are never removed, so the pointers stay valid after the lock is released; gauge
  // callbacks then run without it.
  std::vector<const Family*> families;
  {
    std::lock_guard<std::mutex> lock(mu_);
    families.reserve(families_.size());
    for (const auto& family : families_) families.push_back(family.get());
  }
  std::string out;
  for (const Family* family : families) family->Render(&out);
  return out;
}

}  // namespace secret_resolver
