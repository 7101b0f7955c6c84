#include "backend/rdu/mapping.h"

#include <chrono>

#include "backend/rdu/routing.h"

namespace tessera::rdu {

RduMapping map_graph(const Graph& graph, int64_t batch, const Arch& arch, const MapOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  RduMapping m;
  m.arch = arch;
  m.precision = options.precision;
  m.batch = batch;
  m.kernels = lower_graph(graph, batch, options.precision);
  m.partition = partition_kernels(m.kernels, arch, options.precision, options.partition);
  for (const Section& s : m.partition.sections) {
    SectionMapping sm = place_section(s, m.kernels, arch, options.placement);
    route_streams(sm, arch);
    m.placement_seconds += sm.search_seconds;
    m.placement_cost += sm.cost;
    m.placement_lower_bound += sm.lower_bound;
    m.sections.push_back(std::move(sm));
  }
  m.compile_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

}  // namespace tessera::rdu
