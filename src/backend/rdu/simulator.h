// Timing and functional simulation of an rdu mapping.
//
// Timing: each section is a pipeline whose stages are its off-chip load, its kernels and its
// off-chip store, streaming the section's tensors in `tiles_per_section` tiles. A stage starts
// tile t when it has finished tile t-1, every producer has finished tile t, and every
// consumer has started tile t - buffer_tiles (a full PMU buffer blocks the producer:
// back-pressure). A kernel's time per tile is the largest of its compute, its PMU write port
// and the busiest mesh link on its input routes (link contention). The first tile pays the
// pipeline and hop latencies and the off-chip latency (fill); the last drains. Each section
// with compute also pays the configured switch and sync, and can never beat its off-chip
// traffic at the tiers' effective bandwidth.
//
// Functional: the sections run in order on the reference kernels, each fed the values earlier
// sections produced, so outputs are those of the sectioned schedule.
#pragma once
#include <string>
#include <vector>

#include "backend/rdu/mapping.h"
#include "ir/op_registry.h"

namespace tessera::rdu {

struct PipeStage {
  std::string name;
  double per_tile = 0;       // cycles per tile in steady state
  double first_latency = 0;  // extra cycles on the first tile (fill)
  std::vector<int> preds;    // earlier stage indices, streamed tile by tile
  std::vector<int> whole;    // earlier stages whose every tile must be done before tile 0
};

struct PipeResult {
  double cycles = 0;
  std::vector<double> busy, stall;  // per stage: cycles working, cycles blocked/starved after starting
};

// The recurrence above; `buffer_tiles` <= 0 means unbounded buffers. An edge that skips
// pipeline levels gets `buffer_tiles` more tiles per level skipped (the skew buffers a
// dataflow compiler inserts on reconvergent paths; not charged to SRAM, a simplification).
// A stage waiting for a whole tensor (`whole`) starts after it is complete; that tensor is
// buffered in full, so such an edge exerts no back-pressure.
PipeResult run_pipeline(const std::vector<PipeStage>& stages, int tiles, int buffer_tiles);

struct SectionTiming {
  double cycles = 0;          // including switch and sync
  double pipeline_cycles = 0;
  double switch_cycles = 0;
  double flops = 0;
  int64_t hbm_bytes = 0, ddr_bytes = 0;
  double max_link_util = 0;   // busiest link's bytes / (cycles * link bandwidth)
  int pcus = 0, pmus = 0;
  std::string bottleneck;     // the slowest stage (kernel name, "hbm", "ddr", "store")
  std::vector<std::string> kernel_names;
};

struct SimReport {
  double cycles = 0, seconds = 0;
  double flops = 0;
  int64_t hbm_bytes = 0, ddr_bytes = 0;
  double peak_flop_per_cycle = 0;
  double pcu_utilisation = 0;  // PCU-cycles busy / (PCUs x cycles)
  std::vector<SectionTiming> sections;
  double tflops() const { return seconds > 0 ? flops / seconds / 1e12 : 0; }
  double fraction_of_peak() const { return cycles > 0 ? flops / cycles / peak_flop_per_cycle : 0; }
};

SimReport simulate_timing(const RduMapping& mapping);

// One section's timing; adds its PCU-busy cycles to *pcu_busy when given.
SectionTiming time_section(const std::vector<Kernel>& kernels, const Section& section, const SectionMapping& placed,
                           const Arch& arch, const Precision& precision, double* pcu_busy = nullptr);

// Runs the graph section by section with the reference kernels; one tensor per graph result.
std::vector<Tensor> simulate_functional(const Graph& graph, const RduMapping& mapping, const std::vector<Tensor>& args,
                                        ResourceStore* variables);

}  // namespace tessera::rdu
