// TsLayerNorm: normalise each row of the last axis, then scale and shift (docs/fused_ops.md).
// FusedBatchNorm(V2/V3) in inference mode (NHWC): y = x·k + b per channel, with k and b made
// from the (variable) statistics on each run, which costs O(channels).
#include <algorithm>
#include <cmath>

#include "backend/cpu/kernel.h"
#include "backend/cpu/threads.h"
#include "backend/cpu/vec.h"

namespace tessera::cpu {

namespace {

class LayerNormKernel final : public CpuKernel {
 public:
  LayerNormKernel(float eps, Isa isa) : eps_(eps), vec_(vec_table(isa)) {}
  void run(KernelRun& r) override {
    const Tensor& x = r.input(0);
    const Tensor& gamma = r.input(1);
    const Tensor& beta = r.input(2);
    TS_CHECK(x.rank() >= 1, "input must have rank >= 1");
    const int64_t n = x.dim(x.rank() - 1);
    TS_CHECK(gamma.num_elements() == n && beta.num_elements() == n, "gamma and beta need ", n, " elements, got ",
             gamma.num_elements(), " and ", beta.num_elements());
    Tensor out = r.allocate(0, DType::kFloat32, x.shape());
    const int64_t rows = n == 0 ? 0 : x.num_elements() / n;
    const float *px = x.data<float>(), *pg = gamma.data<float>(), *pb = beta.data<float>();
    float* py = out.data<float>();
    parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), r.threads(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) vec_.layer_norm(px + i * n, pg, pb, py + i * n, n, eps_);
    });
    r.set_output(0, out);
  }
  bool in_place(size_t input) const override { return input == 0; }  // each row read before written

 private:
  float eps_;
  const VecTable& vec_;
};

class BatchNormKernel final : public CpuKernel {
 public:
  BatchNormKernel(const Node& node, Isa isa)
      : eps_(node.attr_or<float>("epsilon", 1e-4f)), v3_(node.op == "FusedBatchNormV3"), vec_(vec_table(isa)) {}
  void run(KernelRun& r) override {
    const Tensor& x = r.input(0);
    TS_CHECK(x.rank() >= 1, "input must have rank >= 1");
    const int64_t c = x.dim(x.rank() - 1);
    for (size_t i = 1; i <= 4; ++i)
      TS_CHECK(r.input(i).num_elements() == c, "input ", i, " must have ", c, " elements (the channel count), got ",
               r.input(i).num_elements());
    const float *scale = r.input(1).data<float>(), *offset = r.input(2).data<float>();
    const float *mean = r.input(3).data<float>(), *var = r.input(4).data<float>();
    std::vector<float> k(c), b(c);
    for (int64_t i = 0; i < c; ++i) {
      k[i] = scale[i] / std::sqrt(var[i] + eps_);
      b[i] = offset[i] - mean[i] * k[i];
    }
    Tensor y = r.allocate(0, DType::kFloat32, x.shape());
    const int64_t rows = c == 0 ? 0 : x.num_elements() / c;
    const float* px = x.data<float>();
    float* py = y.data<float>();
    parallel_for(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(c, 1)), r.threads(), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        vec_.binary(BinaryOp::kMul, px + i * c, false, k.data(), false, py + i * c, c);
        vec_.binary(BinaryOp::kAdd, py + i * c, false, b.data(), false, py + i * c, c);
      }
    });
    r.set_output(0, y);
    // Inference returns the running statistics unchanged (copies: outputs never alias inputs).
    for (int i = 1; i <= 4; ++i) {
      const Tensor& src = r.input(i <= 2 ? i + 2 : i);
      Tensor t = r.allocate(i, DType::kFloat32, {c});
      std::copy(src.data<float>(), src.data<float>() + c, t.data<float>());
      r.set_output(i, t);
    }
    if (v3_) r.set_output(5, Tensor(DType::kFloat32, {0}));
  }
  bool in_place(size_t input) const override { return input == 0; }  // y row from x row, elementwise

 private:
  float eps_;
  bool v3_;
  const VecTable& vec_;
};

}  // namespace

void register_norm_kernels() {
  for (const char* op : {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
    register_kernel(op, [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
      if (n.attr_or<bool>("is_training", true) || n.attr_or<std::string>("data_format", "NHWC") != "NHWC")
        return nullptr;
      for (size_t i = 0; i < 5; ++i)
        if (!CompileEnv::is_f32(n, i)) return nullptr;
      return std::make_unique<BatchNormKernel>(n, env.isa);
    });
  register_kernel("TsLayerNorm", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    for (size_t i = 0; i < 3; ++i)
      if (!CompileEnv::is_f32(n, i)) return nullptr;
    return std::make_unique<LayerNormKernel>(n.attr_or<float>("epsilon", 1e-3f), env.isa);
  });
}

}  // namespace tessera::cpu
