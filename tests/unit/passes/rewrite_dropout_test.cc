// rewrite_dropout: Keras 3 (stateless draw seeded from a seed-generator variable it also
// updates) and tf_keras (RandomUniform) dropout masks become TsRandomUniformIndexed keyed on
// the global sample index; the state updates go; graphs without dropout stay as they are.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/npy.h"
#include "passes/pass_test_util.h"
#include "passes/signature_graph.h"
#include "runtime/model.h"
#include "zoo_test_util.h"

namespace tessera {
namespace {

using testing::run_on;

// Keras 3's dropout (rate 0.5): seed = state, state += [0, 1], stateless draw, mask u >= rate.
const char* kKeras3 = R"(
graph (x: float32[?,6]) -> (y: y, ^upd) {
  st = VarHandleOp() {dtype=int64, shape=shape[2], shared_name="seed_state"}
  sr = ReadVariableOp(st) {dtype=int64}
  inc = Const() {dtype=int64, value=int64[2]{0, 1}}
  nxt = AddV2(sr, inc) {T=int64}
  upd = AssignVariableOp(st, nxt) {dtype=int64}
  kc = StatelessRandomGetKeyCounter(sr) {Tseed=int64}
  s = Shape(x) {T=float32, out_type=int32}
  alg = Const() {dtype=int32, value=int32[]{1}}
  u = StatelessRandomUniformV2(s, kc:0, kc:1, alg) {dtype=float32, Tshape=int32}
  rate = Const() {dtype=float32, value=float32[]{0.5}}
  keep = GreaterEqual(u, rate) {T=float32}
  two = Const() {dtype=float32, value=float32[]{2}}
  xs = Mul(x, two) {T=float32}
  zero = Const() {dtype=float32, value=float32[]{0}}
  y = SelectV2(keep, xs, zero) {T=float32}
}
)";

// tf_keras's dropout (rate 0.3) draws with the stateful RandomUniform.
const char* kTfKeras = R"(
graph (x: float32[?,5]) -> (y: y) {
  s = Shape(x) {T=float32, out_type=int32}
  u = RandomUniform(s) {dtype=float32, T=int32, seed=7, seed2=3}
  rate = Const() {dtype=float32, value=float32[]{0.3}}
  keep = GreaterEqual(u, rate) {T=float32}
  k = Const() {dtype=float32, value=float32[]{1.4285715}}
  xs = Mul(x, k) {T=float32}
  zero = Const() {dtype=float32, value=float32[]{0}}
  y = SelectV2(keep, xs, zero) {T=float32}
}
)";

Tensor ones(int64_t rows, int64_t cols) {
  Tensor t(DType::kFloat32, {rows, cols});
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = 1.0f;
  return t;
}

Tensor i64(int64_t v) { return Tensor::from_vector<int64_t>({v}, {}); }

// Runs the rewritten graph on `rows` samples starting at global index `offset`.
Tensor masks(const Graph& g, int64_t rows, int64_t cols, int64_t seed, int64_t offset, ResourceStore* vars) {
  return testing::call(g, {ones(rows, cols), i64(seed), i64(offset)}, vars)[0];
}

TEST(RewriteDropout, Keras3DrawBecomesIndexedAndStateUpdatesGo) {
  auto g = run_on(kKeras3, {"rewrite_dropout"});
  ASSERT_EQ(g->args.size(), 3u);
  EXPECT_EQ(g->args[1]->name, "tessera/dropout_seed");
  EXPECT_EQ(g->args[2]->name, "tessera/sample_offset");
  int indexed = 0;
  for (const auto& n : g->nodes()) {
    EXPECT_NE(n->op, "StatelessRandomUniformV2");
    EXPECT_NE(n->op, "AssignVariableOp") << "the seed-state update must go";
    EXPECT_NE(n->op, "ReadVariableOp") << "the seed-state read must go";
    if (n->op == "TsRandomUniformIndexed") ++indexed;
  }
  EXPECT_EQ(indexed, 1);
  EXPECT_TRUE(g->control_results.empty());
  ResourceStore vars;  // no seed state is needed any more
  Tensor y = masks(*g, 4, 6, 11, 0, &vars);
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    float v = y.data<float>()[i];
    EXPECT_TRUE(v == 0.0f || v == 2.0f) << v;
  }
}

// A sample's mask is the same in a batch of 8 at row 5 and in a batch of 2 at row 1.
TEST(RewriteDropout, MaskDependsOnlyOnGlobalSampleIndex) {
  for (const char* text : {kKeras3, kTfKeras}) {
    auto g = run_on(text, {"rewrite_dropout"});
    int64_t cols = text == kKeras3 ? 6 : 5;
    ResourceStore vars;
    Tensor big = masks(*g, 8, cols, 1234, 100, &vars);    // samples 100..107
    Tensor small = masks(*g, 2, cols, 1234, 104, &vars);  // samples 104, 105
    for (int64_t j = 0; j < cols; ++j) {
      EXPECT_EQ(big.data<float>()[5 * cols + j], small.data<float>()[1 * cols + j]);
      EXPECT_EQ(big.data<float>()[4 * cols + j], small.data<float>()[0 * cols + j]);
    }
    // Calling again gives the same masks (no hidden state) ...
    Tensor again = masks(*g, 8, cols, 1234, 100, &vars);
    EXPECT_EQ(std::memcmp(big.raw(), again.raw(), big.nbytes()), 0);
    // ... and another seed gives other masks.
    Tensor other = masks(*g, 8, cols, 1235, 100, &vars);
    EXPECT_NE(std::memcmp(big.raw(), other.raw(), big.nbytes()), 0);
  }
}

TEST(RewriteDropout, KeepFractionIsOneMinusRate) {
  auto g = run_on(kTfKeras, {"rewrite_dropout"});
  ResourceStore vars;
  const int64_t rows = 4000, cols = 5;
  Tensor y = masks(*g, rows, cols, 42, 0, &vars);
  int64_t kept = 0;
  double sum = 0;
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    kept += y.data<float>()[i] != 0.0f;
    sum += y.data<float>()[i];
  }
  double frac = static_cast<double>(kept) / static_cast<double>(rows * cols);
  EXPECT_NEAR(frac, 0.7, 0.01);  // 20,000 draws: 3 standard deviations are 0.0097
  EXPECT_NEAR(sum / static_cast<double>(rows * cols), 1.0, 0.015);  // inverted dropout keeps the mean
}

TEST(RewriteDropout, TwoLayersGetDifferentStreams) {
  const char* text = R"(
graph (x: float32[?,64]) -> (a: a, b: b) {
  s = Shape(x) {T=float32, out_type=int32}
  u1 = RandomUniform(s) {dtype=float32, T=int32, seed=7}
  u2 = RandomUniform(s) {dtype=float32, T=int32, seed=7}
  rate = Const() {dtype=float32, value=float32[]{0.5}}
  a = GreaterEqual(u1, rate) {T=float32}
  b = GreaterEqual(u2, rate) {T=float32}
}
)";
  auto g = run_on(text, {"rewrite_dropout"});
  ResourceStore vars;
  auto out = testing::call(*g, {ones(3, 64), i64(9), i64(0)}, &vars);
  EXPECT_NE(std::memcmp(out[0].raw(), out[1].raw(), out[0].nbytes()), 0);
}

// A seed state that also seeds a draw that is not a dropout mask keeps its reads and update.
TEST(RewriteDropout, SharedSeedStateKeepsItsUpdate) {
  const char* text = R"(
graph (x: float32[?,6]) -> (y: y, z: z, ^upd) {
  st = VarHandleOp() {dtype=int64, shape=shape[2], shared_name="seed_state"}
  sr = ReadVariableOp(st) {dtype=int64}
  inc = Const() {dtype=int64, value=int64[2]{0, 1}}
  nxt = AddV2(sr, inc) {T=int64}
  upd = AssignVariableOp(st, nxt) {dtype=int64}
  kc = StatelessRandomGetKeyCounter(sr) {Tseed=int64}
  s = Shape(x) {T=float32, out_type=int32}
  alg = Const() {dtype=int32, value=int32[]{1}}
  u = StatelessRandomUniformV2(s, kc:0, kc:1, alg) {dtype=float32, Tshape=int32}
  rate = Const() {dtype=float32, value=float32[]{0.5}}
  y = GreaterEqual(u, rate) {T=float32}
  noise = StatelessRandomUniformV2(s, kc:0, kc:1, alg) {dtype=float32, Tshape=int32}
  z = Mul(x, noise) {T=float32}
}
)";
  auto g = run_on(text, {"rewrite_dropout"});
  int assigns = 0, indexed = 0, stateless = 0;
  for (const auto& n : g->nodes()) {
    assigns += n->op == "AssignVariableOp";
    indexed += n->op == "TsRandomUniformIndexed";
    stateless += n->op == "StatelessRandomUniformV2";
  }
  EXPECT_EQ(indexed, 1);
  EXPECT_EQ(stateless, 1);  // the noise draw is not a mask: untouched
  EXPECT_EQ(assigns, 1);    // and its generator still advances
  EXPECT_EQ(g->control_results.size(), 1u);
}

TEST(RewriteDropout, GraphWithoutDropoutIsUnchanged) {
  const char* text = R"(
graph (x: float32[?,4]) -> (y: y, n: n) {
  s = Shape(x) {T=float32, out_type=int32}
  n = RandomStandardNormal(s) {dtype=float32, T=int32, seed=1}
  u = RandomUniform(s) {dtype=float32, T=int32, seed=2}
  y = Mul(x, u) {T=float32}
}
)";
  auto g = run_on(text, {"rewrite_dropout"});
  EXPECT_EQ(testing::canonical_ir(*g), testing::canonical_ir(*parse_graph(text)));
  EXPECT_EQ(g->args.size(), 1u);
}

// The zoo's MLPs with Dropout(0.3) (Keras 3 and tf_keras): after the pass, the training
// forward of a sample does not depend on the batch around it (the MLP is row-independent).
class ZooMlp : public ::testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(ZooMlp, TrainingForwardIsPerSample) {
  namespace fs = std::filesystem;
  auto [name, endpoint] = GetParam();
  fs::path dir = testing::zoo_dir() / name;
  if (!fs::exists(dir / "train_ref.npz")) GTEST_SKIP() << "no train tier at " << dir;
  LoadOptions options;
  options.training_signature = true;  // tf_keras: tessera_training_forward
  auto model = Model::load((dir / "saved_model").string(), options);
  auto g = signature_graph(model->module(), model->signature(endpoint));
  passes::run_passes(*g, {"rewrite_dropout"});
  ASSERT_EQ(g->args.size(), 3u);
  for (const auto& n : g->nodes()) {
    EXPECT_NE(n->op, "StatelessRandomUniformV2");
    EXPECT_NE(n->op, "RandomUniform");
    EXPECT_FALSE(n->op == "AssignVariableOp") << n->name;  // only the seed states were assigned
  }
  npy::NamedTensors ref = npy::load_npz((dir / "train_ref.npz").string());
  auto it = std::find_if(ref.begin(), ref.end(), [](const auto& kv) { return kv.first == "x"; });
  ASSERT_NE(it, ref.end());
  Tensor x = it->second;
  ASSERT_EQ(x.shape(), (Shape{8, 784}));
  auto run = [&](const Tensor& in, int64_t offset) {
    ResourceStore store;
    store.restore(model->variables());
    return testing::call(*g, {in, i64(5), i64(offset)}, &store)[0];
  };
  Tensor full = run(x, 1000);
  Tensor part(DType::kFloat32, {2, 784});
  std::memcpy(part.data<float>(), x.data<float>() + 5 * 784, 2 * 784 * sizeof(float));
  Tensor rows = run(part, 1005);
  for (int j = 0; j < 20; ++j) EXPECT_NEAR(full.data<float>()[50 + j], rows.data<float>()[j], 1e-6);
  Tensor shifted = run(x, 1001);  // other samples' masks: other outputs
  EXPECT_NE(std::memcmp(full.raw(), shifted.raw(), full.nbytes()), 0);
}

INSTANTIATE_TEST_SUITE_P(RewriteDropout, ZooMlp,
                         ::testing::Values(std::pair{"mlp_train_k3", "train_forward"},
                                           std::pair{"mlp_train_tfk", "tessera_training_forward"}));

}  // namespace
}  // namespace tessera
