// The rdu compiler driver: optimised function-form graph -> kernels -> sections -> placement
// and routing of each section.
#pragma once
#include <vector>

#include "backend/rdu/partition.h"
#include "backend/rdu/placement.h"

namespace tessera::rdu {

struct MapOptions {
  Precision precision;
  PartitionOptions partition;
  PlacementOptions placement;
};

struct RduMapping {
  Arch arch;
  Precision precision;
  int64_t batch = 1;
  std::vector<Kernel> kernels;
  Partition partition;
  std::vector<SectionMapping> sections;  // parallel to partition.sections
  double compile_seconds = 0;
  double placement_seconds = 0;  // sum of the sections' search times
  double placement_cost = 0, placement_lower_bound = 0;
};

RduMapping map_graph(const Graph& graph, int64_t batch, const Arch& arch, const MapOptions& options = {});
// The same from already lowered kernels (multi-chip mapping edits them, e.g. a tensor split).
RduMapping map_kernels(std::vector<Kernel> kernels, int64_t batch, const Arch& arch, const MapOptions& options = {});
// Allocates, places and routes one section: the fastest PCU budget, then annealing. Updates
// the section's unit counts.
SectionMapping map_section(Section& section, const std::vector<Kernel>& kernels, const Arch& arch,
                           const MapOptions& options = {});

}  // namespace tessera::rdu
