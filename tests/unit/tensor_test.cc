#include "ir/tensor.h"

#include <gtest/gtest.h>

namespace tessera {

TEST(Tensor, HugeShapeIsRejectedBeforeAllocation) {
  EXPECT_THROW(Tensor(DType::kFloat32, {1000000000000}), Error);
}

TEST(Tensor, Float16RoundTrip) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1e-5f, 1e-7f}) {
    float back = static_cast<float>(float16(f));
    EXPECT_NEAR(back, f, std::abs(f) * 1e-3 + 6e-8) << f;
  }
  EXPECT_TRUE(std::isinf(static_cast<float>(float16(1e6f))));
  EXPECT_TRUE(std::isnan(static_cast<float>(bfloat16(NAN))));
}

}  // namespace tessera
