// Pad / PadV2 (constant mode) for float32 with compile-time paddings: fill the border, copy
// the input's innermost rows into the interior, rows split across threads. (Keras'
// ZeroPadding2D before strided convolutions.)
#include <algorithm>
#include <cstring>

#include "backend/cpu/kernel.h"
#include "backend/cpu/threads.h"

namespace tessera::cpu {

namespace {

class PadKernel final : public CpuKernel {
 public:
  PadKernel(const Node& node, std::vector<int64_t> paddings) : node_(node), pad_(std::move(paddings)) {}

  void run(KernelRun& r) override {
    const Tensor& x = r.input(0);
    const int64_t rank = x.rank();
    if (static_cast<int64_t>(pad_.size()) != 2 * rank || rank == 0) return run_reference(node_, r);
    for (int64_t p : pad_)
      if (p < 0) return run_reference(node_, r);
    const float value = node_.op == "PadV2" ? r.input(2).data<float>()[0] : 0.f;
    Shape out_shape(rank);
    for (int64_t d = 0; d < rank; ++d) out_shape[d] = x.dim(d) + pad_[2 * d] + pad_[2 * d + 1];
    Tensor out = r.allocate(0, DType::kFloat32, out_shape);
    float* y = out.data<float>();
    const float* px = x.data<float>();
    const int64_t total = out.num_elements();
    const int64_t inner = x.dim(rank - 1);
    const int64_t rows = inner == 0 ? 0 : x.num_elements() / inner;
    // Output strides, to place each input row.
    std::vector<int64_t> ostride(rank, 1);
    for (int64_t d = rank - 2; d >= 0; --d) ostride[d] = ostride[d + 1] * out_shape[d + 1];
    parallel_for(total, 1 << 16, r.threads(), [&](int64_t lo, int64_t hi) { std::fill(y + lo, y + hi, value); });
    parallel_for(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(inner, 1)), r.threads(), [&](int64_t lo, int64_t hi) {
      for (int64_t row = lo; row < hi; ++row) {
        int64_t rem = row, off = pad_[2 * (rank - 1)];
        for (int64_t d = rank - 2; d >= 0; --d) {
          off += (rem % x.dim(d) + pad_[2 * d]) * ostride[d];
          rem /= x.dim(d);
        }
        std::memcpy(y + off, px + row * inner, sizeof(float) * inner);
      }
    });
    r.set_output(0, out);
  }

 private:
  const Node& node_;
  std::vector<int64_t> pad_;
};

}  // namespace

void register_array_kernels() {
  for (const char* op : {"Pad", "PadV2"})
    register_kernel(op, [](const Node& n, const CompileEnv&) -> std::unique_ptr<CpuKernel> {
      if (!CompileEnv::is_f32(n, 0) || (n.op == "PadV2" && !CompileEnv::is_f32(n, 2))) return nullptr;
      const Tensor* p = CompileEnv::constant_input(n, 1);
      if (!p) return nullptr;
      return std::make_unique<PadKernel>(n, p->to_int_vector());
    });
}

}  // namespace tessera::cpu
