// The server's metrics as a Prometheus text page. TF Serving's names and labels (its monitoring
// names with '/' turned into ':'), so dashboards built for TF Serving work, plus Tessera's own
// under ":tessera:serving:". Histograms use TF Serving's latency buckets (exponential, scale 10,
// factor 1.8, 33 buckets) unless given their own bounds. Thread-safe.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace tessera::serve {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  Metrics();

  void counter_add(const std::string& name, const Labels& labels, double delta = 1);
  void gauge_set(const std::string& name, const Labels& labels, double value);
  void gauge_add(const std::string& name, const Labels& labels, double delta);
  void observe(const std::string& name, const Labels& labels, double value);

  double counter_value(const std::string& name, const Labels& labels) const;
  double gauge_value(const std::string& name, const Labels& labels) const;
  uint64_t histogram_count(const std::string& name, const Labels& labels) const;

  std::string prometheus_text() const;

  // TF Serving's names.
  static constexpr const char* kRequestCount = ":tensorflow:serving:request_count";
  static constexpr const char* kRequestLatency = ":tensorflow:serving:request_latency";
  static constexpr const char* kRuntimeLatency = ":tensorflow:serving:runtime_latency";
  static constexpr const char* kRequestExampleCounts = ":tensorflow:serving:request_example_counts";
  static constexpr const char* kWarmupLatency = ":tensorflow:serving:model_warmup_latency";
  static constexpr const char* kLoadAttemptCount = ":tensorflow:cc:saved_model:load_attempt_count";
  static constexpr const char* kLoadLatency = ":tensorflow:cc:saved_model:load_latency";
  static constexpr const char* kQueuingLatency = ":tensorflow:serving:batching_session:queuing_latency";
  // Tessera's own.
  static constexpr const char* kBatchSize = ":tessera:serving:batch_size";
  static constexpr const char* kQueueDepth = ":tessera:serving:batch_queue_depth";
  static constexpr const char* kModelLoadLatency = ":tessera:serving:model_load_latency";
  static constexpr const char* kVersionsAvailable = ":tessera:serving:versions_available";

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Series {
    double value = 0;               // counter / gauge
    std::vector<uint64_t> buckets;  // histogram: per bound, non-cumulative; last = +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  struct Family {
    Kind kind;
    std::string help;
    std::vector<double> bounds;  // histograms
    std::map<Labels, Series> series;
  };
  void define(const std::string& name, Kind kind, std::string help, std::vector<double> bounds = {});
  Family& family(const std::string& name, Kind kind);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

}  // namespace tessera::serve
