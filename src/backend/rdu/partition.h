// Partitioning the kernel graph into sections: each section is configured onto the chip at
// once and runs as a spatial pipeline; tensors crossing a section boundary go through HBM.
// Within a section PCUs are handed out to balance the pipeline (the slowest stage sets the
// rate). Weights stay in HBM if they all fit there, else in DDR. A kernel whose resident
// weights exceed the chip's SRAM is tiled: its weights stream in chunks and its activations
// are re-read once per chunk.
#pragma once
#include <vector>

#include "backend/rdu/kernels.h"

namespace tessera::rdu {

struct Section {
  std::vector<int> kernels;        // indices into the kernel list, topological order
  std::vector<int> pcus, pmus;     // units given to each kernel (parallel to `kernels`)
  std::vector<int64_t> sram;       // resident bytes of each kernel
  int64_t hbm_read = 0, hbm_write = 0, ddr_read = 0;  // off-chip bytes per run of the section
  double flops = 0;
  int used_pcus() const;
  int used_pmus() const;
};

struct PartitionOptions {
  bool fused = true;  // false: the o0-style baseline, one compute kernel per section
  // Fused cuts chosen by estimated time (dynamic programming); false: the old greedy
  // "pack until the units run out" (kept for comparison and tests).
  bool cost_aware = true;
};

struct Partition {
  std::vector<Section> sections;
  std::vector<int> section_of;  // per kernel
  bool weights_in_ddr = false;
};

// Fused: cuts (before compute kernels) minimising the summed estimated section time, subject to
// unit counts, SRAM fit and whole-tensor waits; unfused: one compute kernel per section.
Partition partition_kernels(const std::vector<Kernel>& kernels, const Arch& arch, const Precision& precision,
                            const PartitionOptions& options);

// Hands `total_pcus` to the kernels (each PCU kernel gets at least one) so that the slowest
// one is as fast as possible; returns the PCUs per kernel.
std::vector<int> balance_pcus(const std::vector<const Kernel*>& kernels, const std::vector<int>& pmus, int total_pcus,
                              const Arch& arch, const Precision& precision);

// Gives PMUs left over in a section to the kernels whose PMU write ports limit them.
void add_spare_pmus(const std::vector<const Kernel*>& kernels, const std::vector<int>& pcus, std::vector<int>& pmus,
                    int total_pmus, const Arch& arch, const Precision& precision);

}  // namespace tessera::rdu
