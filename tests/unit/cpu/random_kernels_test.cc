// TsRandomUniformIndexed's cpu kernel (rows split across threads; AVX-512 and scalar builds)
// draws exactly the reference kernel's values, and row r of a batch at offset o equals row 0 of a batch at offset o + r.
#include <gtest/gtest.h>

#include "backend/cpu/kernel.h"
#include "cpu/cpu_test_util.h"

namespace tessera::cpu {
namespace {

using testing::FnGraph;

TEST(RandomKernels, IndexedUniformMatchesReferenceExactly) {
  ASSERT_NE(find_kernel("TsRandomUniformIndexed"), nullptr);  // the fast kernel, not the fallback
  FnGraph fn;
  Value shape = fn.arg(DType::kInt32, PartialShape({2}));
  Value seed = fn.arg(DType::kInt64, PartialShape(std::vector<int64_t>{}));
  Value offset = fn.arg(DType::kInt64, PartialShape(std::vector<int64_t>{}));
  fn.result(fn.op("TsRandomUniformIndexed", {shape, seed, offset}, {{"dtype", DType::kFloat32}, {"stream", int64_t{77}}})->out());
  auto i64 = [](int64_t v) { return Tensor::from_vector<int64_t>({v}, {}); };
  auto dims = [](int32_t r, int32_t c) { return Tensor::from_vector<int32_t>({r, c}, {2}); };
  for (const char* isa : {"", "scalar"}) {
  SCOPED_TRACE(std::string("isa ") + (*isa ? isa : "detected"));
  auto exe = CpuExecutable::compile(fn.g, {2, isa});
  // Widths around the vector kernel's 64-float groups; seeds and offsets past 32 bits.
  for (auto [rows, cols, off, seed] : {std::tuple{37, 129, int64_t{0}, int64_t{99}},
                                       std::tuple{300, 5, int64_t{123456789}, int64_t{99}},
                                       std::tuple{1, 3, int64_t{7}, int64_t{99}},
                                       std::tuple{4, 512, (int64_t{1} << 33) + 5, int64_t{0x123456789AB}},
                                       std::tuple{3, 64, int64_t{1}, int64_t{-2}}}) {
    std::vector<Tensor> args = {dims(rows, cols), i64(seed), i64(off)};
    Tensor ref = call_function(*fn.g, args, nullptr)[0];
    Tensor got = exe->run(args, nullptr)[0];
    ASSERT_EQ(ref.shape(), got.shape());
    EXPECT_EQ(std::memcmp(ref.raw(), got.raw(), ref.nbytes()), 0) << rows << "x" << cols;
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < got.num_elements(); ++i) {
      lo = std::min(lo, got.data<float>()[i]);
      hi = std::max(hi, got.data<float>()[i]);
    }
    EXPECT_GE(lo, 0.0f);
    EXPECT_LT(hi, 1.0f);
    if (rows > 1) {  // the same sample seen as row 1, or as row 0 one sample later
      Tensor shifted = exe->run({dims(1, cols), i64(seed), i64(off + 1)}, nullptr)[0];
      EXPECT_EQ(std::memcmp(shifted.raw(), got.data<float>() + cols, cols * sizeof(float)), 0);
    }
  }
  }
}

}  // namespace
}  // namespace tessera::cpu
