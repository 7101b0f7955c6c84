// Placement of one section's kernels on the mesh. Units: every PCU/PMU cell of the
// checkerboard grid. Streams: each PCU writes its share of the kernel's output to the
// kernel's first PMU (its output buffer); a consumer's PCUs read their share from the
// producer's output buffer. Cost: sum over streams of bytes x Manhattan hops (what the mesh
// carries). Greedy: kernels in topological order take the free cells nearest to their
// producers' buffers; then simulated annealing swaps units of the same type. The naive
// baseline fills cells in row-major order.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/rdu/partition.h"

namespace tessera::rdu {

struct Stream {
  int src_unit = -1, dst_unit = -1;  // indices into SectionMapping::unit_cell
  int dst_slot = -1;                 // kernel slot (in Section::kernels) that consumes it
  int64_t bytes = 0;                 // per run of the section
};

struct SectionMapping {
  // Per kernel slot: its units (indices into unit_cell), PCUs and PMUs.
  std::vector<std::vector<int>> pcu_units, pmu_units;
  std::vector<int> unit_cell;     // cell id (row * cols + col) of each unit
  std::vector<bool> unit_is_pcu;
  std::vector<Stream> streams;
  std::vector<std::vector<int>> routes;  // per stream: the cells it passes, src first
  double cost = 0, lower_bound = 0;      // bytes x hops
  double search_seconds = 0;
  int anneal_moves_accepted = 0;
};

struct PlacementOptions {
  bool naive = false;   // row-major placement, no annealing
  bool anneal = true;
  int iterations = 0;   // annealing moves; 0 = 200 per unit, at most 200,000
  uint64_t seed = 1;
};

SectionMapping place_section(const Section& section, const std::vector<Kernel>& kernels, const Arch& arch,
                             const PlacementOptions& options);

// The bytes x hops cost of a mapping's streams (recomputed from unit_cell).
double placement_cost(const SectionMapping& m, const Arch& arch);

}  // namespace tessera::rdu
