// Mapping one model onto K rdu chips of a node, linked all-to-all by chip-to-chip (p2p)
// links of `p2p.bw_Bpc` bytes per cycle per chip and direction with `p2p.latency_cycles` per
// transfer. Each chip is mapped and simulated with the single-chip compiler; this file adds the
// split and the link traffic:
// - data: K replicas, each mapping its share of the batch; the gradient all-reduce of a
//   training-style step (ring, over the weights' bytes) is reported separately;
// - pipeline: the section sequence is cut into K contiguous stages balancing their cycles;
//   values live across a cut cross the link between the two chips; microbatches stream
//   through the stages;
// - tensor: matmul/conv kernels are split along their output dim; each such layer's output is
//   all-gathered over the links before the next layer (not overlapped with compute).
// docs/rdu.md ("Multi-chip") has the formulas and the simplifications.
#pragma once
#include <string>
#include <vector>

#include "backend/rdu/simulator.h"

namespace tessera::rdu {

enum class Parallel { kData, kPipeline, kTensor };
Parallel parse_parallel(const std::string& name);  // "data", "pipeline", "tensor"
const char* parallel_name(Parallel p);

struct MultiChipOptions {
  int chips = 1;
  Parallel parallel = Parallel::kData;
  int microbatches = 1;  // pipeline: the batch streams through the stages in this many parts
  MapOptions map;
};

// One chip's share: a replica, a pipeline stage or a tensor shard.
struct ChipPlan {
  std::string role;             // e.g. "replica 1", "stage 0", "shard 2"
  int64_t batch = 0;            // samples it maps per run (a microbatch for a pipeline stage)
  int first_section = 0, end_section = 0;  // pipeline: its sections [first, end) of the whole mapping
  double cycles = 0;            // one run on this chip
  double flops = 0;             // per run
  int64_t weight_bytes = 0;     // weights it holds
  bool weights_in_ddr = false;
  int64_t p2p_send_bytes = 0;   // sent over its links per run (pipeline: to the next stage)
  double p2p_cycles = 0;        // time of those transfers
  size_t sections = 0;
  std::vector<std::string> problems;  // the validator on this chip's mapping
};

struct MultiChipReport {
  Parallel parallel = Parallel::kData;
  int chips = 1;
  int64_t batch = 0;
  int microbatches = 1;
  double clock_ghz = 0;
  std::vector<ChipPlan> plans;
  // The whole batch, start to finish. Pipeline: latency + (M - 1) x the slowest stage or link.
  double step_cycles = 0;
  // Cycles per batch once the pipeline is full (= step_cycles for data and tensor).
  double steady_cycles = 0;
  double latency_cycles = 0;      // first sample in to its result out
  double bubble_fraction = 0;     // pipeline: idle share of the slowest stage during a step
  double flops = 0;               // all chips, per batch
  int64_t p2p_bytes = 0;          // all chips, per batch
  double p2p_cycles = 0;          // link time on the critical path per batch (pipeline: per microbatch, overlapped)
  // Data parallel, training-style step: ring all-reduce of the weights' bytes (gradients at
  // the timing precision); 0 for K = 1.
  int64_t allreduce_bytes = 0;
  double allreduce_cycles = 0;
  int total_sections = 0;          // pipeline: sections of the whole model (the stages cover them)
  std::vector<std::string> notes;  // how a remainder was handled, what was split
  std::vector<std::string> problems;  // validate_multichip's findings

  double seconds(double cycles) const { return cycles / (clock_ghz * 1e9); }
  // Throughput: the batch over the steady-state time per batch.
  double samples_per_second() const { return steady_cycles > 0 ? batch / seconds(steady_cycles) : 0; }
  // Per step including the pipeline bubble (equals samples_per_second for data and tensor).
  double step_samples_per_second() const { return step_cycles > 0 ? batch / seconds(step_cycles) : 0; }
  bool valid() const { return problems.empty(); }
};

// Maps and simulates `graph` at `batch` on `options.chips` chips. Fails naming the capacity when
// a chip's share of the weights exceeds its HBM + DDR, and when the split is impossible.
MultiChipReport simulate_multichip(const Graph& graph, int64_t batch, const Arch& arch, const MultiChipOptions& options);

// Checks a report independently of how it was built; one message per violation, each starting
// with its kind: "chip:" (a chip's own mapping fails the single-chip validator), "capacity:"
// (a chip's weights exceed its HBM, or HBM + DDR when kept in DDR), "split:" (replica batches
// do not add up to the batch, pipeline stages do not cover the sections once and in order,
// more chips than the node has), "p2p:" (a link charged less time than its bytes need, or a
// pipeline link busier than the steady-state interval).
std::vector<std::string> validate_multichip(const MultiChipReport& report, const Arch& arch);

// Hand formulas (cycles), also used by issue 5's training step. A ring over K chips: each chip
// sends 2(K-1)/K of the bytes in 2(K-1) steps (all-reduce), or (K-1)/K in K-1 (all-gather).
double ring_allreduce_cycles(int64_t bytes, int chips, const P2pSpec& p2p);
double ring_allgather_cycles(int64_t bytes, int chips, const P2pSpec& p2p);
// One point-to-point transfer: bytes / bandwidth + latency (0 for no bytes).
double p2p_transfer_cycles(int64_t bytes, const P2pSpec& p2p);

// Human-readable lines and a JSON object for `tessera simulate --chips`.
std::string describe(const MultiChipReport& report);
std::string to_json(const MultiChipReport& report);

}  // namespace tessera::rdu
