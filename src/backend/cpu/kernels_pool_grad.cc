// MaxPoolGrad (NHWC float32, 2-D windows): each output position's gradient goes to the first
// largest input of its window (row-major scan, as the reference kernel and TF do), so ties
// resolve the same way. Our own loop rather than oneDNN's pooling backward, which needs the
// workspace of a training-mode forward pass that the graph's MaxPool does not keep. The
// channel axis is innermost in NHWC, so the window scan runs over contiguous channel blocks;
// windows of one image may overlap, so work splits by (image, channel block). Windows that
// tile the image exactly (the usual 2x2 stride-2 pool) write each gradient element once.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cpu/isa_variants.h"
#include "backend/cpu/kernel.h"
#include "backend/cpu/threads.h"
#include "ops/nn_families.h"

namespace tessera::cpu {

namespace {

constexpr int64_t kChannelBlock = 64;

struct Geometry {
  int64_t h, w, c, oh, ow, kh, kw, sh, sw, pad_top, pad_left;
};

// The first largest input of window rows [h0, h1) x columns [w0, w1) for each of `cn`
// channels (row-major scan, ties to the first): its value in best[k], its offset within the
// image in where[k]. Selects the compiler if-converts into vector blends (a data-dependent
// branch here would mispredict constantly).
inline __attribute__((always_inline)) void window_argmax(const Geometry& g, const float* xi, int64_t h0, int64_t h1,
                                                         int64_t w0, int64_t w1, int64_t cn, float* best,
                                                         uint32_t* where) {
  const uint32_t first = static_cast<uint32_t>((h0 * g.w + w0) * g.c);
  for (int64_t k = 0; k < cn; ++k) best[k] = xi[first + k], where[k] = first;
  for (int64_t hh = h0; hh < h1; ++hh)
    for (int64_t ww = w0; ww < w1; ++ww) {
      const uint32_t at = static_cast<uint32_t>((hh * g.w + ww) * g.c);
      const float* v = xi + at;
#pragma GCC ivdep
      for (int64_t k = 0; k < cn; ++k) {
        const bool gt = v[k] > best[k];
        where[k] = gt ? at : where[k];
        best[k] = gt ? v[k] : best[k];
      }
    }
}

// One image's gradient for `cn` (<= kChannelBlock) channels starting at xi/gi/di. Compiled
// for AVX-512, AVX2 and the baseline (TS_ISA_VARIANTS; the kernel takes its CompileEnv's
// ISA): the window scan is a masked select over contiguous channels, which only vectorises
// with wide compares and blends.
inline __attribute__((always_inline)) void overlapping(const Geometry& g, const float* xi, const float* gi, float* di,
                                                       int64_t cn) {
  float best[kChannelBlock];
  uint32_t where[kChannelBlock];  // offsets within one image
  for (int64_t p = 0; p < g.h * g.w; ++p) std::memset(di + p * g.c, 0, sizeof(float) * cn);
  for (int64_t y = 0; y < g.oh; ++y) {
    const int64_t h0 = std::max<int64_t>(0, y * g.sh - g.pad_top), h1 = std::min(g.h, y * g.sh - g.pad_top + g.kh);
    for (int64_t xo = 0; xo < g.ow; ++xo) {
      const int64_t w0 = std::max<int64_t>(0, xo * g.sw - g.pad_left),
                    w1 = std::min(g.w, xo * g.sw - g.pad_left + g.kw);
      if (h0 >= h1 || w0 >= w1) continue;
      window_argmax(g, xi, h0, h1, w0, w1, cn, best, where);
      const float* gr = gi + (y * g.ow + xo) * g.c;
      for (int64_t k = 0; k < cn; ++k) di[where[k] + k] += gr[k];
    }
  }
}

// Windows that tile the image without overlap (stride == window, no padding before): every
// input position is written exactly once — the gradient at its window's first maximum, else
// zero — so there is no zero-fill pass and no read-modify-write. Positions past the last
// window (a VALID remainder) are zeroed. CN > 0 fixes the channel count at compile time, so
// each channel loop is a few whole vector instructions rather than a loop with remainders
// (with 16 channels, a 2x2 window otherwise spends most of its time in loop overhead).
template <int CN>
inline __attribute__((always_inline)) void tiled_impl(const Geometry& g, const float* xi, const float* gi, float* di,
                                                      int64_t cn_dynamic) {
  const int64_t cn = CN > 0 ? CN : cn_dynamic;
  float best[kChannelBlock], grad[kChannelBlock];
  uint32_t where[kChannelBlock];
  const int64_t covered_h = g.oh * g.kh, covered_w = g.ow * g.kw;
  for (int64_t y = 0; y < g.oh; ++y) {
    for (int64_t xo = 0; xo < g.ow; ++xo) {
      const int64_t h0 = y * g.kh, w0 = xo * g.kw;
      window_argmax(g, xi, h0, h0 + g.kh, w0, w0 + g.kw, cn, best, where);
      const float* gr = gi + (y * g.ow + xo) * g.c;
      for (int64_t k = 0; k < cn; ++k) grad[k] = gr[k];
      for (int64_t hh = h0; hh < h0 + g.kh; ++hh)
        for (int64_t ww = w0; ww < w0 + g.kw; ++ww) {
          const uint32_t at = static_cast<uint32_t>((hh * g.w + ww) * g.c);
          float* d = di + at;
#pragma GCC ivdep
          for (int64_t k = 0; k < cn; ++k) d[k] = where[k] == at ? grad[k] : 0.0f;
        }
    }
    // The columns right of the last window in these rows.
    for (int64_t hh = y * g.kh; hh < (y + 1) * g.kh; ++hh)
      for (int64_t ww = covered_w; ww < g.w; ++ww) std::memset(di + (hh * g.w + ww) * g.c, 0, sizeof(float) * cn);
  }
  for (int64_t hh = covered_h; hh < g.h; ++hh)
    for (int64_t ww = 0; ww < g.w; ++ww) std::memset(di + (hh * g.w + ww) * g.c, 0, sizeof(float) * cn);
}

// The same for channel blocks of V·16 channels with GCC vector types: GCC leaves the fully
// unrolled 16-channel selects of tiled_impl scalar, these are whole-vector compares and
// blends. The argmax is kept as the position's index within the window.
// (Internal always-inline helpers: the vector-ABI note GCC gives for 64-byte vectors does not apply.)
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float F16 __attribute__((vector_size(64)));
typedef int32_t I16 __attribute__((vector_size(64)));

inline __attribute__((always_inline)) F16 load16(const float* p) {
  F16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline __attribute__((always_inline)) void store16(float* p, F16 v) { std::memcpy(p, &v, sizeof(v)); }

template <int V>
inline __attribute__((always_inline)) void tiled_vec(const Geometry& g, const float* xi, const float* gi, float* di) {
  const int64_t covered_h = g.oh * g.kh, covered_w = g.ow * g.kw;
  for (int64_t y = 0; y < g.oh; ++y) {
    for (int64_t xo = 0; xo < g.ow; ++xo) {
      const int64_t h0 = y * g.kh, w0 = xo * g.kw;
      F16 best[V];
      I16 where[V];
      for (int v = 0; v < V; ++v) best[v] = load16(xi + (h0 * g.w + w0) * g.c + 16 * v), where[v] = I16{} + 0;
      int32_t p = 0;
      for (int64_t hh = h0; hh < h0 + g.kh; ++hh)
        for (int64_t ww = w0; ww < w0 + g.kw; ++ww, ++p)
          for (int v = 0; v < V; ++v) {
            const F16 x = load16(xi + (hh * g.w + ww) * g.c + 16 * v);
            const I16 gt = x > best[v];
            best[v] = gt ? x : best[v];
            where[v] = gt ? I16{} + p : where[v];
          }
      p = 0;
      const float* gr = gi + (y * g.ow + xo) * g.c;
      for (int64_t hh = h0; hh < h0 + g.kh; ++hh)
        for (int64_t ww = w0; ww < w0 + g.kw; ++ww, ++p)
          for (int v = 0; v < V; ++v)
            store16(di + (hh * g.w + ww) * g.c + 16 * v, where[v] == p ? load16(gr + 16 * v) : F16{});
    }
    for (int64_t hh = y * g.kh; hh < (y + 1) * g.kh; ++hh)
      for (int64_t ww = covered_w; ww < g.w; ++ww) std::memset(di + (hh * g.w + ww) * g.c, 0, sizeof(float) * 16 * V);
  }
  for (int64_t hh = covered_h; hh < g.h; ++hh)
    for (int64_t ww = 0; ww < g.w; ++ww) std::memset(di + (hh * g.w + ww) * g.c, 0, sizeof(float) * 16 * V);
}

inline __attribute__((always_inline)) void tiled(const Geometry& g, const float* xi, const float* gi, float* di,
                                                 int64_t cn) {
  switch (cn) {
    case 16: return tiled_vec<1>(g, xi, gi, di);
    case 32: return tiled_vec<2>(g, xi, gi, di);
    case 48: return tiled_vec<3>(g, xi, gi, di);
    case 64: return tiled_vec<4>(g, xi, gi, di);
    default: return tiled_impl<0>(g, xi, gi, di, cn);
  }
}

TS_ISA_VARIANTS(void, image_block, overlapping,
                (const Geometry& g, const float* xi, const float* gi, float* di, int64_t cn), (g, xi, gi, di, cn))
TS_ISA_VARIANTS(void, image_block_tiled, tiled,
                (const Geometry& g, const float* xi, const float* gi, float* di, int64_t cn), (g, xi, gi, di, cn))

class MaxPoolGradKernel final : public CpuKernel {
 public:
  MaxPoolGradKernel(const Node& node, Isa isa)
      : node_(node), block_(image_block_for(isa)), tiled_(image_block_tiled_for(isa)) {
    const auto& k = node.attr<std::vector<int64_t>>("ksize");
    const auto& s = node.attr<std::vector<int64_t>>("strides");
    kh_ = k[1], kw_ = k[2], sh_ = s[1], sw_ = s[2];
    padding_ = nn::parse_padding(node.attr<std::string>("padding"));
    if (padding_ == nn::Padding::kExplicit) explicit_ = node.attr<std::vector<int64_t>>("explicit_paddings");
  }

  void run(KernelRun& r) override {
    const Tensor& x = r.input(0);
    const Tensor& dy = r.input(2);
    if (x.rank() != 4 || dy.rank() != 4) return run_reference(node_, r);
    const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
    const bool ex = explicit_.size() == 8;
    nn::Window wh = nn::window(h, kh_, sh_, 1, padding_, ex ? explicit_[2] : 0, ex ? explicit_[3] : 0);
    nn::Window ww = nn::window(w, kw_, sw_, 1, padding_, ex ? explicit_[4] : 0, ex ? explicit_[5] : 0);
    if (dy.shape() != Shape{n, wh.out, ww.out, c} || x.num_elements() == 0 || h * w * c >= (int64_t{1} << 31))
      return run_reference(node_, r);
    Tensor dx = r.allocate(0, DType::kFloat32, x.shape());
    const float* px = x.data<float>();
    const float* pg = dy.data<float>();
    float* pd = dx.data<float>();
    const int64_t blocks = (c + kChannelBlock - 1) / kChannelBlock, oh = wh.out, ow = ww.out;
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, h * w * std::min(c, kChannelBlock)));
    const Geometry geo{h, w, c, oh, ow, kh_, kw_, sh_, sw_, wh.pad_before, ww.pad_before};
    // SAME padding may add windows past the edge (pad_after > 0): those are partial, so only
    // exact tilings take the direct-write path.
    const bool tiled = sh_ == kh_ && sw_ == kw_ && wh.pad_before == 0 && ww.pad_before == 0 && oh * kh_ <= h &&
                       ow * kw_ <= w;
    parallel_for(n * blocks, grain, r.threads(), [&](int64_t lo, int64_t hi) {
      for (int64_t item = lo; item < hi; ++item) {
        const int64_t b = item / blocks, c0 = item % blocks * kChannelBlock, cn = std::min(kChannelBlock, c - c0);
        const float *xi = px + b * h * w * c + c0, *gi = pg + b * oh * ow * c + c0;
        float* di = pd + b * h * w * c + c0;
        if (tiled) tiled_(geo, xi, gi, di, cn);
        else block_(geo, xi, gi, di, cn);
      }
    });
    r.set_output(0, dx);
  }

 private:
  const Node& node_;
  decltype(&image_block_base) block_;
  decltype(&image_block_tiled_base) tiled_;
  int64_t kh_, kw_, sh_, sw_;
  nn::Padding padding_;
  std::vector<int64_t> explicit_;
};

}  // namespace

void register_pool_grad_kernels() {
  register_kernel("MaxPoolGrad", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    if (!CompileEnv::is_f32(n, 0) || !CompileEnv::is_f32(n, 2) || n.outputs.at(0).dtype != DType::kFloat32)
      return nullptr;
    if (n.attr_or<std::string>("data_format", "NHWC") != "NHWC") return nullptr;
    const auto& k = n.attr<std::vector<int64_t>>("ksize");
    const auto& s = n.attr<std::vector<int64_t>>("strides");
    if (k.size() != 4 || s.size() != 4 || k[0] != 1 || k[3] != 1 || s[0] != 1 || s[3] != 1) return nullptr;
    if (n.attr<std::string>("padding") == "EXPLICIT") {
      auto ep = n.attr_or<std::vector<int64_t>>("explicit_paddings", {});
      if (ep.size() != 8 || ep[0] || ep[1] || ep[6] || ep[7]) return nullptr;
    }
    return std::make_unique<MaxPoolGradKernel>(n, env.isa);
  });
}

}  // namespace tessera::cpu
