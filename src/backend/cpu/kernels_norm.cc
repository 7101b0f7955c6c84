// TsLayerNorm: normalise each row of the last axis, then scale and shift (docs/fused_ops.md).
// FusedBatchNorm(V2/V3) in inference mode (NHWC): y = x·k + b per channel, with k and b made
// from the (variable) statistics on each run, which costs O(channels).
// TsBatchNormTraining and FusedBatchNorm in training mode (channels last): one pass for the
// batch statistics, one to normalise; the gradient's kernel is in kernels_norm_grad.cc.
#include <algorithm>
#include <cmath>

#include "backend/cpu/isa_variants.h"
#include "backend/cpu/kernel.h"
#include "backend/cpu/norm_util.h"
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

#pragma GCC diagnostic ignored "-Wpsabi"  // F16 helpers are internal and always inlined
using norm::F16;
using norm::load16;
using norm::store16;

// Statistics of rows [r0, r1) of x ([rows, C]): per block of rows small enough for L1 and
// 16 channels, the block's mean and sum of squared deviations in float (two passes over the
// cached block; the sums are of deviations from the block's first row, so an offset in the
// data does not eat the float precision), folded into the part's double totals with Chan's
// update. One read of x from memory. Channels past the last multiple of 16 take a scalar loop.
inline __attribute__((always_inline)) void stats_part(const float* x, int64_t c, int64_t r0, int64_t r1, double* mean,
                                                     double* m2) {
  const int64_t block = norm::block_rows(c), full = c / norm::kLanes * norm::kLanes;
  float bm[norm::kLanes], q[norm::kLanes];
  double count = 0;
  for (int64_t b0 = r0; b0 < r1; b0 += block) {
    const int64_t b1 = std::min(r1, b0 + block), nb = b1 - b0;
    const float inv = 1.0f / static_cast<float>(nb);
    for (int64_t c0 = 0; c0 < full; c0 += norm::kLanes) {
      const float* base = x + c0;
      const F16 x0 = load16(base + b0 * c);
      F16 s0 = {}, s1 = {};  // two chains: one add latency per two rows
      int64_t i = b0;
      for (; i + 1 < b1; i += 2) {
        s0 += load16(base + i * c) - x0;
        s1 += load16(base + (i + 1) * c) - x0;
      }
      if (i < b1) s0 += load16(base + i * c) - x0;
      const F16 mb = x0 + (s0 + s1) * inv;
      F16 q0 = {}, q1 = {};
      for (i = b0; i + 1 < b1; i += 2) {
        const F16 d0 = load16(base + i * c) - mb, d1 = load16(base + (i + 1) * c) - mb;
        q0 += d0 * d0;
        q1 += d1 * d1;
      }
      if (i < b1) {
        const F16 d0 = load16(base + i * c) - mb;
        q0 += d0 * d0;
      }
      store16(bm, mb);
      store16(q, q0 + q1);
      for (int k = 0; k < norm::kLanes; ++k) norm::chan_merge(count, mean[c0 + k], m2[c0 + k], nb, bm[k], q[k]);
    }
    for (int64_t ch = full; ch < c; ++ch) {  // the channels past the last full vector
      const float x0 = x[b0 * c + ch];
      float s = 0, qq = 0;
      for (int64_t i = b0; i < b1; ++i) s += x[i * c + ch] - x0;
      const float mb = x0 + s * inv;
      for (int64_t i = b0; i < b1; ++i) qq += (x[i * c + ch] - mb) * (x[i * c + ch] - mb);
      norm::chan_merge(count, mean[ch], m2[ch], nb, mb, qq);
    }
    count += static_cast<double>(nb);
  }
}

// y = (x − m)·k + b per channel, then max(y, 0) when relu. Centred first: with a large mean
// and a small spread, x·k + (b − m·k) would lose the low bits of y to the cancellation.
// V > 0: c = 16·V, the per-channel constants stay in registers across rows.
template <int V, bool Relu>
inline __attribute__((always_inline)) void apply_rows(const float* x, const float* m, const float* k, const float* b,
                                                      float* y, int64_t c, int64_t r0, int64_t r1) {
  if constexpr (V > 0) {
    F16 mv[V], kv[V], bv[V];
    for (int v = 0; v < V; ++v) mv[v] = load16(m + 16 * v), kv[v] = load16(k + 16 * v), bv[v] = load16(b + 16 * v);
    for (int64_t i = r0; i < r1; ++i)
      for (int v = 0; v < V; ++v) {
        F16 t = (load16(x + i * c + 16 * v) - mv[v]) * kv[v] + bv[v];
        if constexpr (Relu) t = t > F16{} ? t : F16{};
        store16(y + i * c + 16 * v, t);
      }
  } else {
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t j = 0; j < c; ++j) {
        const float t = (x[i * c + j] - m[j]) * k[j] + b[j];
        y[i * c + j] = Relu ? (t > 0.0f ? t : 0.0f) : t;
      }
  }
}

template <bool Relu>
inline __attribute__((always_inline)) void apply_any(const float* x, const float* m, const float* k, const float* b,
                                                     float* y, int64_t c, int64_t r0, int64_t r1) {
  switch (c) {
    case 16: return apply_rows<1, Relu>(x, m, k, b, y, c, r0, r1);
    case 32: return apply_rows<2, Relu>(x, m, k, b, y, c, r0, r1);
    case 48: return apply_rows<3, Relu>(x, m, k, b, y, c, r0, r1);
    case 64: return apply_rows<4, Relu>(x, m, k, b, y, c, r0, r1);
    default: return apply_rows<0, Relu>(x, m, k, b, y, c, r0, r1);
  }
}

inline __attribute__((always_inline)) void apply(const float* x, const float* m, const float* k, const float* b,
                                                 float* y, int64_t c, int64_t r0, int64_t r1, bool relu) {
  if (relu) apply_any<true>(x, m, k, b, y, c, r0, r1);
  else apply_any<false>(x, m, k, b, y, c, r0, r1);
}

TS_ISA_VARIANTS(void, bn_stats_part, stats_part,
                (const float* x, int64_t c, int64_t r0, int64_t r1, double* mean, double* m2),
                (x, c, r0, r1, mean, m2))
TS_ISA_VARIANTS(void, bn_apply_rows, apply,
                (const float* x, const float* m, const float* k, const float* b, float* y, int64_t c, int64_t r0,
                 int64_t r1, bool relu),
                (x, m, k, b, y, c, r0, r1, relu))

class BatchNormTrainingKernel final : public CpuKernel {
 public:
  BatchNormTrainingKernel(const Node& node, Isa isa)
      : eps_(node.attr_or<float>("epsilon", 1e-3f)),
        relu_(node.attr_or<std::string>("activation", "") == "Relu"),
        stats_(bn_stats_part_for(isa)),
        apply_(bn_apply_rows_for(isa)) {}
  void run(KernelRun& r) override {
    const Tensor& x = r.input(0);
    TS_CHECK(x.rank() >= 1, "input must have rank >= 1");
    const int64_t c = x.dim(x.rank() - 1), rows = c == 0 ? 0 : x.num_elements() / c;
    for (size_t i = 1; i <= 2; ++i)
      TS_CHECK(r.input(i).rank() == 1 && r.input(i).dim(0) == c, "input ", i, " must have shape [", c,
               "], got ", shape_str(r.input(i).shape()));
    const float* px = x.data<float>();
    std::vector<double> mean(c), var(c);
    norm::batch_moments(rows, c, r.threads(), mean.data(), var.data(),
                        [&](int64_t r0, int64_t r1, double* m, double* m2) { stats_(px, c, r0, r1, m, m2); });
    Tensor mt = r.allocate(1, DType::kFloat32, {c}), vt = r.allocate(2, DType::kFloat32, {c});
    const float *scale = r.input(1).data<float>(), *offset = r.input(2).data<float>();
    std::vector<float> k(c), b(c);
    for (int64_t j = 0; j < c; ++j) {
      const float m = static_cast<float>(mean[j]), v = static_cast<float>(var[j]);
      mt.data<float>()[j] = m;
      vt.data<float>()[j] = v;
      k[j] = scale[j] / std::sqrt(v + eps_);
      b[j] = offset[j];
    }
    Tensor y = r.allocate(0, DType::kFloat32, x.shape());
    float* py = y.data<float>();
    parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(c, 1)), r.threads(),
                 [&](int64_t lo, int64_t hi) { apply_(px, mt.data<float>(), k.data(), b.data(), py, c, lo, hi, relu_); });
    r.set_output(0, y);
    r.set_output(1, mt);
    r.set_output(2, vt);
  }
  // The statistics pass finishes before y is written, and y's element i comes from x's.
  bool in_place(size_t input) const override { return input == 0; }

 private:
  float eps_;
  bool relu_;
  decltype(&bn_stats_part_base) stats_;
  decltype(&bn_apply_rows_base) apply_;
};

// FusedBatchNorm(V1/V2/V3) in training mode, channels last, float32: the statistics and
// normalisation of TsBatchNormTraining, plus TF's outputs — batch_mean/batch_variance are the
// moving averages with exponential_avg_factor (variance Bessel-corrected), reserve_space_1/2
// the batch mean and population variance (what the gradient reads), reserve_space_3 empty.
class FusedBatchNormTrainingKernel final : public CpuKernel {
 public:
  FusedBatchNormTrainingKernel(const Node& node, Isa isa)
      : eps_(node.attr_or<float>("epsilon", 1e-4f)),
        factor_(node.attr_or<float>("exponential_avg_factor", 1.0f)),
        v3_(node.op == "FusedBatchNormV3"),
        stats_(bn_stats_part_for(isa)),
        apply_(bn_apply_rows_for(isa)) {}
  void run(KernelRun& r) override {
    const Tensor& x = r.input(0);
    TS_CHECK(x.rank() == 4 || x.rank() == 5, "input must be 4-dimensional (5 for 3D formats), got ",
             shape_str(x.shape()));
    const int64_t c = x.dim(x.rank() - 1), rows = c == 0 ? 0 : x.num_elements() / c;
    for (size_t i = 1; i <= 2; ++i)
      TS_CHECK(r.input(i).num_elements() == c, "input ", i, " must have ", c, " elements (the channel count), got ",
               r.input(i).num_elements());
    const bool running = r.input(3).num_elements() == c && r.input(4).num_elements() == c;
    TS_CHECK(factor_ == 1.0f || running, "mean and variance must have ", c, " elements, got ",
             r.input(3).num_elements(), " and ", r.input(4).num_elements());
    const float* px = x.data<float>();
    std::vector<double> mean(c), var(c);
    norm::batch_moments(rows, c, r.threads(), mean.data(), var.data(),
                        [&](int64_t r0, int64_t r1, double* m, double* m2) { stats_(px, c, r0, r1, m, m2); });
    Tensor out_m = r.allocate(1, DType::kFloat32, {c}), out_v = r.allocate(2, DType::kFloat32, {c});
    Tensor res_m = r.allocate(3, DType::kFloat32, {c}), res_v = r.allocate(4, DType::kFloat32, {c});
    const float *scale = r.input(1).data<float>(), *offset = r.input(2).data<float>();
    std::vector<float> k(c);
    for (int64_t j = 0; j < c; ++j) {
      const float m = static_cast<float>(mean[j]), v = static_cast<float>(var[j]);
      const float unbiased = rows > 1 ? static_cast<float>(var[j] * static_cast<double>(rows) / (rows - 1)) : v;
      res_m.data<float>()[j] = m;
      res_v.data<float>()[j] = v;
      out_m.data<float>()[j] = factor_ == 1.0f ? m : (1 - factor_) * r.input(3).data<float>()[j] + factor_ * m;
      out_v.data<float>()[j] = factor_ == 1.0f ? unbiased : (1 - factor_) * r.input(4).data<float>()[j] + factor_ * unbiased;
      k[j] = scale[j] / std::sqrt(v + eps_);
    }
    Tensor y = r.allocate(0, DType::kFloat32, x.shape());
    float* py = y.data<float>();
    parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(c, 1)), r.threads(), [&](int64_t lo, int64_t hi) {
      apply_(px, res_m.data<float>(), k.data(), offset, py, c, lo, hi, false);
    });
    r.set_output(0, y);
    r.set_output(1, out_m);
    r.set_output(2, out_v);
    r.set_output(3, res_m);
    r.set_output(4, res_v);
    if (v3_) r.set_output(5, Tensor(DType::kFloat32, {0}));
  }
  bool in_place(size_t input) const override { return input == 0; }

 private:
  float eps_, factor_;
  bool v3_;
  decltype(&bn_stats_part_base) stats_;
  decltype(&bn_apply_rows_base) apply_;
};

}  // namespace

void register_norm_kernels() {
  register_norm_grad_kernels();
  register_kernel("TsBatchNormTraining", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    for (size_t i = 0; i < 3; ++i)
      if (!CompileEnv::is_f32(n, i)) return nullptr;
    return std::make_unique<BatchNormTrainingKernel>(n, env.isa);
  });
  for (const char* op : {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
    register_kernel(op, [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
      const std::string format = n.attr_or<std::string>("data_format", "NHWC");
      for (size_t i = 0; i < 5; ++i)
        if (!CompileEnv::is_f32(n, i)) return nullptr;
      if (n.attr_or<bool>("is_training", true)) {
        if (format != "NHWC" && format != "NDHWC") return nullptr;
        return std::make_unique<FusedBatchNormTrainingKernel>(n, env.isa);
      }
      if (format != "NHWC") return nullptr;
      return std::make_unique<BatchNormKernel>(n, env.isa);
    });
  register_kernel("TsLayerNorm", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    for (size_t i = 0; i < 3; ++i)
      if (!CompileEnv::is_f32(n, i)) return nullptr;
    return std::make_unique<LayerNormKernel>(n.attr_or<float>("epsilon", 1e-3f), env.isa);
  });
}

}  // namespace tessera::cpu
