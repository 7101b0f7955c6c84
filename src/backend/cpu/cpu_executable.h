// The cpu target: turns an optimised function-form Graph (args, results) into an executable
// plan (kernel per node, static memory plan in one arena, packed weights, thread pool) and runs
// it. Ops without a fast kernel run their reference kernel from the op registry.
//
// - Kernels: a registry of fast kernels by op name (kernel.h; kernels_*.cc, one file per
//   family): oneDNN for matmul/convolution/pooling, our ISA-dispatched vector loops (vec.h)
//   for elementwise programs, softmax, reductions and norms. Everything else: reference.
// - Memory: one arena per input-shape signature (shapes are only known at run time). The first
//   run with new shapes records buffer sizes and aliasing; later runs with those shapes reuse
//   buffers by liveness (memory_plan.h), and a kernel that declares it (CpuKernel::in_place:
//   elementwise programs, softmax, layer/batch norm) writes over an input buffer whose last use
//   it is. Plans are cached (16 signatures at most). TESSERA_CPU_PLAN_STATS=1 prints each
//   plan. Arenas (bench models, b1 / b32; the same with in-place on and off): ResNet50 7.2 / 231 MB,
//   MobileNetV2 6.0 / 193 MB, EfficientNetB0 6.0 / 193 MB (16 buffers in place), BERT 2.4 /
//   75 MB (25 in place). The peak is always a convolution's or matmul's input and output,
//   which no elementwise merge touches; after fusion few standalone elementwise ops remain.
// - Threads: `threads` intra-op threads on the OpenMP runtime that oneDNN uses (threads.h).
//   `inter_op` > 1 runs steps whose dependencies are done on that many workers at once, each
//   with threads/inter_op intra-op threads: a fixed split, because oneDNN fixes a primitive's
//   thread count when it creates it. The memory plan then keeps apart the buffers of steps
//   that may overlap (memory_plan.h). Default 1: after fusion the bench models are nearly
//   chains (longest dependency chain / steps, most other steps being weight constants:
//   ResNet50 58/167, MobileNetV2 55/161, EfficientNetB0 133/299, BERT 116/309), so on two
//   cores inter_op 2 mostly halves each op's threads. Measured on the shared 2-core machine
//   (load ~16-19 from other jobs, so only rough; OMP_WAIT_POLICY=passive, medians of
//   interleaved rounds, p50 ms, inter_op 1 vs 2): b1 (3 rounds) MobileNetV2 31.6 vs 36.1,
//   EfficientNetB0 59.2 vs 60.4, BERT 788 vs 840; b32 (2 rounds; BERT 1 round of 2
//   iterations) MobileNetV2 1856 vs 2025, EfficientNetB0 1997 vs 2844, BERT 33584 vs 35994.
//   No win for inter_op 2. (Convolution graphs once crashed on pool threads: oneDNN's
//   library-managed scratchpad; every primitive now gets a per-thread scratchpad from us.)
//   Steps whose inputs total under kSmallOpBytes (32 KiB) run on one thread, since a fork/join
//   costs more than they do; on that machine it was within noise (b1 p50, 3 rounds, limit 0 /
//   8K / 32K / 128K: EfficientNetB0 29.9 / 32.3 / 28.7 / 28.3 ms, MobileNetV2 16.2 / 16.6 /
//   17.1 / 16.2 ms).
// - Waiting: libgomp spins up to 300000 times at each barrier while a team is no larger than
//   the core count. With other processes on the cores that is ruinous: MobileNetV2 b1 p50/p99
//   724/2790 ms by default, 27/114 ms with OMP_WAIT_POLICY=passive, 41/54 ms with
//   GOMP_SPINCOUNT=1000, 142/197 ms with 10000; EfficientNetB0 982/3395 vs 35/69 vs 72/174 vs
//   265/446 ms (same machine and conditions). On a quiet machine a short spin saves a thread
//   wake-up per region, so the tessera CLI sets GOMP_SPINCOUNT=3000 when neither it nor
//   OMP_WAIT_POLICY is set (tools/tessera_main.cc has the measurements; it re-executes itself
//   once, since libgomp reads its environment before main). Library users set it themselves.
// - ISA: `isa` picks our vector loops per executable; oneDNN's cap is process-wide (onednn.h).
// - run() may be called from several threads; runs of one executable are serialised (they
//   share the arena), so use one executable per concurrent caller for parallel throughput.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"

namespace tessera::cpu {

// Chosen by measurement: see the header comment (Threads).
inline constexpr int kDefaultInterOp = 1;
inline constexpr int kMaxInterOp = 8;  // larger values are clamped (see resolve_inter_op)

// CpuOptions::inter_op as an executable uses it: the value if > 0, else $TESSERA_CPU_INTER_OP
// (lets whole test suites run concurrently), else kDefaultInterOp; at most kMaxInterOp.
int resolve_inter_op(int requested);

struct CpuOptions {
  int threads = 0;   // intra-op threads; 0 = every core
  std::string isa;   // "" = best available, or "avx512", "avx2", "scalar" (also TESSERA_ISA)
  // "fp32", or "bf16": matmul/conv take bf16 inputs and weights, accumulate and write f32
  // (docs/bf16.md); needs AVX-512 BF16, else compile fails with kFailedPrecondition.
  std::string precision = "fp32";
  int inter_op = 0;  // steps run at once; 0 = the default (kDefaultInterOp), 1 = in order
  // Runs of one executable that may proceed at once (runtime/executable.h): each takes its own
  // copy of the plan (arena and kernels; packed weights are shared). 1 = one run at a time.
  int concurrent_runs = 1;
  // Rows per chunk for the graph's first layers (row_chunks.h): -1 = the cache rule decides
  // (or $TESSERA_CPU_CHUNK_ROWS), 0 = never split, n > 0 = split wherever a head exists.
  int chunk_rows = -1;
};

// What the memory plan for one input-shape signature came to.
struct PlanStats {
  int64_t arena_bytes = 0;
  int64_t requested_bytes = 0;  // all arena-placed buffers added up
  int in_place = 0;             // buffers written in place over an input
};

// Fails (kInvalidArgument) unless `precision` is "fp32" or "bf16".
void check_precision(const std::string& precision);

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
  // The plan made for `arg_shapes` (after a run with them), else all zeros.
  virtual PlanStats plan_stats(const std::vector<Shape>& arg_shapes) const = 0;
  // Seconds spent per op (" (reference)" appended where no fast kernel ran), summed over
  // planned runs so far; empty unless TESSERA_CPU_PROFILE is set. Diff two calls for a window.
  virtual std::map<std::string, double> op_seconds() const { return {}; }
  // Rows per chunk of the head part (row_chunks.h), 0 when the graph runs as one plan.
  virtual int64_t chunk_rows() const { return 0; }
};

}  // namespace tessera::cpu
