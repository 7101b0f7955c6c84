// TsRandomUniformIndexed (rewrite_dropout's mask draw): rows are independent counter-based
// draws (ops/philox.h), so they split across threads with the same values as the reference.
#include "backend/cpu/kernel.h"
#include "backend/cpu/threads.h"
#include "ops/philox.h"

namespace tessera::cpu {

void register_random_kernels() {
  register_kernel("TsRandomUniformIndexed", [](const Node& n, const CompileEnv&) -> std::unique_ptr<CpuKernel> {
    struct IndexedUniform final : CpuKernel {
      uint32_t stream = 0;
      void run(KernelRun& r) override {
        Shape shape = r.input(0).to_int_vector();
        for (int64_t d : shape) TS_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
        Tensor out = r.allocate(0, DType::kFloat32, shape);
        const uint64_t seed = static_cast<uint64_t>(r.input(1).scalar_int());
        const uint64_t offset = static_cast<uint64_t>(r.input(2).scalar_int());
        const int64_t rows = shape.empty() ? 1 : shape[0];
        const int64_t per_row = rows > 0 ? out.num_elements() / rows : 0;
        float* d = out.data<float>();
        parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(per_row, 1)), r.threads(),
                     [&](int64_t lo, int64_t hi) {
                       for (int64_t row = lo; row < hi; ++row)
                         philox::indexed_uniform_row(seed, stream, offset + row, d + row * per_row, per_row);
                     });
        r.set_output(0, out);
      }
    };
    if (n.attr_or<DType>("dtype", DType::kFloat32) != DType::kFloat32) return nullptr;  // reference
    auto k = std::make_unique<IndexedUniform>();
    k->stream = static_cast<uint32_t>(n.attr_or<int64_t>("stream", 0));
    return k;
  });
}

}  // namespace tessera::cpu
