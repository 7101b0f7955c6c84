// The fast-kernel interface of the cpu backend. A KernelFactory looks at one node at compile
// time and either returns a CpuKernel for it or nullptr (the executor then runs the op's
// reference kernel). Factories are registered by op name, one file per op family.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "backend/cpu/cpu_executable.h"
#include "backend/cpu/isa.h"

namespace tessera::cpu {

// What a kernel sees while it runs: its inputs and a way to get output buffers. `allocate`
// hands out the arena slot the memory plan assigned when the plan for this input-shape
// signature exists and the size matches, else a fresh heap tensor; neither is zeroed, so a
// kernel writes every element of what it allocates.
class KernelRun {
 public:
  virtual ~KernelRun() = default;
  virtual const std::vector<Tensor>& inputs() const = 0;
  virtual Tensor allocate(int output, DType dtype, const Shape& shape) = 0;
  virtual void set_output(int output, Tensor t) = 0;
  virtual int threads() const = 0;
  const Tensor& input(size_t i) const { return inputs().at(i); }
};

class CpuKernel {
 public:
  virtual ~CpuKernel() = default;
  virtual void run(KernelRun& run) = 0;
  // Weights this kernel packed at compile time (for CpuExecutable::packed_weights).
  virtual std::vector<PackedWeight> packed() const { return {}; }
  // True when output 0 may be written into the buffer of `input` (same byte size): the kernel
  // reads each element of that input before writing the output element at the same place and
  // never reads it again. The memory plan then may merge the two buffers (memory_plan.h).
  virtual bool in_place(size_t input) const {
    (void)input;
    return false;
  }
};

struct CompileEnv {
  Isa isa = Isa::kScalar;
  const std::vector<PackedWeight>* prepacked = nullptr;
  bool bf16 = false;  // CpuOptions::precision == "bf16" (checked to be runnable)
  // Compile-time value of a node's input (a Const, possibly behind Identity), else null.
  static const Tensor* constant_input(const Node& node, size_t i);
  // Float32 input with a rank known at compile time?
  static bool is_f32(const Node& node, size_t i);
  const PackedWeight* find_prepacked(const std::string& key, const std::string& layout) const;
  // Variables that some op of the graph writes, e.g. a training step's AssignVariableOp:
  // reads of those change from run to run. Keyed by store key (ops::variable_handle_key), not
  // by node: a graph may hold several handle nodes for one variable (a step's forward and its
  // update each have their own). A write through a resource argument may reach any variable.
  struct WrittenVariables {
    std::unordered_set<std::string> keys;
    bool through_argument = false;
  };
  const WrittenVariables* written_variables = nullptr;
  // The variable a ReadVariableOp (behind Identity) reads for input i, or null.
  static const Node* read_variable(const Node& node, size_t i);
  // True if input i is a ReadVariableOp of a variable no op of this graph writes: the same
  // weights every run (inference), so worth packing once.
  bool unchanging_variable(const Node& node, size_t i) const;
};

// Runs the node's reference kernel (for cases a fast kernel does not cover) and sets its
// outputs. No variables or library calls: only for pure ops.
void run_reference(const Node& node, KernelRun& run);

using KernelFactory = std::function<std::unique_ptr<CpuKernel>(const Node&, const CompileEnv&)>;

void register_kernel(const std::string& op, KernelFactory factory);
const KernelFactory* find_kernel(const std::string& op);
std::vector<std::string> kernel_ops();  // ops with a fast kernel (for tests and `tessera ops`)

// Family registration (kernels_*.cc); kernel_registry.cc calls each once.
void register_matmul_kernels();
void register_conv_kernels();
void register_elementwise_kernels();
void register_softmax_kernels();
void register_reduce_kernels();
void register_norm_kernels();
void register_pool_kernels();
void register_attention_kernels();
void register_graph_kernels();
void register_array_kernels();
void register_conv_grad_kernels();  // kernels_conv_grad.cc: Conv2DBackpropInput/Filter
void register_pool_grad_kernels();  // kernels_pool_grad.cc: MaxPoolGrad
void register_mask_kernels();       // kernels_mask.cc: float comparisons, Cast bool -> float
void register_random_kernels();

}  // namespace tessera::cpu
