// Softmax and LogSoftmax over the last axis: one vectorised pass per row (max, exp-sum,
// scale), rows split across threads.
#include "backend/cpu/kernel.h"
#include "backend/cpu/threads.h"
#include "backend/cpu/vec.h"

namespace tessera::cpu {

namespace {

class SoftmaxKernel final : public CpuKernel {
 public:
  SoftmaxKernel(bool log, Isa isa) : log_(log), vec_(vec_table(isa)) {}
  void run(KernelRun& r) override {
    const Tensor& x = r.input(0);
    TS_CHECK(x.rank() >= 1, "logits must have rank >= 1");
    Tensor out = r.allocate(0, DType::kFloat32, x.shape());
    const int64_t n = x.dim(x.rank() - 1);
    const int64_t rows = n == 0 ? 0 : x.num_elements() / n;
    const float* px = x.data<float>();
    float* py = out.data<float>();
    parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), r.threads(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) vec_.softmax(px + i * n, py + i * n, n, log_);
    });
    r.set_output(0, out);
  }
  bool in_place(size_t input) const override { return input == 0; }  // each row read before written

 private:
  bool log_;
  const VecTable& vec_;
};

}  // namespace

void register_softmax_kernels() {
  for (bool log : {false, true})
    register_kernel(log ? "LogSoftmax" : "Softmax", [log](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
      if (!CompileEnv::is_f32(n, 0)) return nullptr;
      return std::make_unique<SoftmaxKernel>(log, env.isa);
    });
}

}  // namespace tessera::cpu
