// Test helpers for the cpu backend: build a function-form graph (args, results), run it on
// CpuExecutable for every ISA this processor has and on the reference interpreter, compare
// with the numeric-match rule max|a-b| <= 1e-4*max|ref| + 1e-6.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_executable.h"
#include "backend/cpu/isa.h"
#include "ir/interpreter.h"
#include "ir/op_registry.h"

namespace tessera::cpu::testing {

// The ISA paths to test: every one up to TESSERA_ISA's (or the processor's best), so a run of
// the suite with TESSERA_ISA=avx2 exercises only AVX2 and scalar code, oneDNN included.
inline std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar})
    if (static_cast<int>(isa) <= static_cast<int>(resolve_isa(""))) out.push_back(isa_name(isa));
  return out;
}

inline Tensor random_tensor(const Shape& shape, uint32_t seed, float lo = -2.f, float hi = 2.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Tensor t(DType::kFloat32, shape);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// Numeric match (float) or exact equality (other dtypes); `what` names the case in failures.
inline void expect_match(const Tensor& ref, const Tensor& got, const std::string& what) {
  ASSERT_EQ(ref.dtype(), got.dtype()) << what;
  ASSERT_EQ(shape_str(ref.shape()), shape_str(got.shape())) << what;
  if (ref.dtype() != DType::kFloat32) {
    ASSERT_EQ(0, std::memcmp(ref.raw(), got.raw(), ref.nbytes())) << what;
    return;
  }
  const float* a = ref.data<float>();
  const float* b = got.data<float>();
  double max_ref = 0, max_diff = 0;
  int64_t worst = -1;
  for (int64_t i = 0; i < ref.num_elements(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) {
      ASSERT_EQ(std::isnan(a[i]), std::isnan(b[i])) << what << " at " << i;
      continue;
    }
    if (std::isinf(a[i]) || std::isinf(b[i])) {
      ASSERT_EQ(a[i], b[i]) << what << " at " << i;
      continue;
    }
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(a[i])));
    double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (d > max_diff) max_diff = d, worst = i;
  }
  EXPECT_LE(max_diff, 1e-4 * max_ref + 1e-6)
      << what << ": worst at " << worst << " ref " << (worst >= 0 ? a[worst] : 0) << " got "
      << (worst >= 0 ? b[worst] : 0);
}

struct FnGraph {
  std::shared_ptr<Graph> g = std::make_shared<Graph>();
  int counter = 0;

  // A function argument of declared (partial) shape.
  Value arg(DType dtype, PartialShape shape) {
    Node* n = g->add("arg" + std::to_string(counter++), "_Arg", {}, {{"T", dtype}, {"_shape", std::move(shape)}, {"index", int64_t(g->args.size())}});
    infer_node(*n);
    g->args.push_back(n);
    return n->out();
  }
  Value constant(const Tensor& t) {
    Node* n = g->add("c" + std::to_string(counter++), "Const", {}, {{"value", t}, {"dtype", t.dtype()}});
    infer_node(*n);
    return n->out();
  }
  Value ints(const std::vector<int32_t>& v) {
    return constant(Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())}));
  }
  Node* op(const std::string& op, std::vector<Value> in, AttrMap attrs = {}) {
    Node* n = g->add("n" + std::to_string(counter++), op, std::move(in), std::move(attrs));
    infer_node(*n);
    return n;
  }
  void result(Value v) {
    g->results.push_back(v);
    g->result_names.push_back("r" + std::to_string(g->results.size()));
  }
};

// Runs `fn` on the reference interpreter and on CpuExecutable for each ISA (one executable per
// ISA, run on every argument set in `runs`, twice each so the planned arena path runs too).
inline void check_graph(const FnGraph& fn, const std::vector<std::vector<Tensor>>& runs, const std::string& what,
                        int threads = 2) {
  for (const std::string& isa : available_isas()) {
    SCOPED_TRACE(what + " isa=" + isa);
    auto exe = CpuExecutable::compile(fn.g, {threads, isa});
    ASSERT_EQ(exe->isa(), isa);
    for (int pass = 0; pass < 2; ++pass)
      for (size_t k = 0; k < runs.size(); ++k) {
        std::vector<Tensor> ref = call_function(*fn.g, runs[k], nullptr);
        std::vector<Tensor> got = exe->run(runs[k], nullptr);
        ASSERT_EQ(ref.size(), got.size());
        for (size_t i = 0; i < ref.size(); ++i)
          expect_match(ref[i], got[i], what + " run " + std::to_string(k) + " pass " + std::to_string(pass) +
                                           " result " + std::to_string(i));
      }
  }
}

inline bool has_op(const std::string& op) { return OpRegistry::global().find(op) != nullptr; }

}  // namespace tessera::cpu::testing
