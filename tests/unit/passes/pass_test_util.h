// Test-only helpers for the pass and fused-op tests: random inputs and the numeric-match rule
// (max|a-b| <= 1e-4 * max|ref| + 1e-6) from the shared design notes.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "ir/tensor.h"

namespace tessera::testing {

inline Tensor random_f32(Shape shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

// Empty if `got` numerically matches `ref`, else a description of the mismatch.
inline std::string numeric_mismatch(const Tensor& ref, const Tensor& got) {
  if (ref.dtype() != got.dtype())
    return std::string("dtype ") + dtype_name(got.dtype()) + " vs " + dtype_name(ref.dtype());
  if (ref.shape() != got.shape()) return "shape " + shape_str(got.shape()) + " vs " + shape_str(ref.shape());
  if (ref.dtype() != DType::kFloat32) {
    if (is_pod(ref.dtype()) && std::memcmp(ref.raw(), got.raw(), ref.nbytes()) != 0) return "values differ";
    return "";
  }
  double scale = 0, diff = 0;
  const float* r = ref.data<float>();
  const float* g = got.data<float>();
  for (int64_t i = 0; i < ref.num_elements(); ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(r[i])));
    double d = std::fabs(static_cast<double>(r[i]) - g[i]);
    if (std::isnan(d) && !(std::isnan(r[i]) && std::isnan(g[i]))) d = INFINITY;
    if (!std::isnan(d)) diff = std::max(diff, d);
  }
  if (diff <= 1e-4 * scale + 1e-6) return "";
  return "max|diff| " + std::to_string(diff) + " > tolerance (max|ref| " + std::to_string(scale) + ")";
}

#define EXPECT_NUMERIC_MATCH(ref, got) EXPECT_EQ(::tessera::testing::numeric_mismatch(ref, got), "")

}  // namespace tessera::testing
