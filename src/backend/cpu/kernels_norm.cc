// TsLayerNorm: normalise each row of the last axis, then scale and shift (docs/fused_ops.md).
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

 private:
  float eps_;
  const VecTable& vec_;
};

}  // namespace

void register_norm_kernels() {
  register_kernel("TsLayerNorm", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    for (size_t i = 0; i < 3; ++i)
      if (!CompileEnv::is_f32(n, i)) return nullptr;
    return std::make_unique<LayerNormKernel>(n.attr_or<float>("epsilon", 1e-3f), env.isa);
  });
}

}  // namespace tessera::cpu
