// The cpu conv kernel's algorithm choice (Winograd for 3x3 stride-1, TESSERA_CONV_ALGO) and
// MaxPool with EXPLICIT padding (what fold_pad_into_conv makes of ResNet's pool1_pad), each
// against the reference kernels on every ISA.
#include <cstdlib>
#include <tuple>

#include "backend/cpu/onednn.h"
#include "cpu_test_util.h"
#include "ir/parser.h"
#include "passes/pass.h"

namespace tessera::cpu::testing {
namespace {

// Sets TESSERA_CONV_ALGO for one scope (the kernel reads it when it is built).
struct ScopedAlgo {
  explicit ScopedAlgo(const char* v) { setenv("TESSERA_CONV_ALGO", v, 1); }
  ~ScopedAlgo() { unsetenv("TESSERA_CONV_ALGO"); }
};

// act(conv3x3(x) + bias), SAME, const filter: the shape Winograd takes in ResNet.
FnGraph winograd_graph(int64_t h, int64_t w, int64_t cin, int64_t cout, bool residual) {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, h, w, cin}));
  std::vector<Value> in = {x, fn.constant(random_tensor({3, 3, cin, cout}, 3, -0.3f, 0.3f)),
                           fn.constant(random_tensor({cout}, 4))};
  if (residual) in.push_back(fn.arg(DType::kFloat32, PartialShape({-1, h, w, cout})));
  fn.result(fn.op("TsFusedConv2D", in,
                  {{"T", DType::kFloat32}, {"strides", std::vector<int64_t>{1, 1, 1, 1}},
                   {"dilations", std::vector<int64_t>{1, 1, 1, 1}}, {"padding", std::string("SAME")},
                   {"data_format", std::string("NHWC")}, {"has_bias", true}, {"has_residual", residual},
                   {"activation", std::string("Relu")}})
                ->out());
  return fn;
}

std::vector<std::vector<Tensor>> runs_for(int64_t h, int64_t w, int64_t cin, int64_t cout, bool residual) {
  std::vector<std::vector<Tensor>> runs;
  for (int64_t n : {1, 3}) {
    std::vector<Tensor> args = {random_tensor({n, h, w, cin}, static_cast<uint32_t>(10 + n))};
    if (residual) args.push_back(random_tensor({n, h, w, cout}, static_cast<uint32_t>(20 + n)));
    runs.push_back(args);
  }
  return runs;
}

TEST(CpuConvAlgo, EveryAlgorithmMatchesTheReference) {
  struct Case {
    int64_t h, w, cin, cout;
    bool residual;
  };
  // 16x16 / 64: what auto picks Winograd for; 7x5 / 5 -> 3: odd sizes, channels not a multiple
  // of 16; with a residual (which keeps the direct algorithm).
  const std::vector<Case> cases = {{16, 16, 64, 64, false}, {7, 5, 5, 3, false}, {12, 12, 32, 48, true}};
  for (const char* algo : {"direct", "winograd", "auto"}) {
    ScopedAlgo scoped(algo);
    for (const Case& c : cases)
      check_graph(winograd_graph(c.h, c.w, c.cin, c.cout, c.residual), runs_for(c.h, c.w, c.cin, c.cout, c.residual),
                  std::string(algo) + " " + std::to_string(c.h) + "x" + std::to_string(c.w) + " " +
                      std::to_string(c.cin) + "->" + std::to_string(c.cout));
  }
}

// Winograd's weights are in oneDNN's "wino" format, which the packed layout's name spells
// out; so the name tells which algorithm ran. An artifact's Winograd pack is adopted as is.
TEST(CpuConvAlgo, AutoPicksWinogradWhereOneDnnHasIt) {
  FnGraph fn = winograd_graph(16, 16, 64, 64, false);
  auto layout = [&](const char* algo) {
    ScopedAlgo scoped(algo);
    auto packed = CpuExecutable::compile(fn.g, {2, ""})->packed_weights();
    return packed.size() == 1 ? packed[0].layout : std::string("(") + std::to_string(packed.size()) + " packs)";
  };
  EXPECT_EQ(layout("direct").find(";wino="), std::string::npos) << layout("direct");
  const std::string isa = onednn::effective_isa();
  const bool wino = isa.rfind("avx512", 0) == 0;  // Winograd is avx512_core only
  EXPECT_EQ(layout("auto").find(";wino=") != std::string::npos, wino) << layout("auto");
  EXPECT_EQ(layout("winograd").find(";wino=") != std::string::npos, wino) << layout("winograd");

  auto first = CpuExecutable::compile(fn.g, {2, ""});
  std::vector<PackedWeight> packs = first->packed_weights();
  ASSERT_EQ(packs.size(), 1u);
  auto second = CpuExecutable::compile(fn.g, {2, ""}, packs);
  ASSERT_EQ(second->packed_weights().size(), 1u);
  EXPECT_EQ(second->packed_weights()[0].data.raw(), packs[0].data.raw());  // adopted, not repacked
  auto runs = runs_for(16, 16, 64, 64, false);
  for (const auto& args : runs)
    expect_match(call_function(*fn.g, args, nullptr)[0], second->run(args, nullptr)[0], "adopted pack");
}

TEST(CpuConvAlgo, UnknownAlgorithmIsAnError) {
  ScopedAlgo scoped("fast");
  FnGraph fn = winograd_graph(8, 8, 16, 16, false);
  EXPECT_THROW(CpuExecutable::compile(fn.g, {2, ""}), Error);
}

TEST(CpuPool, MaxPoolExplicitPadding) {
  struct Case {
    Shape x;
    std::vector<int64_t> pads;
    int64_t stride;
  };
  const std::vector<Case> cases = {{{1, 9, 8, 4}, {0, 0, 1, 1, 1, 2, 0, 0}, 2},
                                   {{2, 6, 7, 17}, {0, 0, 2, 0, 0, 1, 0, 0}, 1}};
  for (const Case& c : cases) {
    FnGraph fn;
    Value x = fn.arg(DType::kFloat32, PartialShape({-1, c.x[1], c.x[2], c.x[3]}));
    fn.result(fn.op("MaxPool", {x},
                    {{"T", DType::kFloat32}, {"ksize", std::vector<int64_t>{1, 3, 3, 1}},
                     {"strides", std::vector<int64_t>{1, c.stride, c.stride, 1}}, {"padding", std::string("EXPLICIT")},
                     {"explicit_paddings", c.pads}, {"data_format", std::string("NHWC")}})
                  ->out());
    // Negative inputs too: padded positions must be ignored, not read as zeros.
    check_graph(fn, {{random_tensor(c.x, 1)}, {random_tensor({3, c.x[1], c.x[2], c.x[3]}, 2)}},
                "MaxPool EXPLICIT " + shape_str(c.x));
  }
}

// An NCHW network (as TF1 graphs write it) through the default pipeline: assign_layout makes
// it NHWC, so it runs on the oneDNN conv/pool kernels (Winograd included), and the results
// match the reference interpreter on the graph as written.
TEST(CpuConvAlgo, NchwGraphRunsOnTheNhwcKernels) {
  const char* text = R"(
graph (x: float32[?,16,10,10]) -> (y: y, m: m) {
  w = Const() {dtype=float32, value=float32[1,1,16,16]{%W1%}}
  c = Conv2D(x, w) {T=float32, data_format="NCHW", padding="VALID", strides=[1, 1, 1, 1]}
  b = Const() {dtype=float32, value=float32[16]{%B%}}
  ba = BiasAdd(c, b) {T=float32, data_format="NCHW"}
  r = Relu(ba) {T=float32}
  p = Const() {dtype=int32, value=int32[4,2]{0, 0, 0, 0, 1, 1, 1, 1}}
  rp = Pad(r, p) {T=float32, Tpaddings=int32}
  mp = MaxPool(rp) {T=float32, data_format="NCHW", ksize=[1, 1, 3, 3], padding="VALID", strides=[1, 1, 1, 1]}
  w3 = Const() {dtype=float32, value=float32[3,3,16,16]{%W3%}}
  c3 = Conv2D(mp, w3) {T=float32, data_format="NCHW", padding="SAME", strides=[1, 1, 1, 1]}
  y = AddV2(c3, r) {T=float32}
  ax = Const() {dtype=int32, value=int32[2]{2, 3}}
  m = Mean(y, ax) {T=float32, Tidx=int32, keep_dims=false}
}
)";
  auto values = [](int64_t n, uint32_t seed) {
    Tensor t = random_tensor({n}, seed, -0.5f, 0.5f);
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += (i ? ", " : "") + std::to_string(t.data<float>()[i]);
    return out;
  };
  std::string src = text;
  for (auto [key, n, seed] : {std::tuple{"%W1%", 256, 1u}, {"%B%", 16, 2u}, {"%W3%", 2304, 3u}})
    src.replace(src.find(key), std::string(key).size(), values(n, seed));
  auto original = parse_graph(src);
  auto g = parse_graph(src);
  passes::run_passes(*g, passes::default_pipeline(), {});
  int transposes = 0;
  for (const auto& n : g->nodes()) {
    EXPECT_NE(n->attr_or<std::string>("data_format", "NHWC"), "NCHW") << n->label();
    EXPECT_NE(n->op, "Pad") << n->label();  // folded into the (now NHWC) MaxPool
    transposes += n->op == "Transpose";
  }
  EXPECT_EQ(transposes, 2);  // the input, and y back to NCHW
  for (const std::string& isa : available_isas()) {
    auto exe = CpuExecutable::compile(g, {2, isa});
    for (int64_t n : {1, 3}) {
      std::vector<Tensor> args = {random_tensor({n, 16, 10, 10}, static_cast<uint32_t>(n))};
      std::vector<Tensor> ref = call_function(*original, args, nullptr), got = exe->run(args, nullptr);
      ASSERT_EQ(ref.size(), got.size());
      for (size_t i = 0; i < ref.size(); ++i) expect_match(ref[i], got[i], isa + " result " + std::to_string(i));
    }
  }
}

}  // namespace
}  // namespace tessera::cpu::testing
