// The step builder on a hand-made module (x[?,3] @ w[3,2] -> softmax): the one-graph step
// applies exactly SGD on the softmax cross-entropy gradient, and the replica form (gradient
// program on two slices, summed, then the update program) lands on the same variables.
#include "train/step_builder.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ir/interpreter.h"
#include "passes/pass_util.h"

namespace tessera::train {
namespace {

Module tiny_module() {
  Module m;
  m.graph = std::make_shared<Graph>();
  Graph& g = *m.graph;
  Node* x = passes::add_node(g, "x", "Placeholder", {},
                             {{"dtype", DType::kFloat32}, {"shape", PartialShape(std::vector<int64_t>{-1, 3})}});
  Node* h = passes::add_node(g, "w", "VarHandleOp", {},
                             {{"dtype", DType::kFloat32}, {"shape", PartialShape(std::vector<int64_t>{3, 2})},
                              {"shared_name", std::string("w")}});
  Node* r = passes::add_node(g, "read", "ReadVariableOp", {h->out()}, {{"dtype", DType::kFloat32}});
  Node* mm = passes::add_node(g, "mm", "MatMul", {x->out(), r->out()},
                              {{"T", DType::kFloat32}, {"transpose_a", false}, {"transpose_b", false}});
  Node* sm = passes::add_node(g, "sm", "Softmax", {mm->out()}, {{"T", DType::kFloat32}});
  Signature s;
  s.key = "serving_default";
  s.inputs.push_back({"x", "x:0", x->out(), DType::kFloat32, PartialShape(std::vector<int64_t>{-1, 3})});
  s.outputs.push_back({"out", "sm:0", sm->out(), DType::kFloat32, PartialShape(std::vector<int64_t>{-1, 2})});
  m.signatures["serving_default"] = s;
  m.source = "tiny";
  return m;
}

const std::vector<float> kX = {1, 2, 0, -1, 0.5f, 3, 0, 1, 1, 2, -2, 0.5f};  // 4 x 3
const std::vector<int64_t> kY = {0, 1, 1, 0};
const std::vector<float> kW = {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f};

// Runs `p` with the interpreter; args by role.
std::vector<Tensor> run(const StepProgram& p, ResourceStore& store, int64_t b, int64_t e, double lr,
                        const std::map<std::string, Tensor>& grads = {}) {
  std::vector<Feed> feeds;
  for (size_t i = 0; i < p.args.size(); ++i) {
    const ArgSpec& a = p.args[i];
    Tensor t;
    if (a.role == ArgRole::kFeature)
      t = Tensor::from_vector<float>(std::vector<float>(kX.begin() + b * 3, kX.begin() + e * 3), {e - b, 3});
    if (a.role == ArgRole::kLabels)
      t = Tensor::from_vector<int64_t>(std::vector<int64_t>(kY.begin() + b, kY.begin() + e), {e - b});
    if (a.role == ArgRole::kInvCount) t = Tensor::scalar<float>(0.25f);
    if (a.role == ArgRole::kHyper) t = Tensor::scalar<float>(static_cast<float>(lr));
    if (a.role == ArgRole::kGrad) t = grads.at(a.name);
    feeds.push_back({p.graph->args[i]->out(), t});
  }
  return interpret(*p.graph, feeds, p.graph->results, p.graph->control_results, &store);
}

TrainOptions sgd(double lr) {
  TrainOptions o;
  o.optimizer.name = "sgd";
  o.optimizer.learning_rate = lr;
  return o;
}

TEST(StepBuilder, FullStepIsSgdOnTheCrossEntropyGradient) {
  Module m = tiny_module();
  ResourceStore store;
  store.assign("/w", Tensor::from_vector<float>(kW, {3, 2}));
  StepInfo info;
  TrainOptions o = sgd(0.5);
  StepProgram p = build_program(StepKind::kFull, m, "serving_default", o, store, &info);
  ASSERT_EQ(info.trainable, std::vector<std::string>{"/w"});
  std::vector<Tensor> out = run(p, store, 0, 4, 0.5);
  // By hand: dL/dW = x^T (softmax(xW) - onehot(y)) / 4, loss = mean CE.
  std::vector<double> grad(6, 0.0);
  double loss = 0, correct = 0;
  for (int i = 0; i < 4; ++i) {
    double z[2] = {0, 0};
    for (int k = 0; k < 2; ++k)
      for (int j = 0; j < 3; ++j) z[k] += kX[i * 3 + j] * kW[j * 2 + k];
    double mx = std::max(z[0], z[1]);
    double e0 = std::exp(z[0] - mx), e1 = std::exp(z[1] - mx);
    double pr[2] = {e0 / (e0 + e1), e1 / (e0 + e1)};
    loss -= std::log(pr[kY[i]]);
    correct += (pr[1] > pr[0] ? 1 : 0) == kY[i];
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) grad[j * 2 + k] += kX[i * 3 + j] * (pr[k] - (kY[i] == k)) / 4;
  }
  ASSERT_EQ(p.results.size(), 2u);
  EXPECT_NEAR(out[0].data<float>()[0], loss, 1e-5);
  EXPECT_EQ(out[1].data<float>()[0], correct);
  Tensor w = store.read("/w");
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(w.data<float>()[i], kW[i] - 0.5 * grad[i], 1e-6) << i;
}

TEST(StepBuilder, ReplicaProgramsMatchTheFullStep) {
  Module m = tiny_module();
  TrainOptions o = sgd(0.5);
  o.optimizer.name = "adam";
  o.optimizer.learning_rate = 0.01;
  ResourceStore full, split;
  for (ResourceStore* s : {&full, &split}) {
    s->assign("/w", Tensor::from_vector<float>(kW, {3, 2}));
    for (const char* slot : {"m", "v"}) s->assign("/tessera/slots/" + std::string(slot) + "/w", Tensor::from_vector<float>(std::vector<float>(6, 0.0f), {3, 2}));
  }
  StepInfo fi, si;
  StepProgram fp = build_program(StepKind::kFull, m, "serving_default", o, full, &fi);
  StepProgram gp = build_program(StepKind::kGrad, m, "serving_default", o, split, &si);
  StepProgram up = build_program(StepKind::kUpdate, m, "serving_default", o, split, &si);
  ASSERT_EQ(gp.results.size(), 3u);
  EXPECT_EQ(gp.results[2], "grad//w");
  ASSERT_EQ(up.args.size(), 3u);  // grad, lr, alpha
  // Adam's first step: alpha = lr * sqrt(1 - b2) / (1 - b1); both programs get the same scalars.
  auto feed_adam = [&](const StepProgram& p, ResourceStore& s, int64_t b, int64_t e,
                       const std::map<std::string, Tensor>& grads) {
    std::vector<Feed> feeds;
    auto h = std::map<std::string, float>{{"lr", 0.01f}, {"alpha", static_cast<float>(0.01 * std::sqrt(1 - 0.999) / 0.1)}};
    for (size_t i = 0; i < p.args.size(); ++i) {
      const ArgSpec& a = p.args[i];
      Tensor t;
      if (a.role == ArgRole::kFeature)
        t = Tensor::from_vector<float>(std::vector<float>(kX.begin() + b * 3, kX.begin() + e * 3), {e - b, 3});
      if (a.role == ArgRole::kLabels)
        t = Tensor::from_vector<int64_t>(std::vector<int64_t>(kY.begin() + b, kY.begin() + e), {e - b});
      if (a.role == ArgRole::kInvCount) t = Tensor::scalar<float>(0.25f);
      if (a.role == ArgRole::kHyper) t = Tensor::scalar<float>(h.at(a.name));
      if (a.role == ArgRole::kGrad) t = grads.at(a.name);
      feeds.push_back({p.graph->args[i]->out(), t});
    }
    return interpret(*p.graph, feeds, p.graph->results, p.graph->control_results, &s);
  };
  feed_adam(fp, full, 0, 4, {});
  std::vector<Tensor> a = feed_adam(gp, split, 0, 2, {});
  std::vector<Tensor> b = feed_adam(gp, split, 2, 4, {});
  Tensor g(DType::kFloat32, {3, 2});
  for (int i = 0; i < 6; ++i) g.data<float>()[i] = a[2].data<float>()[i] + b[2].data<float>()[i];
  feed_adam(up, split, 0, 0, {{"/w", g}});
  for (const std::string& k : {std::string("/w"), std::string("/tessera/slots/m/w"), std::string("/tessera/slots/v/w")}) {
    Tensor x = full.read(k), y = split.read(k);
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(x.data<float>()[i], y.data<float>()[i], 1e-7) << k << " " << i;
  }
  // The step really moved the variable.
  EXPECT_GT(std::abs(full.read("/w").data<float>()[0] - kW[0]), 1e-3);
}

TEST(StepBuilder, EndpointDiscoveryOrder) {
  Module m = tiny_module();
  EXPECT_EQ(discover_endpoint(m, "", false), "serving_default");
  EXPECT_EQ(discover_endpoint(m, "", true), "serving_default");
  m.signatures["train_forward"] = m.signatures["serving_default"];
  EXPECT_EQ(discover_endpoint(m, "", false), "train_forward");
  EXPECT_THROW(discover_endpoint(m, "nope", false), std::exception);
}

}  // namespace
}  // namespace tessera::train
