// Sum, Mean, Max and Min of float32 over one contiguous run of axes (the last axis, or e.g.
// the spatial axes of a global average pool). The axes are usually a compile-time constant;
// gradient graphs compute them at run time (the bias gradient sums over axes that
// BroadcastGradientArgs derives from the batch size), so then they are read per run. The input
// is viewed as [outer, reduced, inner]: inner == 1 reduces contiguous rows; otherwise rows of
// `inner` values are accumulated with vector adds. Other axis sets use the reference kernel.
#include <algorithm>
#include <vector>

#include "backend/cpu/kernel.h"
#include "backend/cpu/threads.h"
#include "backend/cpu/vec.h"

namespace tessera::cpu {

namespace {

enum class Kind { kSum, kMean, kMax, kMin };

class ReduceKernel final : public CpuKernel {
 public:
  // Empty `axes`: read them from input 1 at run time.
  ReduceKernel(const Node& node, Kind kind, std::vector<int64_t> axes, bool keep, Isa isa)
      : node_(node), kind_(kind), axes_(std::move(axes)), keep_(keep), dynamic_(axes_.empty()), vec_(vec_table(isa)) {}

  void run(KernelRun& r) override {
    const Tensor& x = r.input(0);
    const int64_t rank = x.rank();
    std::vector<int64_t> ax;
    if (dynamic_) {
      const Tensor& a = r.input(1);
      if (a.dtype() != DType::kInt32 && a.dtype() != DType::kInt64) return run_reference(node_, r);
      for (int64_t v : a.to_int_vector()) ax.push_back(v < 0 ? v + rank : v);
      std::sort(ax.begin(), ax.end());
      ax.erase(std::unique(ax.begin(), ax.end()), ax.end());
      if (ax.empty()) {  // nothing reduced (the gradient of a same-shaped operand): a copy
        Tensor out = r.allocate(0, DType::kFloat32, x.shape());
        const float* src = x.data<float>();
        float* dst = out.data<float>();
        parallel_for(x.num_elements(), 65536, r.threads(),
                     [&](int64_t b, int64_t e) { std::copy(src + b, src + e, dst + b); });
        return r.set_output(0, out);
      }
    }
    for (int64_t a : axes_) ax.push_back(a < 0 ? a + rank : a);
    std::sort(ax.begin(), ax.end());
    bool ok = !ax.empty() && ax.front() >= 0 && ax.back() < rank;
    for (size_t i = 1; ok && i < ax.size(); ++i) ok = ax[i] == ax[i - 1] + 1;
    if (!ok) return run_reference(node_, r);
    int64_t outer = 1, red = 1, inner = 1;
    Shape out_shape;
    for (int64_t d = 0; d < rank; ++d) {
      const bool reduced = d >= ax.front() && d <= ax.back();
      (d < ax.front() ? outer : reduced ? red : inner) *= x.dim(d);
      if (!reduced) out_shape.push_back(x.dim(d));
      else if (keep_) out_shape.push_back(1);
    }
    if (red == 0 || x.num_elements() == 0) return run_reference(node_, r);
    Tensor out = r.allocate(0, DType::kFloat32, out_shape);
    const float* px = x.data<float>();
    float* py = out.data<float>();
    const ReduceOp op = kind_ == Kind::kMax ? ReduceOp::kMax : kind_ == Kind::kMin ? ReduceOp::kMin : ReduceOp::kSum;
    const float scale = kind_ == Kind::kMean ? 1.f / static_cast<float>(red) : 1.f;
    if (inner == 1) {
      parallel_for(outer, std::max<int64_t>(1, 8192 / red), r.threads(), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) py[o] = vec_.reduce(op, px + o * red, red) * scale;
      });
    } else if (inner < kShortRow && red >= 2 * (kWide / inner)) {
      short_rows(px, py, outer, red, inner, op, scale, r.threads());
    } else {
      const BinaryOp acc = op == ReduceOp::kMax ? BinaryOp::kMax : op == ReduceOp::kMin ? BinaryOp::kMin : BinaryOp::kAdd;
      constexpr int64_t kChunk = 1024;
      const int64_t chunks = (inner + kChunk - 1) / kChunk;
      parallel_for(outer * chunks, 1, r.threads(), [&](int64_t b, int64_t e) {
        for (int64_t item = b; item < e; ++item) {
          const int64_t o = item / chunks, c0 = item % chunks * kChunk, len = std::min(kChunk, inner - c0);
          const float* src = px + o * red * inner + c0;
          float* dst = py + o * inner + c0;
          std::copy(src, src + len, dst);
          for (int64_t k = 1; k < red; ++k) vec_.binary(acc, dst, false, src + k * inner, false, dst, len);
          if (scale != 1.f) vec_.binary(BinaryOp::kMul, dst, false, &scale, true, dst, len);
        }
      });
    }
    r.set_output(0, out);
  }

 private:
  static constexpr int64_t kShortRow = 256, kWide = 1024;

  // [outer, red, inner] with short rows (per-channel statistics of NHWC tensors, the bias and
  // BatchNorm gradients of training graphs): a vector op per row would mostly be call overhead,
  // so m = kWide / inner rows are accumulated at once into a buffer of m * inner partial
  // results per thread (a slice of the reduced axis each), then folded.
  void short_rows(const float* px, float* py, int64_t outer, int64_t red, int64_t inner, ReduceOp op, float scale,
                  int threads) const {
    const BinaryOp acc = op == ReduceOp::kMax ? BinaryOp::kMax : op == ReduceOp::kMin ? BinaryOp::kMin : BinaryOp::kAdd;
    const int64_t m = kWide / inner, width = m * inner, groups = red / m;
    const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, groups / 4)));
    std::vector<float> partial(static_cast<size_t>(parts * width));
    for (int64_t o = 0; o < outer; ++o) {
      const float* src = px + o * red * inner;
      parallel_for(parts, 1, parts, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          const int64_t g0 = groups * p / parts, g1 = groups * (p + 1) / parts;
          float* dst = partial.data() + p * width;
          std::copy(src + g0 * width, src + (g0 + 1) * width, dst);
          for (int64_t g = g0 + 1; g < g1; ++g) vec_.binary(acc, dst, false, src + g * width, false, dst, width);
        }
      });
      float* y = py + o * inner;
      std::copy(partial.data(), partial.data() + inner, y);
      for (int64_t k = 1; k < m * parts; ++k) vec_.binary(acc, y, false, partial.data() + k * inner, false, y, inner);
      for (int64_t k = groups * m; k < red; ++k) vec_.binary(acc, y, false, src + k * inner, false, y, inner);
      if (scale != 1.f) vec_.binary(BinaryOp::kMul, y, false, &scale, true, y, inner);
    }
  }

  const Node& node_;
  Kind kind_;
  std::vector<int64_t> axes_;
  bool keep_;
  bool dynamic_;
  const VecTable& vec_;
};

}  // namespace

void register_reduce_kernels() {
  const std::pair<const char*, Kind> ops[] = {
      {"Sum", Kind::kSum}, {"Mean", Kind::kMean}, {"Max", Kind::kMax}, {"Min", Kind::kMin}};
  for (const auto& [name, kind] : ops) {
    Kind k = kind;
    register_kernel(name, [k](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
      if (!CompileEnv::is_f32(n, 0) || n.outputs.at(0).dtype != DType::kFloat32) return nullptr;
      const Tensor* axes = CompileEnv::constant_input(n, 1);
      std::vector<int64_t> ax;  // empty: read at run time
      if (axes) {
        ax = axes->to_int_vector();
        if (ax.empty()) return nullptr;
      }
      return std::make_unique<ReduceKernel>(n, k, ax, n.attr_or<bool>("keep_dims", false), env.isa);
    });
  }
}

}  // namespace tessera::cpu
