// The rdu cost of a multi-output TsElementwise: one SIMD pass over the iteration space (not
// one per output), every output's write counted in the kernel's bytes.
#include <gtest/gtest.h>

#include "backend/rdu/kernels.h"
#include "ir/parser.h"

namespace tessera::rdu {
namespace {

TEST(RduElementwiseCost, MultiOutputIsOnePass) {
  auto g = parse_graph(R"(
graph (x: float32[?,64], u: float32[?,64]) -> (a: f, b: f:1, c: f:2) {
  f = TsElementwise(x, u) {N=2, T=float32, outputs=[5, 0, 2], program=["Mul 0.5 $0", "Neg $0", "Erfc %1", "Mul %0 %2", "GreaterEqual $1 0.3", "SelectV2 %4 %3 0"]}
}
)");
  auto kernels = lower_graph(*g, 8, Precision{.bf16 = false});
  const Kernel* k = nullptr;
  for (const Kernel& kk : kernels)
    if (kk.op == "TsElementwise") k = &kk;
  ASSERT_TRUE(k);
  EXPECT_EQ(k->family, "elementwise");
  EXPECT_EQ(k->elems, 8 * 64);
  EXPECT_EQ(k->ops, 6);
  EXPECT_EQ(k->out_bytes, 3 * 8 * 64 * 4);
  EXPECT_EQ(k->act_in_bytes, 2 * 8 * 64 * 4);
  EXPECT_DOUBLE_EQ(k->flops, 6.0 * 8 * 64);
}

}  // namespace
}  // namespace tessera::rdu
