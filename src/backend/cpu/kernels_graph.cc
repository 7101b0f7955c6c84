// Graph plumbing ops with a cheaper path than their reference kernels.
#include "backend/cpu/kernel.h"
#include "ops/op_helpers.h"

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
  // VarHandleOp: the handle depends only on the node's attributes; build it once (a training
  // step holds a handle node per variable and per slot, each a string and an allocation a run).
  register_kernel("VarHandleOp", [](const Node& n, const CompileEnv&) -> std::unique_ptr<CpuKernel> {
    struct HandleKernel final : CpuKernel {
      Tensor handle{DType::kResource, {}};
      void run(KernelRun& r) override { r.set_output(0, handle); }
    };
    auto k = std::make_unique<HandleKernel>();
    k->handle.variants()[0] = std::make_shared<ResourceHandle>(ops::variable_handle_key(n));
    return k;
  });
}

}  // namespace tessera::cpu
