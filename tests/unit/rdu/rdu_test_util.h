// Helpers for the rdu tests: the tiny preset and small function-form graphs.
#pragma once
#include <gtest/gtest.h>

#include "backend/rdu/simulator.h"
#include "backend/rdu/validator.h"
#include "cpu/cpu_test_util.h"

namespace tessera::rdu::testing {

inline Arch tiny() { return load_arch(std::string(TESSERA_SOURCE_DIR) + "/configs/rdu/tiny.json"); }
inline Arch preset(const std::string& name) { return load_arch(std::string(TESSERA_SOURCE_DIR) + "/configs/rdu/" + name + ".json"); }

using cpu::testing::FnGraph;

// x [m, k] (batch-free) times a constant [k, n].
inline FnGraph matmul_graph(int64_t m, int64_t k, int64_t n) {
  FnGraph f;
  Value x = f.arg(DType::kFloat32, PartialShape({m, k}));
  Value w = f.constant(cpu::testing::random_tensor({k, n}, 1));
  f.result(f.op("MatMul", {x, w}, {{"T", DType::kFloat32}, {"transpose_a", false}, {"transpose_b", false}})->out());
  return f;
}

// A chain of `count` Relu ops on x [n].
inline FnGraph relu_chain(int64_t n, int count) {
  FnGraph f;
  Value v = f.arg(DType::kFloat32, PartialShape({n}));
  for (int i = 0; i < count; ++i) v = f.op("Relu", {v}, {{"T", DType::kFloat32}})->out();
  f.result(v);
  return f;
}

}  // namespace tessera::rdu::testing
