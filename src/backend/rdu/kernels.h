// Lowering of optimised IR nodes to rdu dataflow kernels, each with an analytic cost model:
// systolic GEMM/conv on PCUs, SIMD pipelines (elementwise, reductions, softmax, layer-norm,
// pooling, depthwise conv), attention (two GEMMs + a softmax on the same PCUs), and layout
// kernels (transpose, pad, concat, slice, gather) that run in PMU address generators.
// Metadata ops (reshape, identity, constants, args) cost nothing.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "backend/rdu/arch.h"
#include "ir/graph.h"

namespace tessera::rdu {

enum class Engine { kNone, kSystolic, kSimd, kPmu };

struct Precision {
  bool bf16 = true;  // timing precision: bf16 (2-byte floats, full rate) or fp32 (4 bytes)
  int64_t float_bytes() const { return bf16 ? 2 : 4; }
};

struct Kernel {
  const Node* node = nullptr;
  std::string name, op, family;  // family: gemm, conv, depthwise, attention, elementwise, ...
  Engine engine = Engine::kNone;
  // Systolic geometry: `groups` independent [m,k] x [k,n] products (batched matmul, heads).
  int64_t m = 0, k = 0, n = 0, groups = 1;
  // SIMD geometry: `elems` vectors elements, `ops` pipeline operations on each, plus a
  // cross-lane reduction over runs of `reduce_len` elements (0: none).
  int64_t elems = 0;
  int64_t ops = 0;
  int64_t reduce_len = 0;
  int64_t pmu_bytes = 0;         // layout kernels: bytes moved through PMU crossbars
  double flops = 0;              // analytic
  int64_t weight_bytes = 0;      // inputs known at compile time (Const)
  int64_t act_in_bytes = 0;      // other inputs
  int64_t out_bytes = 0;
  std::vector<int> producers;    // kernel indices feeding this one
  std::vector<int64_t> producer_bytes;  // bytes per producer edge
  // Per producer edge: the kernel needs the whole tensor before it starts (the stationary
  // operand of a product of two activations, attention's keys and values, a transpose).
  std::vector<bool> producer_whole;
  std::vector<int> graph_args;   // graph arg indices read directly
  bool is_result = false;        // an output feeds a graph result

  bool costs_nothing() const { return engine == Engine::kNone; }
};

// Concrete shape of a value at `batch`: unknown dims (-1) become the batch (a stated
// simplification: Tessera's models have the batch as their only unknown dim).
Shape concrete_shape(const ValueInfo& info, int64_t batch);

// One kernel per node of a function-form graph, in topological order.
std::vector<Kernel> lower_graph(const Graph& graph, int64_t batch, const Precision& precision);

// Cycles to run the whole kernel on `pcus` PCUs (or `pmus` PMUs for layout kernels).
double kernel_cycles(const Kernel& k, int pcus, int pmus, const Arch& arch, const Precision& precision);
// The allocator's estimate of a kernel's time as a pipeline stage: compute, or its inputs
// arriving over one vector link per reading unit, or its output through its PMUs' write
// ports, whichever is slowest. (The simulator models routes and ports explicitly.)
double stage_cycles(const Kernel& k, int pcus, int pmus, const Arch& arch, const Precision& precision);
// PCUs beyond which kernel_cycles stops improving (>= 1 for PCU kernels, 0 otherwise).
int useful_pcus(const Kernel& k, const Arch& arch);
// Resident SRAM: weights kept on chip plus double-buffered input/output tiles.
int64_t kernel_sram_bytes(const Kernel& k, int tiles, int buffer_tiles);

}  // namespace tessera::rdu
