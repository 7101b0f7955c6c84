// Keras 3 optimizer updates, clipping and learning-rate schedules, against the update rules
// written out here in double precision.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "ir/interpreter.h"
#include "train/optimizers.h"
#include "train/schedules.h"

namespace tessera::train {
namespace {

struct Applied {
  std::vector<double> w;
  std::map<std::string, std::vector<double>> slots;
};

std::vector<double> values(const Tensor& t) {
  return std::vector<double>(t.data<float>(), t.data<float>() + t.num_elements());
}

// Applies `grads` (one gradient vector per step) to w through the emitted update graph.
Applied apply(const OptimizerSpec& o, std::vector<float> w0, const std::vector<std::vector<float>>& grads,
          const ScheduleSpec& sched = {}) {
  int64_t n = static_cast<int64_t>(w0.size());
  ResourceStore store;
  store.assign("/w", Tensor::from_vector<float>(w0, {n}));
  for (const std::string& s : slot_names(o)) store.assign(slot_key("/w", s), Tensor::from_vector<float>(std::vector<float>(w0.size(), 0.0f), {n}));
  Graph g;
  GraphBuilder b(g, "t");
  PartialShape shape(std::vector<int64_t>{n});
  std::vector<UpdateVar> vars = {{"/w", DType::kFloat32, shape, b.arg("g", DType::kFloat32, shape)->out(), {}}};
  std::map<std::string, Value> hypers;
  for (const std::string& h : hyper_names(o)) hypers[h] = b.arg(h, DType::kFloat32, PartialShape(std::vector<int64_t>{}))->out();
  emit_clipping(b, o, vars);
  emit_update(b, o, vars, hypers);
  for (size_t step = 0; step < grads.size(); ++step) {
    std::vector<Feed> feeds = {{g.args[0]->out(), Tensor::from_vector<float>(grads[step], {n})}};
    auto h = hyper_values(o, learning_rate_at(sched, o.learning_rate, static_cast<int64_t>(step)), static_cast<int64_t>(step));
    for (size_t i = 1; i < g.args.size(); ++i)
      feeds.push_back({g.args[i]->out(), Tensor::scalar<float>(static_cast<float>(h.at(hyper_names(o)[i - 1])))});
    interpret(g, feeds, {}, g.control_results, &store);
  }
  Applied r;
  r.w = values(store.read("/w"));
  for (const std::string& s : slot_names(o)) r.slots[s] = values(store.read(slot_key("/w", s)));
  return r;
}

const std::vector<std::vector<float>> kGrads = {{0.5f, -1.0f, 0.0f}, {0.25f, 2.0f, -0.125f}, {-1.0f, 0.5f, 0.75f}};
const std::vector<float> kW = {1.0f, -2.0f, 0.5f};

TEST(StepOptimizers, AdamAndAdamW) {
  for (double wd : {0.0, 0.1}) {
    OptimizerSpec o;
    o.name = wd > 0 ? "adamw" : "adam";
    o.learning_rate = 0.01;
    o.weight_decay = wd;
    Applied r = apply(o, kW, kGrads);
    for (size_t i = 0; i < kW.size(); ++i) {
      double w = kW[i], m = 0, v = 0;
      for (size_t t = 0; t < kGrads.size(); ++t) {
        double g = kGrads[t][i];
        w -= w * wd * o.learning_rate;
        m += (g - m) * (1 - o.beta_1);
        v += (g * g - v) * (1 - o.beta_2);
        double alpha = o.learning_rate * std::sqrt(1 - std::pow(o.beta_2, t + 1)) / (1 - std::pow(o.beta_1, t + 1));
        w -= m * alpha / (std::sqrt(v) + o.epsilon);
      }
      EXPECT_NEAR(r.w[i], w, 1e-6) << o.name << " element " << i;
      EXPECT_NEAR(r.slots["m"][i], m, 1e-6);
      EXPECT_NEAR(r.slots["v"][i], v, 1e-6);
    }
  }
}

TEST(StepOptimizers, SgdMomentumNesterovAndPlain) {
  for (int mode = 0; mode < 3; ++mode) {
    OptimizerSpec o;
    o.name = "sgd";
    o.learning_rate = 0.1;
    o.momentum = mode == 0 ? 0.0 : 0.9;
    o.nesterov = mode == 2;
    Applied r = apply(o, kW, kGrads);
    for (size_t i = 0; i < kW.size(); ++i) {
      double w = kW[i], m = 0;
      for (const auto& gs : kGrads) {
        double g = gs[i];
        if (o.momentum == 0) {
          w -= g * o.learning_rate;
          continue;
        }
        m = m * o.momentum - g * o.learning_rate;
        w += o.nesterov ? m * o.momentum - g * o.learning_rate : m;
      }
      EXPECT_NEAR(r.w[i], w, 1e-6) << "mode " << mode;
      if (o.momentum > 0) EXPECT_NEAR(r.slots["momentum"][i], m, 1e-6);
    }
    EXPECT_EQ(r.slots.size(), o.momentum > 0 ? 1u : 0u);
  }
}

TEST(StepOptimizers, RmspropWithAndWithoutMomentum) {
  for (double mom : {0.0, 0.5}) {
    OptimizerSpec o;
    o.name = "rmsprop";
    o.learning_rate = 0.01;
    o.momentum = mom;
    Applied r = apply(o, kW, kGrads);
    for (size_t i = 0; i < kW.size(); ++i) {
      double w = kW[i], vel = 0, m = 0;
      for (const auto& gs : kGrads) {
        double g = gs[i];
        vel = o.rho * vel + (1 - o.rho) * g * g;
        double inc = o.learning_rate * g / std::sqrt(vel + o.epsilon);
        if (mom > 0) {
          m = mom * m + inc;
          w -= m;
        } else {
          w -= inc;
        }
      }
      EXPECT_NEAR(r.w[i], w, 1e-5);
      EXPECT_NEAR(r.slots["velocity"][i], vel, 1e-6);
    }
  }
}

TEST(StepOptimizers, ClipNormPerVariableAndGlobal) {
  OptimizerSpec o;
  o.name = "sgd";
  o.learning_rate = 1.0;
  o.clipnorm = 1.0;
  // |g| = 5 -> scaled to norm 1; a zero gradient stays zero.
  Applied r = apply(o, {0.0f, 0.0f}, {{3.0f, 4.0f}});
  EXPECT_NEAR(r.w[0], -0.6, 1e-6);
  EXPECT_NEAR(r.w[1], -0.8, 1e-6);
  Applied z = apply(o, {1.0f, 1.0f}, {{0.0f, 0.0f}});
  EXPECT_EQ(z.w[0], 1.0);
  o.clipnorm = 0;
  o.global_clipnorm = 10.0;  // norm 5 < 10: unchanged
  Applied u = apply(o, {0.0f, 0.0f}, {{3.0f, 4.0f}});
  EXPECT_NEAR(u.w[0], -3.0, 1e-6);
  o.global_clipnorm = 2.5;
  Applied c = apply(o, {0.0f, 0.0f}, {{3.0f, 4.0f}});
  EXPECT_NEAR(c.w[1], -2.0, 1e-6);
}

TEST(StepSchedules, KerasFormulas) {
  ScheduleSpec e{"exponential", 10, 0.5, false, 0, 0};
  EXPECT_NEAR(learning_rate_at(e, 0.1, 0), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate_at(e, 0.1, 5), 0.1 * std::pow(0.5, 0.5), 1e-12);
  e.staircase = true;
  EXPECT_NEAR(learning_rate_at(e, 0.1, 19), 0.05, 1e-12);
  ScheduleSpec c{"cosine", 100, 0, false, 0.1, 0};
  EXPECT_NEAR(learning_rate_at(c, 1.0, 50), 0.9 * 0.5 + 0.1, 1e-12);
  EXPECT_NEAR(learning_rate_at(c, 1.0, 1000), 0.1, 1e-12);  // clamped at decay_steps
  c.warmup_steps = 10;
  EXPECT_NEAR(learning_rate_at(c, 1.0, 5), 0.5, 1e-12);
  EXPECT_NEAR(learning_rate_at(c, 1.0, 10), 1.0, 1e-12);
  EXPECT_NEAR(learning_rate_at(c, 1.0, 60), 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * 0.5)) + 0.1, 1e-12);
  ScheduleSpec k;
  EXPECT_EQ(learning_rate_at(k, 0.3, 1234), 0.3);
  EXPECT_THROW(check_schedule({"cosine", 0, 0, false, 0, 0}), std::exception);
}

TEST(StepSchedules, LearningRateReachesTheUpdate) {
  OptimizerSpec o;
  o.name = "sgd";
  o.learning_rate = 1.0;
  ScheduleSpec e{"exponential", 1, 0.5, false, 0, 0};
  Applied r = apply(o, {0.0f}, {{1.0f}, {1.0f}, {1.0f}}, e);  // rates 1, 0.5, 0.25
  EXPECT_NEAR(r.w[0], -1.75, 1e-6);
}

}  // namespace
}  // namespace tessera::train
