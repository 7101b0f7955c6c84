// Graph plumbing ops with a cheaper path than their reference kernels.
#include "backend/cpu/kernel.h"

namespace tessera::cpu {

void register_graph_kernels() {
  // Const: the value is fixed at compile time, so skip the per-run attribute lookup.
  register_kernel("Const", [](const Node& n, const CompileEnv&) -> std::unique_ptr<CpuKernel> {
    struct ConstKernel final : CpuKernel {
      Tensor value;
      void run(KernelRun& r) override { r.set_output(0, value); }
    };
    auto it = n.attrs.find("value");
    const Tensor* t = it == n.attrs.end() ? nullptr : std::get_if<Tensor>(&it->second);
    if (!t) return nullptr;
    auto k = std::make_unique<ConstKernel>();
    k->value = *t;
    return k;
  });
}

}  // namespace tessera::cpu
