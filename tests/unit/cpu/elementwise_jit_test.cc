// The generated code for TsElementwise programs against the block interpreter (the vector
// loops of vec_impl.h), entry by entry: every op the generator emits, literal and
// per-row scalar operands, row lengths around the 16-lane vector (the masked tail), special
// values (NaN, ±inf, ±0, huge, tiny) and several outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "backend/cpu/elementwise_jit.h"
#include "backend/cpu/isa.h"
#include "backend/cpu/vec.h"

namespace tessera::cpu {
namespace {

bool have_avx512() { return detected_isa() == Isa::kAvx512; }

// The program evaluated by the block interpreter over whole rows.
std::vector<std::vector<float>> reference(const std::vector<Instr>& program, const std::vector<int>& outputs,
                                          const std::vector<std::vector<float>>& in, const std::vector<char>& scalar,
                                          int64_t n) {
  std::vector<std::vector<float>> entry(program.size(), std::vector<float>(n));
  std::vector<const float*> in_ptr;
  for (const auto& v : in) in_ptr.push_back(v.data());
  std::vector<float*> dst;
  for (auto& e : entry) dst.push_back(e.data());
  interpret_block(program, vec_table(Isa::kAvx512), in_ptr.data(), scalar.data(), dst.data(), n);
  std::vector<std::vector<float>> out;
  for (int e : outputs) out.push_back(entry[e]);
  return out;
}

std::vector<float> values(int64_t n, uint32_t seed, bool special, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  const float specials[] = {NAN, INFINITY, -INFINITY, 0.f, -0.f, 1e30f, -1e30f, 1e-30f, 100.f, -100.f, 9.5f, -9.5f};
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = special && i % 5 == 3 ? specials[(i / 5) % std::size(specials)] : d(rng);
  return v;
}

// Exact for arithmetic; the transcendental sequences may round differently (FMA contraction),
// which 1 − erf, 1 + tanh and the like turn into absolute differences of a few 1e-7.
::testing::AssertionResult close(float got, float want, float rel, float abs_tol) {
  if (std::isnan(want) && std::isnan(got)) return ::testing::AssertionSuccess();
  if (got == want) return ::testing::AssertionSuccess();
  if (std::isfinite(want) && std::fabs(got - want) <= rel * std::fabs(want) + abs_tol + 1e-37f)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got " << got << " want " << want;
}

void check(const std::vector<std::string>& lines, int inputs, std::vector<char> scalar = {},
           std::vector<int> outputs = {}, float rel = 0.f, bool special = true, float scale = 4.f, float abs_tol = 0.f) {
  if (scalar.empty()) scalar.assign(inputs, 0);
  if (outputs.empty()) outputs = {static_cast<int>(lines.size()) - 1};
  const std::vector<Instr> program = parse_program(lines, inputs);
  auto jit = ElementwiseJit::compile(program, outputs, scalar);
  ASSERT_NE(jit, nullptr) << lines.back();
  for (int64_t n : {1, 7, 15, 16, 17, 33, 64, 1000}) {
    std::vector<std::vector<float>> in;
    for (int j = 0; j < inputs; ++j) in.push_back(values(scalar[j] ? 1 : n, 11 + 7 * j + n, special, scale));
    std::vector<const float*> in_ptr;
    for (auto& v : in) in_ptr.push_back(v.data());
    std::vector<std::vector<float>> got(outputs.size(), std::vector<float>(n + 16, 12345.f));
    std::vector<float*> out_ptr;
    for (auto& v : got) out_ptr.push_back(v.data());
    jit->fn()(in_ptr.data(), out_ptr.data(), n);
    const auto want = reference(program, outputs, in, scalar, n);
    for (size_t k = 0; k < outputs.size(); ++k) {
      for (int64_t i = 0; i < n; ++i)
        ASSERT_TRUE(close(got[k][i], want[k][i], rel, abs_tol)) << lines.back() << " output " << k << " n " << n << " at " << i
                                                       << " inputs " << in[0][scalar[0] ? 0 : i];
      for (int64_t i = n; i < n + 16; ++i) ASSERT_EQ(got[k][i], 12345.f) << "wrote past the row, n " << n;
    }
  }
}

TEST(ElementwiseJit, ArithmeticUnaryOpsMatchTheVectorLoopsExactly) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this processor";
  for (const char* op : {"Neg", "Abs", "Sqrt", "Rsqrt", "Square", "Reciprocal", "Relu", "Relu6", "Floor", "Ceil"})
    check({std::string(op) + " $0"}, 1);
  check({"LeakyRelu $0 0.2"}, 1);
  check({"Cast $0"}, 1);
  check({"ZerosLike $0"}, 1);
  check({"OnesLike $0"}, 1);
}

TEST(ElementwiseJit, TranscendentalUnaryOpsMatchWithinRounding) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this processor";
  // Relative only: no cancellation inside (erfc keeps its relative accuracy in the tail).
  for (const char* op : {"Exp", "Sigmoid", "Erfc"}) {
    check({std::string(op) + " $0"}, 1, {}, {}, 2e-6f);
    check({std::string(op) + " $0"}, 1, {}, {}, 2e-6f, false, 12.f);  // the tails, no specials
  }
  for (const char* op : {"Tanh", "Elu", "Selu", "Erf", "GeluExact", "GeluTanh", "Swish"}) {
    check({std::string(op) + " $0"}, 1, {}, {}, 2e-6f, true, 4.f, 1e-6f);
    check({std::string(op) + " $0"}, 1, {}, {}, 2e-6f, false, 12.f, 1e-6f);
  }
}

TEST(ElementwiseJit, BinaryOpsWithVectorScalarAndLiteralOperands) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this processor";
  for (const char* op : {"AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "SquaredDifference", "Greater",
                         "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual"}) {
    const std::string o = op;
    check({o + " $0 $1"}, 2);
    check({o + " $0 $1"}, 2, {0, 1});
    check({o + " $0 $1"}, 2, {1, 0});
    check({o + " $0 0.5"}, 1);
    check({o + " 0.5 $0"}, 1);
  }
}

TEST(ElementwiseJit, BoolValuedEntriesAndSelect) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this processor";
  check({"Greater $0 0", "Less $1 0.5", "LogicalAnd %0 %1", "LogicalOr %0 %1", "LogicalNot %3", "Cast %4"}, 2);
  check({"GreaterEqual $0 0.3", "SelectV2 %0 $1 0"}, 2);   // dropout: zero-masked blend
  check({"GreaterEqual $0 0.3", "SelectV2 %0 $1 $0"}, 2);
  check({"GreaterEqual $0 0.3", "SelectV2 %0 1.5 $1"}, 2);
  check({"SelectV2 $0 $1 $2"}, 3, {1, 0, 0});               // one condition for the row
  check({"SelectV2 $0 $1 $2"}, 3, {0, 1, 0});
}

TEST(ElementwiseJit, SeveralOutputsLikeTheAdamUpdate) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this processor";
  const std::vector<std::string> adam = {"Sub $4 $2", "Mul %0 0.1",  "AddV2 $2 %1", "Square $4",
                                         "Sub %3 $3", "Mul %4 0.001", "AddV2 $3 %5", "Mul %2 $1",
                                         "Sqrt %6",   "AddV2 %8 1e-07", "RealDiv %7 %9", "Sub $0 %10"};
  check(adam, 5, {0, 1, 0, 0, 0}, {11, 2, 6}, 0.f, false);
  check(adam, 5, {0, 1, 0, 0, 0}, {11, 2, 2, 6}, 0.f, false);  // an entry exported twice
  // The gelu+dropout forward of the MLP step, exporting intermediates for the backward pass.
  check({"GreaterEqual $0 0.3", "Mul 0.5 $1", "Neg $1", "Mul %2 0.70710677", "Erfc %3", "Mul %1 %4",
         "Mul %5 1.4285715", "SelectV2 %0 %6 0"},
        2, {}, {7, 1, 4, 3}, 2e-6f);
}

TEST(ElementwiseJit, OutputZeroMayOverwriteAnInputItNoLongerReads) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this processor";
  const std::vector<Instr> program = parse_program({"Mul $0 2", "AddV2 %0 $1"}, 2);
  auto jit = ElementwiseJit::compile(program, {1}, {0, 0});
  ASSERT_NE(jit, nullptr);
  std::vector<float> a(37), b(37);
  for (int i = 0; i < 37; ++i) a[i] = static_cast<float>(i), b[i] = 100.f;
  const float* in[] = {a.data(), b.data()};
  float* out[] = {a.data()};
  jit->fn()(in, out, 37);
  for (int i = 0; i < 37; ++i) EXPECT_EQ(a[i], 2.f * i + 100.f);
}

TEST(ElementwiseJit, DeclinesWhatItDoesNotEmit) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this processor";
  for (const char* line : {"Log $0", "Softplus $0", "Pow $0 $0"})
    EXPECT_EQ(ElementwiseJit::compile(parse_program({line}, 1), {0}, {0}), nullptr) << line;
  // More live values than vector registers: 40 inputs all read by the last entries.
  std::vector<std::string> wide;
  for (int i = 0; i < 40; ++i) wide.push_back("Mul $" + std::to_string(i) + " 2");
  wide.push_back("AddV2 %0 %1");
  for (int i = 2; i < 40; ++i) wide.push_back("AddV2 %" + std::to_string(38 + i) + " %" + std::to_string(i));
  EXPECT_EQ(ElementwiseJit::compile(parse_program(wide, 40), {static_cast<int>(wide.size()) - 1},
                                    std::vector<char>(40, 1)),
            nullptr);
}

}  // namespace
}  // namespace tessera::cpu
