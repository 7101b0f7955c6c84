// The cpu conv kernel's algorithm choice (Winograd for 3x3 stride-1, TESSERA_CONV_ALGO) and
// MaxPool with EXPLICIT padding (what fold_pad_into_conv makes of ResNet's pool1_pad), each
// against the reference kernels on every ISA.
#include <cstdlib>

#include "backend/cpu/onednn.h"
#include "cpu_test_util.h"

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

// Winograd's weights are in oneDNN's opaque format, which the kernel keeps out of the
// artifact; so whether the filter shows up among the packed weights tells which one ran.
TEST(CpuConvAlgo, AutoPicksWinogradWhereOneDnnHasIt) {
  FnGraph fn = winograd_graph(16, 16, 64, 64, false);
  auto packed_count = [&](const char* algo) {
    ScopedAlgo scoped(algo);
    return CpuExecutable::compile(fn.g, {2, ""})->packed_weights().size();
  };
  EXPECT_EQ(packed_count("direct"), 1u);
  const std::string isa = onednn::effective_isa();
  const size_t expect = isa.rfind("avx512", 0) == 0 ? 0u : 1u;  // Winograd is avx512_core only
  EXPECT_EQ(packed_count("auto"), expect) << "oneDNN ISA " << isa;
  EXPECT_EQ(packed_count("winograd"), expect) << "oneDNN ISA " << isa;
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

}  // namespace
}  // namespace tessera::cpu::testing
