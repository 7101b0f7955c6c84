#include "serve/metrics.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "support/error.h"

namespace tessera::serve {

namespace {

std::vector<double> exponential(double scale, double factor, int n) {
  std::vector<double> b;
  for (int i = 0; i < n; ++i) b.push_back(scale * std::pow(factor, i));
  return b;
}

std::string escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string label_text(const Labels& labels, const std::string& extra_key = "", const std::string& extra = "") {
  std::string out;
  for (const auto& [k, v] : labels) out += (out.empty() ? "" : ",") + k + "=\"" + escape(v) + "\"";
  if (!extra_key.empty()) out += (out.empty() ? "" : ",") + extra_key + "=\"" + extra + "\"";
  return out.empty() ? "" : "{" + out + "}";
}

std::string num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

}  // namespace

Metrics::Metrics() {
  const auto latency = exponential(10, 1.8, 33);
  define(kRequestCount, Kind::kCounter, "The total number of requests.");
  define(kRequestLatency, Kind::kHistogram, "Distribution of wall time (in microseconds) for requests.", latency);
  define(kRuntimeLatency, Kind::kHistogram, "Distribution of wall time (in microseconds) for model runs.", latency);
  define(kRequestExampleCounts, Kind::kHistogram, "The number of tensorflow.Examples per request.",
         exponential(1, 2, 16));
  define(kWarmupLatency, Kind::kHistogram, "Distribution of wall time (in microseconds) for warming up the model.",
         latency);
  define(kLoadAttemptCount, Kind::kCounter, "The number of times a model load was attempted.");
  define(kLoadLatency, Kind::kCounter, "Latency in microseconds for models that were loaded.");
  define(kQueuingLatency, Kind::kHistogram, "Distribution of wall time (in microseconds) a request waits in a batch queue.",
         latency);
  define(kBatchSize, Kind::kHistogram, "Rows per executed batch (after padding).", exponential(1, 2, 12));
  define(kQueueDepth, Kind::kGauge, "Requests waiting in batch queues.");
  define(kModelLoadLatency, Kind::kHistogram, "Wall time (in microseconds) to load and warm up a model version.",
         latency);
  define(kVersionsAvailable, Kind::kGauge, "Versions of a model that are serving.");
}

void Metrics::define(const std::string& name, Kind kind, std::string help, std::vector<double> bounds) {
  Family& f = families_[name];
  f.kind = kind;
  f.help = std::move(help);
  f.bounds = std::move(bounds);
}

Metrics::Family& Metrics::family(const std::string& name, Kind kind) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    define(name, kind, name);
    it = families_.find(name);
  }
  TS_CHECK(it->second.kind == kind, "metric ", name, " used with the wrong kind");
  return it->second;
}

void Metrics::counter_add(const std::string& name, const Labels& labels, double delta) {
  std::lock_guard lock(mu_);
  family(name, Kind::kCounter).series[labels].value += delta;
}

void Metrics::gauge_set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mu_);
  family(name, Kind::kGauge).series[labels].value = value;
}

void Metrics::gauge_add(const std::string& name, const Labels& labels, double delta) {
  std::lock_guard lock(mu_);
  family(name, Kind::kGauge).series[labels].value += delta;
}

void Metrics::observe(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mu_);
  Family& f = family(name, Kind::kHistogram);
  Series& s = f.series[labels];
  if (s.buckets.empty()) s.buckets.assign(f.bounds.size() + 1, 0);
  size_t i = std::lower_bound(f.bounds.begin(), f.bounds.end(), value) - f.bounds.begin();
  ++s.buckets[i];
  s.sum += value;
  ++s.count;
}

double Metrics::counter_value(const std::string& name, const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto f = families_.find(name);
  if (f == families_.end()) return 0;
  auto s = f->second.series.find(labels);
  return s == f->second.series.end() ? 0 : s->second.value;
}

double Metrics::gauge_value(const std::string& name, const Labels& labels) const { return counter_value(name, labels); }

uint64_t Metrics::histogram_count(const std::string& name, const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto f = families_.find(name);
  if (f == families_.end()) return 0;
  auto s = f->second.series.find(labels);
  return s == f->second.series.end() ? 0 : s->second.count;
}

std::string Metrics::prometheus_text() const {
  std::lock_guard lock(mu_);
  std::ostringstream os;
  for (const auto& [name, f] : families_) {
    const char* type = f.kind == Kind::kCounter ? "counter" : f.kind == Kind::kGauge ? "gauge" : "histogram";
    os << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << type << "\n";
    for (const auto& [labels, s] : f.series) {
      if (f.kind != Kind::kHistogram) {
        os << name << label_text(labels) << " " << num(s.value) << "\n";
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= f.bounds.size(); ++i) {
        cumulative += s.buckets[i];
        double le = i < f.bounds.size() ? f.bounds[i] : INFINITY;
        os << name << "_bucket" << label_text(labels, "le", num(le)) << " " << cumulative << "\n";
      }
      os << name << "_sum" << label_text(labels) << " " << num(s.sum) << "\n";
      os << name << "_count" << label_text(labels) << " " << s.count << "\n";
    }
  }
  return os.str();
}

}  // namespace tessera::serve
