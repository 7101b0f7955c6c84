// A Trainer in plain C++ for the `tessera train` plumbing tests: linear regression
// y = x.w + b, mean squared error, SGD with momentum (slot "momentum"). Deterministic, so runs
// can be compared bit for bit (resume == uninterrupted).
#pragma once
#include <cmath>

#include "train/trainer.h"

namespace tessera::testing {

class FakeTrainer : public train::Trainer {
 public:
  static constexpr const char* kW = "variables/0/.ATTRIBUTES/VARIABLE_VALUE";
  static constexpr const char* kB = "variables/1/.ATTRIBUTES/VARIABLE_VALUE";

  explicit FakeTrainer(int64_t dim, double lr = 0.05, double momentum = 0.9) : lr_(lr), momentum_(momentum) {
    state_.variables[kW] = Tensor(DType::kFloat32, {dim});
    state_.variables[kB] = Tensor(DType::kFloat32, {});
    for (const char* k : {kW, kB}) state_.slots[k]["momentum"] = Tensor(DType::kFloat32, state_.variables[k].shape());
  }

  train::StepResult step(const std::vector<Tensor>& features, const Tensor& labels) override {
    train::StepResult r = forward(features, labels, true);
    ++state_.step;
    state_.samples_seen += r.samples;
    ++steps_run;
    return r;
  }
  train::StepResult evaluate(const std::vector<Tensor>& features, const Tensor& labels) override {
    ++evals_run;
    return forward(features, labels, false);
  }
  train::TrainState state() const override {
    train::TrainState s = state_;
    for (auto& [k, v] : s.variables) v = v.clone();
    for (auto& [k, slots] : s.slots)
      for (auto& [n, v] : slots) v = v.clone();
    return s;
  }
  void restore(const train::TrainState& s) override { state_ = s; }
  std::vector<std::string> trainable_keys() const override { return {kW, kB}; }
  double learning_rate() const override { return lr_; }
  int64_t step_count() const override { return state_.step; }
  const Graph& step_graph() const override { return graph_; }

  int steps_run = 0, evals_run = 0;

 private:
  train::StepResult forward(const std::vector<Tensor>& features, const Tensor& labels, bool update) {
    const Tensor& x = features.at(0);
    const int64_t n = x.dim(0), d = x.num_elements() / n;
    float* w = state_.variables[kW].data<float>();
    float* b = state_.variables[kB].data<float>();
    std::vector<double> gw(static_cast<size_t>(d), 0.0);
    double gb = 0, loss = 0, hits = 0;
    for (int64_t i = 0; i < n; ++i) {
      double pred = b[0];
      for (int64_t j = 0; j < d; ++j) pred += double(x.data<float>()[i * d + j]) * w[j];
      double err = pred - labels.scalar_double(static_cast<size_t>(i));
      loss += err * err;
      hits += std::fabs(err) < 0.5;
      for (int64_t j = 0; j < d; ++j) gw[static_cast<size_t>(j)] += 2 * err * x.data<float>()[i * d + j] / double(n);
      gb += 2 * err / double(n);
    }
    if (update) {
      float* vw = state_.slots[kW]["momentum"].data<float>();
      float* vb = state_.slots[kB]["momentum"].data<float>();
      for (int64_t j = 0; j < d; ++j) {
        vw[j] = static_cast<float>(momentum_ * vw[j] - lr_ * gw[static_cast<size_t>(j)]);
        w[j] += vw[j];
      }
      vb[0] = static_cast<float>(momentum_ * vb[0] - lr_ * gb);
      b[0] += vb[0];
    }
    train::StepResult r;
    r.loss = loss / double(n);
    r.metrics["accuracy"] = hits / double(n);
    r.samples = n;
    return r;
  }

  double lr_, momentum_;
  train::TrainState state_;
  Graph graph_;
};

}  // namespace tessera::testing
