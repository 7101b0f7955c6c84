// Pad / PadV2 (constant mode) for float32 with compile-time paddings: each output row written
// once (border value or border + input row), rows split across threads. (Keras'
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
    // One pass over output rows (all dims but the last): a row outside the input in any outer
    // dim is all `value`; otherwise left border, the input row, right border.
    const int64_t oinner = out_shape[rank - 1], inner = x.dim(rank - 1);
    const int64_t orows = oinner == 0 ? 0 : out.num_elements() / oinner;
    std::vector<int64_t> istride(rank, 1);
    for (int64_t d = rank - 2; d >= 0; --d) istride[d] = istride[d + 1] * x.dim(d + 1);
    const int64_t left = pad_[2 * (rank - 1)], right = pad_[2 * (rank - 1) + 1];
    parallel_for(orows, std::max<int64_t>(1, 8192 / std::max<int64_t>(oinner, 1)), r.threads(), [&](int64_t lo, int64_t hi) {
      for (int64_t row = lo; row < hi; ++row) {
        float* dst = y + row * oinner;
        int64_t rem = row, src = 0;
        bool inside = true;
        for (int64_t d = rank - 2; d >= 0 && inside; --d) {
          const int64_t i = rem % out_shape[d] - pad_[2 * d];
          rem /= out_shape[d];
          inside = i >= 0 && i < x.dim(d);
          src += i * istride[d];
        }
        if (!inside) {
          std::fill(dst, dst + oinner, value);
          continue;
        }
        std::fill(dst, dst + left, value);
        std::memcpy(dst + left, px + src, sizeof(float) * inner);
        std::fill(dst + left + inner, dst + left + inner + right, value);
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
