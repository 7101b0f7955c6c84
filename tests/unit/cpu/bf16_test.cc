// --precision bf16 on the cpu backend (docs/bf16.md). Two kinds of check per kernel:
// - inputs and weights that are exactly representable in bf16: bf16 products are exact in
//   f32, so the bf16 path must give the fp32 reference's numeric match (this catches wrong
//   layouts, reorders and post-ops in the bf16 primitives);
// - arbitrary f32 values: the result must differ from fp32 by more than fp32 noise (bf16 is
//   really used) and stay within bf16 rounding of the reference.
#include <cstring>

#include "backend/cpu/kernel.h"
#include "backend/cpu/onednn.h"
#include "cpu_test_util.h"
#include "support/error.h"

namespace tessera::cpu::testing {
namespace {

bool bf16_here() {
  onednn::init(resolve_isa(""));
  return resolve_isa("") == Isa::kAvx512 && onednn::bf16_supported();
}

// Drops the low 16 bits: the value is then exactly a bf16.
Tensor bf16_exact(Tensor t) {
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &t.data<float>()[i], 4);
    bits &= 0xffff0000u;
    std::memcpy(&t.data<float>()[i], &bits, 4);
  }
  return t;
}

struct Err {
  double max_abs = 0, max_ref = 0;
  double rel() const { return max_abs / std::max(max_ref, 1e-30); }
};

Err compare(const Tensor& ref, const Tensor& got) {
  EXPECT_EQ(shape_str(ref.shape()), shape_str(got.shape()));
  Err e;
  for (int64_t i = 0; i < ref.num_elements(); ++i) {
    e.max_ref = std::max(e.max_ref, std::fabs(static_cast<double>(ref.data<float>()[i])));
    e.max_abs = std::max(e.max_abs, std::fabs(static_cast<double>(ref.data<float>()[i]) - got.data<float>()[i]));
  }
  return e;
}

// Runs fn in bf16 (twice per argument set: first and planned runs) against the reference.
// exact: numeric match required; else bf16-sized error required (above fp32 noise, below tol).
void check_bf16(const FnGraph& fn, const std::vector<std::vector<Tensor>>& runs, const std::string& what, bool exact,
                double tol = 1e-2) {
  SCOPED_TRACE(what + (exact ? " (bf16-exact values)" : " (f32 values)"));
  auto exe = CpuExecutable::compile(fn.g, {2, "", "bf16"});
  for (int pass = 0; pass < 2; ++pass)
    for (size_t k = 0; k < runs.size(); ++k) {
      std::vector<Tensor> ref = call_function(*fn.g, runs[k], nullptr);
      std::vector<Tensor> got = exe->run(runs[k], nullptr);
      ASSERT_EQ(ref.size(), got.size());
      for (size_t i = 0; i < ref.size(); ++i) {
        if (exact) {
          expect_match(ref[i], got[i], what);
          continue;
        }
        Err e = compare(ref[i], got[i]);
        EXPECT_GT(e.rel(), 2e-6) << what << ": no bf16 rounding visible (max|ref| " << e.max_ref << ")";
        EXPECT_LT(e.rel(), tol) << what << ": max abs error " << e.max_abs << " of max|ref| " << e.max_ref;
      }
    }
}

Tensor rnd(const Shape& s, uint32_t seed, bool exact) {
  Tensor t = random_tensor(s, seed);
  return exact ? bf16_exact(t) : t;
}

TEST(CpuBf16, MatMulVariants) {
  if (!bf16_here()) GTEST_SKIP() << "no AVX-512 BF16 here (or the ISA is lowered)";
  for (bool exact : {true, false})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool const_b : {true, false}) {
          FnGraph fn;
          const int64_t k = 96, n = 40;
          Value a = fn.arg(DType::kFloat32, PartialShape({-1, -1}));
          Tensor bt = rnd(tb ? Shape{n, k} : Shape{k, n}, 7, exact);
          Value b = const_b ? fn.constant(bt) : fn.arg(DType::kFloat32, PartialShape(bt.shape()));
          fn.result(fn.op("MatMul", {a, b}, {{"T", DType::kFloat32}, {"transpose_a", ta}, {"transpose_b", tb}})->out());
          std::vector<std::vector<Tensor>> runs;
          for (int64_t m : {1, 5, 33}) {
            std::vector<Tensor> args = {rnd(ta ? Shape{k, m} : Shape{m, k}, static_cast<uint32_t>(m), exact)};
            if (!const_b) args.push_back(bt);
            runs.push_back(args);
          }
          check_bf16(fn, runs,
                     str_cat("MatMul ta=", ta, " tb=", tb, " const_b=", const_b), exact);
        }
}

TEST(CpuBf16, FusedMatMulPostOpsStayF32) {
  if (!bf16_here()) GTEST_SKIP() << "no AVX-512 BF16 here (or the ISA is lowered)";
  if (!has_op("TsFusedMatMul")) GTEST_SKIP() << "TsFusedMatMul not registered";
  for (bool exact : {true, false})
    for (const char* act : {"", "Relu", "GeluTanh", "Swish"})
      for (bool residual : {false, true}) {
        FnGraph fn;
        Value a = fn.arg(DType::kFloat32, PartialShape({-1, 7, 64}));
        // bias and residual are never rounded: f32 values there test that they stay f32.
        std::vector<Value> in = {a, fn.constant(rnd({64, 24}, 1, exact)), fn.constant(random_tensor({24}, 2))};
        if (residual) in.push_back(fn.arg(DType::kFloat32, PartialShape({-1, 7, 24})));
        fn.result(fn.op("TsFusedMatMul", in,
                        {{"T", DType::kFloat32}, {"transpose_a", false}, {"transpose_b", false}, {"has_bias", true},
                         {"has_residual", residual}, {"activation", std::string(act)}, {"alpha", 0.1f}})->out());
        std::vector<std::vector<Tensor>> runs;
        for (int64_t bsz : {1, 3}) {
          std::vector<Tensor> args = {rnd({bsz, 7, 64}, 3, exact)};
          if (residual) args.push_back(random_tensor({bsz, 7, 24}, 4));
          runs.push_back(args);
        }
        check_bf16(fn, runs, str_cat("TsFusedMatMul ", act, residual ? " residual" : ""), exact);
      }
}

TEST(CpuBf16, BatchMatMul) {
  if (!bf16_here()) GTEST_SKIP() << "no AVX-512 BF16 here (or the ISA is lowered)";
  for (bool exact : {true, false})
    for (bool adj_x : {false, true})
      for (bool adj_y : {false, true}) {
        // adj only reinterprets the stored matrices: [.., 16, 48] read as x^T is [.., 48, 16].
        Shape xs = adj_x ? Shape{2, 3, 48, 16} : Shape{2, 3, 16, 48};
        Shape ys = adj_y ? Shape{2, 3, 16, 48} : Shape{2, 3, 48, 16};
        FnGraph fn;
        Value x = fn.arg(DType::kFloat32, PartialShape({-1, 3, xs[2], xs[3]}));
        Value y = fn.arg(DType::kFloat32, PartialShape({-1, 3, ys[2], ys[3]}));
        fn.result(fn.op("BatchMatMulV2", {x, y}, {{"T", DType::kFloat32}, {"adj_x", adj_x}, {"adj_y", adj_y}})->out());
        check_bf16(fn, {{rnd(xs, 1, exact), rnd(ys, 2, exact)}},
                   str_cat("BatchMatMulV2 adj_x=", adj_x, " adj_y=", adj_y), exact);
      }
}

AttrMap conv_attrs(const std::vector<int64_t>& strides, const std::string& padding) {
  return {{"T", DType::kFloat32}, {"strides", strides}, {"dilations", std::vector<int64_t>{1, 1, 1, 1}},
          {"padding", padding}, {"data_format", std::string("NHWC")}};
}

TEST(CpuBf16, Conv2DAndFused) {
  if (!bf16_here()) GTEST_SKIP() << "no AVX-512 BF16 here (or the ISA is lowered)";
  struct Case {
    Shape x, f;
    std::vector<int64_t> strides;
    std::string padding;
  };
  const std::vector<Case> cases = {{{1, 9, 9, 16}, {3, 3, 16, 32}, {1, 1, 1, 1}, "SAME"},
                                   {{2, 10, 7, 5}, {3, 2, 5, 7}, {1, 2, 2, 1}, "VALID"},
                                   {{1, 8, 8, 32}, {1, 1, 32, 64}, {1, 1, 1, 1}, "VALID"},
                                   {{1, 7, 7, 8}, {3, 3, 4, 8}, {1, 1, 1, 1}, "SAME"}};  // 2 groups
  for (bool exact : {true, false})
    for (const Case& c : cases)
      for (bool const_f : {true, false}) {
        FnGraph fn;
        Value x = fn.arg(DType::kFloat32, PartialShape({-1, c.x[1], c.x[2], c.x[3]}));
        Tensor f = rnd(c.f, 5, exact);
        Value fv = const_f ? fn.constant(f) : fn.arg(DType::kFloat32, PartialShape(c.f));
        fn.result(fn.op("Conv2D", {x, fv}, conv_attrs(c.strides, c.padding))->out());
        std::vector<std::vector<Tensor>> runs;
        for (int64_t n : {c.x[0], int64_t{3}}) {
          std::vector<Tensor> args = {rnd({n, c.x[1], c.x[2], c.x[3]}, static_cast<uint32_t>(n), exact)};
          if (!const_f) args.push_back(f);
          runs.push_back(args);
        }
        check_bf16(fn, runs, "Conv2D " + shape_str(c.x) + shape_str(c.f) + (const_f ? " const" : " arg"), exact);
      }
  if (!has_op("TsFusedConv2D")) return;
  for (bool exact : {true, false})
    for (const char* act : {"", "Relu6", "Swish"})
      for (bool residual : {false, true}) {
        FnGraph fn;
        Value x = fn.arg(DType::kFloat32, PartialShape({-1, 8, 8, 16}));
        std::vector<Value> in = {x, fn.constant(rnd({3, 3, 16, 16}, 1, exact)), fn.constant(random_tensor({16}, 2))};
        if (residual) in.push_back(fn.arg(DType::kFloat32, PartialShape({-1, 8, 8, 16})));
        AttrMap attrs = conv_attrs({1, 1, 1, 1}, "SAME");
        attrs["has_bias"] = true;
        attrs["has_residual"] = residual;
        attrs["activation"] = std::string(act);
        attrs["alpha"] = 0.2f;
        fn.result(fn.op("TsFusedConv2D", in, attrs)->out());
        std::vector<std::vector<Tensor>> runs;
        for (int64_t n : {1, 2}) {
          std::vector<Tensor> args = {rnd({n, 8, 8, 16}, 3, exact)};
          if (residual) args.push_back(random_tensor({n, 8, 8, 16}, 4));
          runs.push_back(args);
        }
        // Relu6 caps max|ref| at 6 while pre-activation sums reach ~20: a looser bound.
        check_bf16(fn, runs, str_cat("TsFusedConv2D ", act, residual ? " residual" : ""), exact, 3e-2);
      }
}

TEST(CpuBf16, DepthwiseStaysF32) {
  if (!bf16_here()) GTEST_SKIP() << "no AVX-512 BF16 here (or the ISA is lowered)";
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 9, 9, 8}));
  fn.result(fn.op("DepthwiseConv2dNative", {x, fn.constant(random_tensor({3, 3, 8, 1}, 6))},
                  conv_attrs({1, 1, 1, 1}, "SAME"))->out());
  auto exe = CpuExecutable::compile(fn.g, {2, "", "bf16"});
  std::vector<Tensor> args = {random_tensor({2, 9, 9, 8}, 1)};
  expect_match(call_function(*fn.g, args, nullptr)[0], exe->run(args, nullptr)[0], "depthwise in bf16 mode");
}

TEST(CpuBf16, PackedWeightsAreBf16AndNamedSo) {
  if (!bf16_here()) GTEST_SKIP() << "no AVX-512 BF16 here (or the ISA is lowered)";
  FnGraph fn;
  Value a = fn.arg(DType::kFloat32, PartialShape({-1, 256}));
  fn.result(fn.op("MatMul", {a, fn.constant(random_tensor({256, 192}, 1))}, {{"T", DType::kFloat32}})->out());
  auto fp32 = CpuExecutable::compile(fn.g, {1, ""});
  auto bf16 = CpuExecutable::compile(fn.g, {1, "", "bf16"});
  const std::vector<PackedWeight> p32 = fp32->packed_weights(), p16 = bf16->packed_weights();
  ASSERT_EQ(p32.size(), 1u);
  ASSERT_EQ(p16.size(), 1u);
  EXPECT_NE(p16[0].layout.find(";dt=bf16"), std::string::npos) << p16[0].layout;
  EXPECT_EQ(p32[0].layout.find(";dt="), std::string::npos) << p32[0].layout;
  EXPECT_EQ(p16[0].data.nbytes() * 2, p32[0].data.nbytes());  // 256x192 needs no padding either way
  // A bf16 executable given the fp32 packs ignores them (names differ) and still runs right.
  auto mixed = CpuExecutable::compile(fn.g, {1, "", "bf16"}, fp32->packed_weights());
  std::vector<Tensor> args = {bf16_exact(random_tensor({3, 256}, 2))};
  Tensor ref = call_function(*fn.g, {args[0]}, nullptr)[0];
  Err e = compare(ref, mixed->run(args, nullptr)[0]);
  EXPECT_LT(e.rel(), 1e-2);
}

TEST(CpuBf16, UnknownPrecisionAndMissingBf16AreClearErrors) {
  FnGraph fn;
  Value a = fn.arg(DType::kFloat32, PartialShape({-1, 8}));
  fn.result(fn.op("MatMul", {a, fn.constant(random_tensor({8, 8}, 1))}, {{"T", DType::kFloat32}})->out());
  try {
    CpuExecutable::compile(fn.g, {1, "", "fp16"});
    ADD_FAILURE() << "fp16 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("unknown precision 'fp16'"), std::string::npos) << e.what();
  }
  // Kernels asked for AVX2 cannot run bf16, whatever the processor has.
  if (detected_isa() < Isa::kAvx2) GTEST_SKIP() << "no AVX2";
  try {
    CpuExecutable::compile(fn.g, {1, "avx2", "bf16"});
    ADD_FAILURE() << "bf16 accepted with avx2 kernels";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(std::string(e.what()).find("bf16 precision needs AVX-512 BF16"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--precision fp32"), std::string::npos) << e.what();
  }
}

TEST(CpuBf16, ConversionRoundsToNearestEven) {
  onednn::init(resolve_isa(""));
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to even (1); just
  // above it rounds up. 37 values exercise both the 16-wide and the scalar tail.
  std::vector<float> src(37);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i) - 18.f;
  src[0] = 1.f + 1.f / 256;
  src[1] = 1.f + 1.f / 256 + 1.f / 65536;
  src[36] = 1.f + 3.f / 256;  // halfway between 1+2/256 and 1+4/256: to even, 1+4/256 (scalar tail)
  std::vector<uint16_t> dst(src.size());
  onednn::to_bf16(src.data(), dst.data(), static_cast<int64_t>(src.size()), 2);
  auto back = [](uint16_t h) {
    uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  };
  EXPECT_EQ(back(dst[0]), 1.f);
  EXPECT_EQ(back(dst[1]), 1.f + 1.f / 128);
  EXPECT_EQ(back(dst[36]), 1.f + 4.f / 256);
  for (size_t i = 2; i < 36; ++i) EXPECT_EQ(back(dst[i]), src[i]) << i;  // small integers are exact
}

}  // namespace
}  // namespace tessera::cpu::testing
