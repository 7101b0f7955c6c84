// Backward kernels of training graphs' normalisation and activation (float32):
//  - TsBatchNormTrainingGrad (channels last): one reduction pass (Σ dy and Σ dy·(x − mean) per
//    channel, with dy masked by y > 0 under a fused Relu) and one pass writing
//    dx = A·(dy − C) + B·(x − mean) per channel, summing dx per channel on the way (output 3;
//    ops/batch_norm_ops.cc has the formulas).
//  - ReluGrad: g where the features are > 0.
#include <algorithm>
#include <cmath>

#include "backend/cpu/isa_variants.h"
#include "backend/cpu/kernel.h"
#include "backend/cpu/norm_util.h"
#include "backend/cpu/threads.h"

namespace tessera::cpu {

namespace {

#pragma GCC diagnostic ignored "-Wpsabi"  // F16 helpers are internal and always inlined
using norm::F16;
using norm::load16;
using norm::store16;

// g = dy, or dy where y > 0 (a fused Relu).
template <bool Masked>
inline __attribute__((always_inline)) F16 grad16(const float* dy, const float* y, int64_t at) {
  if constexpr (Masked) return load16(y + at) > F16{} ? load16(dy + at) : F16{};
  else return load16(dy + at);
}

// Rows [r0, r1): adds Σ g and Σ g·(x − mean) per channel into sg, sgx (float per block of
// rows in two chains, double across blocks). Channels past the last multiple of 16: scalar.
template <bool Masked>
inline __attribute__((always_inline)) void sums_part(const float* dy, const float* x, const float* y,
                                                     const float* mean, int64_t c, int64_t r0, int64_t r1, double* sg,
                                                     double* sgx) {
  const int64_t block = norm::block_rows(c), full = c / norm::kLanes * norm::kLanes;
  float a[norm::kLanes], b[norm::kLanes];
  for (int64_t b0 = r0; b0 < r1; b0 += block) {
    const int64_t b1 = std::min(r1, b0 + block);
    for (int64_t c0 = 0; c0 < full; c0 += norm::kLanes) {
      const F16 m = load16(mean + c0);
      F16 a0 = {}, a1 = {}, q0 = {}, q1 = {};
      int64_t i = b0;
      for (; i + 1 < b1; i += 2) {
        const F16 g0 = grad16<Masked>(dy, y, i * c + c0), g1 = grad16<Masked>(dy, y, (i + 1) * c + c0);
        a0 += g0;
        a1 += g1;
        q0 += g0 * (load16(x + i * c + c0) - m);
        q1 += g1 * (load16(x + (i + 1) * c + c0) - m);
      }
      if (i < b1) {
        const F16 g0 = grad16<Masked>(dy, y, i * c + c0);
        a0 += g0;
        q0 += g0 * (load16(x + i * c + c0) - m);
      }
      store16(a, a0 + a1);
      store16(b, q0 + q1);
      for (int k = 0; k < norm::kLanes; ++k) sg[c0 + k] += a[k], sgx[c0 + k] += b[k];
    }
    for (int64_t ch = full; ch < c; ++ch) {
      float s = 0, q = 0;
      for (int64_t i = b0; i < b1; ++i) {
        const int64_t at = i * c + ch;
        const float g = Masked && !(y[at] > 0.0f) ? 0.0f : dy[at];
        s += g;
        q += g * (x[at] - mean[ch]);
      }
      sg[ch] += s;
      sgx[ch] += q;
    }
  }
}

inline __attribute__((always_inline)) void sums(const float* dy, const float* x, const float* y, const float* mean,
                                                int64_t c, int64_t r0, int64_t r1, double* sg, double* sgx) {
  if (y) sums_part<true>(dy, x, y, mean, c, r0, r1, sg, sgx);
  else sums_part<false>(dy, x, y, mean, c, r0, r1, sg, sgx);
}
TS_ISA_VARIANTS(void, bn_grad_sums_part, sums,
                (const float* dy, const float* x, const float* y, const float* mean, int64_t c, int64_t r0, int64_t r1,
                 double* sg, double* sgx),
                (dy, x, y, mean, c, r0, r1, sg, sgx))

// dx = A·(g − C) + B·(x − mean) per channel over rows [r0, r1), C the mean of g (centred
// before scaling, so neither a large mean of x nor of g cancels after it); adds Σ dx (of
// the stored values) per channel into dsum (float per block of rows, double across blocks).
// V > 0: c = 16·V.
template <int V, bool Masked>
inline __attribute__((always_inline)) void dx_rows(const float* dy, const float* x, const float* y, const float* mean,
                                                   const float* A, const float* B, const float* C, float* dx, int64_t c,
                                                   int64_t r0, int64_t r1, double* dsum) {
  const int64_t block = norm::block_rows(c);
  if constexpr (V > 0) {
    F16 mv[V], av[V], bv[V], cv[V];
    float part[norm::kLanes];
    for (int v = 0; v < V; ++v)
      mv[v] = load16(mean + 16 * v), av[v] = load16(A + 16 * v), bv[v] = load16(B + 16 * v), cv[v] = load16(C + 16 * v);
    for (int64_t b0 = r0; b0 < r1; b0 += block) {
      F16 acc[V] = {};
      for (int64_t i = b0; i < std::min(r1, b0 + block); ++i)
        for (int v = 0; v < V; ++v) {
          const int64_t at = i * c + 16 * v;
          const F16 d = av[v] * (grad16<Masked>(dy, y, at) - cv[v]) + bv[v] * (load16(x + at) - mv[v]);
          store16(dx + at, d);
          acc[v] += d;
        }
      for (int v = 0; v < V; ++v) {
        store16(part, acc[v]);
        for (int k = 0; k < norm::kLanes; ++k) dsum[16 * v + k] += part[k];
      }
    }
  } else {
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t j = 0; j < c; ++j) {
        const int64_t at = i * c + j;
        const float g = Masked && !(y[at] > 0.0f) ? 0.0f : dy[at];
        dx[at] = A[j] * (g - C[j]) + B[j] * (x[at] - mean[j]);
        dsum[j] += dx[at];
      }
  }
}

template <bool Masked>
inline __attribute__((always_inline)) void dx_any(const float* dy, const float* x, const float* y, const float* mean,
                                                  const float* A, const float* B, const float* C, float* dx, int64_t c,
                                                  int64_t r0, int64_t r1, double* dsum) {
  switch (c) {
    case 16: return dx_rows<1, Masked>(dy, x, y, mean, A, B, C, dx, c, r0, r1, dsum);
    case 32: return dx_rows<2, Masked>(dy, x, y, mean, A, B, C, dx, c, r0, r1, dsum);
    case 48: return dx_rows<3, Masked>(dy, x, y, mean, A, B, C, dx, c, r0, r1, dsum);
    case 64: return dx_rows<4, Masked>(dy, x, y, mean, A, B, C, dx, c, r0, r1, dsum);
    default: return dx_rows<0, Masked>(dy, x, y, mean, A, B, C, dx, c, r0, r1, dsum);
  }
}

inline __attribute__((always_inline)) void dx_all(const float* dy, const float* x, const float* y, const float* mean,
                                                  const float* A, const float* B, const float* C, float* dx, int64_t c,
                                                  int64_t r0, int64_t r1, double* dsum) {
  if (y) dx_any<true>(dy, x, y, mean, A, B, C, dx, c, r0, r1, dsum);
  else dx_any<false>(dy, x, y, mean, A, B, C, dx, c, r0, r1, dsum);
}
TS_ISA_VARIANTS(void, bn_grad_dx_rows, dx_all,
                (const float* dy, const float* x, const float* y, const float* mean, const float* A, const float* B,
                 const float* C, float* dx, int64_t c, int64_t r0, int64_t r1, double* dsum),
                (dy, x, y, mean, A, B, C, dx, c, r0, r1, dsum))

class BatchNormTrainingGradKernel final : public CpuKernel {
 public:
  BatchNormTrainingGradKernel(const Node& node, Isa isa)
      : eps_(node.attr_or<float>("epsilon", 1e-3f)),
        relu_(node.attr_or<std::string>("activation", "") == "Relu"),
        sums_(bn_grad_sums_part_for(isa)),
        dx_(bn_grad_dx_rows_for(isa)) {}
  void run(KernelRun& r) override {
    const Tensor& dy = r.input(0);
    const Tensor& x = r.input(1);
    TS_CHECK(dy.shape() == x.shape() && x.rank() >= 1, "dy has shape ", shape_str(dy.shape()), ", x ",
             shape_str(x.shape()));
    if (relu_) TS_CHECK(r.input(5).shape() == x.shape(), "y has shape ", shape_str(r.input(5).shape()));
    const int64_t c = x.dim(x.rank() - 1), rows = c == 0 ? 0 : x.num_elements() / c;
    for (size_t i = 2; i <= 4; ++i)
      TS_CHECK(r.input(i).rank() == 1 && r.input(i).dim(0) == c, "input ", i, " must have shape [", c,
               "], got ", shape_str(r.input(i).shape()));
    const float *pdy = dy.data<float>(), *px = x.data<float>(), *py = relu_ ? r.input(5).data<float>() : nullptr;
    const float *scale = r.input(2).data<float>(), *mean = r.input(3).data<float>(), *var = r.input(4).data<float>();

    const int64_t parts = norm::parts_for(rows, c, r.threads());
    std::vector<double> psg(static_cast<size_t>(parts * c), 0.0), psgx(static_cast<size_t>(parts * c), 0.0);
    parallel_for(parts, 1, r.threads(), [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; ++p)
        sums_(pdy, px, py, mean, c, norm::part_begin(p, parts, rows), norm::part_begin(p + 1, parts, rows),
                          psg.data() + p * c, psgx.data() + p * c);
    });
    Tensor dscale = r.allocate(1, DType::kFloat32, {c}), doffset = r.allocate(2, DType::kFloat32, {c});
    std::vector<float> A(c), B(c), C(c);
    const double n = static_cast<double>(std::max<int64_t>(rows, 1));
    for (int64_t j = 0; j < c; ++j) {
      double sg = 0, sgx = 0;
      for (int64_t p = 0; p < parts; ++p) sg += psg[p * c + j], sgx += psgx[p * c + j];
      const double rstd = 1.0 / std::sqrt(static_cast<double>(var[j] + eps_));
      const double dsc = sgx * rstd;  // Σ g·x̂
      dscale.data<float>()[j] = static_cast<float>(dsc);
      doffset.data<float>()[j] = static_cast<float>(sg);
      // dx = k·(g − sg/n − x̂·dsc/n), k = scale·rstd, x̂ = (x − mean)·rstd.
      const double k = scale[j] * rstd, bx = -k * rstd * dsc / n;
      A[j] = static_cast<float>(k);
      B[j] = static_cast<float>(bx);
      C[j] = static_cast<float>(sg / n);
    }
    Tensor dx = r.allocate(0, DType::kFloat32, x.shape());
    float* pdx = dx.data<float>();
    // The same fixed parts as the sums, so Σ dx merges in an order independent of threads.
    std::fill(psg.begin(), psg.end(), 0.0);
    parallel_for(parts, 1, r.threads(), [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; ++p)
        dx_(pdy, px, py, mean, A.data(), B.data(), C.data(), pdx, c, norm::part_begin(p, parts, rows),
                        norm::part_begin(p + 1, parts, rows), psg.data() + p * c);
    });
    Tensor dsum = r.allocate(3, DType::kFloat32, {c});
    for (int64_t j = 0; j < c; ++j) {
      double t = 0;
      for (int64_t p = 0; p < parts; ++p) t += psg[p * c + j];
      dsum.data<float>()[j] = static_cast<float>(t);
    }
    r.set_output(0, dx);
    r.set_output(1, dscale);
    r.set_output(2, doffset);
    r.set_output(3, dsum);
  }
  // dx's element i is written after dy's element i is read for the last time (the sums pass
  // finishes first).
  bool in_place(size_t input) const override { return input == 0; }

 private:
  float eps_;
  bool relu_;
  decltype(&bn_grad_sums_part_base) sums_;
  decltype(&bn_grad_dx_rows_base) dx_;
};

inline __attribute__((always_inline)) void relu_grad(const float* g, const float* f, float* o, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; ++i) o[i] = f[i] > 0.0f ? g[i] : 0.0f;
}
TS_ISA_VARIANTS(void, relu_grad_range, relu_grad, (const float* g, const float* f, float* o, int64_t lo, int64_t hi),
                (g, f, o, lo, hi))

class ReluGradKernel final : public CpuKernel {
 public:
  explicit ReluGradKernel(Isa isa) : range_(relu_grad_range_for(isa)) {}
  void run(KernelRun& r) override {
    const Tensor& g = r.input(0);
    const Tensor& f = r.input(1);
    TS_CHECK(g.shape() == f.shape(), "gradients and features must have the same shape, got ", shape_str(g.shape()),
             " and ", shape_str(f.shape()));
    Tensor out = r.allocate(0, DType::kFloat32, g.shape());
    const float *pg = g.data<float>(), *pf = f.data<float>();
    float* po = out.data<float>();
    parallel_for(g.num_elements(), 32768, r.threads(), [&](int64_t lo, int64_t hi) { range_(pg, pf, po, lo, hi); });
    r.set_output(0, out);
  }
  bool in_place(size_t input) const override { return input <= 1; }

 private:
  decltype(&relu_grad_range_base) range_;
};

}  // namespace

void register_norm_grad_kernels() {
  register_kernel("TsBatchNormTrainingGrad", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    for (size_t i = 0; i < n.inputs.size(); ++i)
      if (!CompileEnv::is_f32(n, i)) return nullptr;
    return std::make_unique<BatchNormTrainingGradKernel>(n, env.isa);
  });
  register_kernel("ReluGrad", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    if (!CompileEnv::is_f32(n, 0) || !CompileEnv::is_f32(n, 1)) return nullptr;
    return std::make_unique<ReluGradKernel>(env.isa);
  });
}

}  // namespace tessera::cpu
