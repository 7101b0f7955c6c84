// The cpu target: turns an optimised function-form Graph (args, results) into an executable
// plan (kernel per node, static memory plan in one arena, packed weights, thread pool) and runs
// it. Ops without a fast kernel run their reference kernel from the op registry.
//
// - Kernels: a registry of fast kernels by op name (kernel.h; kernels_*.cc, one file per
//   family): oneDNN for matmul/convolution/pooling, our ISA-dispatched vector loops (vec.h)
//   for elementwise programs, softmax, reductions and norms. Everything else: reference.
// - Memory: one arena per input-shape signature (shapes are only known at run time). The first
//   run with new shapes records buffer sizes and aliasing; later runs with those shapes reuse
//   buffers by liveness (memory_plan.h). Plans are cached (16 signatures at most).
// - Threads: intra-op only, on the OpenMP runtime that oneDNN uses (threads.h); `threads`
//   bounds both. No inter-op parallelism: on the 2-core target machine intra-op already uses
//   every core. On a machine shared with other busy processes, set OMP_WAIT_POLICY=passive:
//   libgomp's default spin-waiting at barriers then costs far more than it saves.
// - ISA: `isa` picks our vector loops per executable; oneDNN's cap is process-wide (onednn.h).
// - run() may be called from several threads; runs of one executable are serialised (they
//   share the arena), so use one executable per concurrent caller for parallel throughput.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"

namespace tessera::cpu {

// Measured (see the header comment): TBD.
inline constexpr int kDefaultInterOp = 1;

// CpuOptions::inter_op as an executable uses it: the value if > 0, else $TESSERA_CPU_INTER_OP
// (lets whole test suites run concurrently), else kDefaultInterOp.
int resolve_inter_op(int requested);

struct CpuOptions {
  int threads = 0;   // intra-op threads; 0 = every core
  std::string isa;   // "" = best available, or "avx512", "avx2", "scalar" (also TESSERA_ISA)
  int inter_op = 0;  // steps run at once; 0 = the default (kDefaultInterOp), 1 = in order
};

// What the memory plan for one input-shape signature came to.
struct PlanStats {
  int64_t arena_bytes = 0;
  int64_t requested_bytes = 0;  // all arena-placed buffers added up
  int in_place = 0;             // buffers written in place over an input
};

// A weight rearranged for a kernel at compile time. `layout` names the packing and the ISA it
// was made for; a loader with a different one repacks from the original constant.
struct PackedWeight {
  std::string key;     // the Const node it came from
  std::string layout;  // e.g. "onednn:OIhw16i16o:avx512"
  Tensor data;
};

class CpuExecutable {
 public:
  virtual ~CpuExecutable() = default;
  // `prepacked` (from an artifact) is used where its layout matches what this machine wants.
  static std::unique_ptr<CpuExecutable> compile(std::shared_ptr<const Graph> graph, const CpuOptions& options,
                                                const std::vector<PackedWeight>& prepacked = {});
  // Runs with one tensor per graph arg (any batch size the graph allows); returns the results.
  virtual std::vector<Tensor> run(const std::vector<Tensor>& args, ResourceStore* variables) = 0;
  virtual std::vector<PackedWeight> packed_weights() const = 0;
  virtual std::string isa() const = 0;
  virtual int inter_op() const = 0;
  // The plan made for `arg_shapes` (after a run with them), else nullopt-like zeros.
  virtual PlanStats plan_stats(const std::vector<Shape>& arg_shapes) const = 0;
};

}  // namespace tessera::cpu
