#include "backend/rdu/mapping.h"

#include <chrono>

#include "backend/rdu/routing.h"
#include "backend/rdu/simulator.h"

namespace tessera::rdu {
namespace {

SectionMapping place_and_route(const Section& s, const std::vector<Kernel>& kernels, const Arch& arch,
                               const PlacementOptions& options) {
  SectionMapping sm = place_section(s, kernels, arch, options);
  route_streams(sm, arch);
  return sm;
}

}  // namespace

SectionMapping map_section(Section& s, const std::vector<Kernel>& kernels, const Arch& arch, const MapOptions& options) {
  // Spreading a section over more PCUs adds streams and hops; a section limited by links
  // or ports can run faster on fewer. Try PCU budgets of the chip, 1/2, 1/4, ... with the
  // greedy placement, keep the fastest, then anneal it (keeping annealing only if the
  // section does not get slower).
  std::vector<const Kernel*> ks;
  for (int i : s.kernels) ks.push_back(&kernels[i]);
  int min_pcus = 0;
  for (const Kernel* k : ks) min_pcus += useful_pcus(*k, arch) > 0 ? 1 : 0;
  PlacementOptions greedy = options.placement;
  greedy.anneal = false;
  Section best = s;
  SectionMapping best_map;
  double best_cycles = -1;
  for (int budget = arch.pcu.count; budget >= std::max(min_pcus, 1); budget /= 2) {
    Section trial = s;
    trial.pcus = balance_pcus(ks, trial.pmus, budget, arch, options.precision);
    add_spare_pmus(ks, trial.pcus, trial.pmus, arch.pmu.count, arch, options.precision);
    SectionMapping sm = place_and_route(trial, kernels, arch, greedy);
    double c = time_section(kernels, trial, sm, arch, options.precision).cycles;
    if (best_cycles < 0 || c < best_cycles) best = trial, best_map = std::move(sm), best_cycles = c;
    if (options.placement.naive || min_pcus == 0) break;
  }
  s = best;
  if (!options.placement.naive && options.placement.anneal) {
    SectionMapping annealed = place_and_route(s, kernels, arch, options.placement);
    annealed.search_seconds += best_map.search_seconds;
    if (time_section(kernels, s, annealed, arch, options.precision).cycles <= best_cycles) best_map = std::move(annealed);
  }
  return best_map;
}

RduMapping map_graph(const Graph& graph, int64_t batch, const Arch& arch, const MapOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  RduMapping m = map_kernels(lower_graph(graph, batch, options.precision), batch, arch, options);
  m.compile_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

RduMapping map_kernels(std::vector<Kernel> kernels, int64_t batch, const Arch& arch, const MapOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  RduMapping m;
  m.arch = arch;
  m.precision = options.precision;
  m.batch = batch;
  m.kernels = std::move(kernels);
  m.partition = partition_kernels(m.kernels, arch, options.precision, options.partition);
  for (Section& s : m.partition.sections) {
    SectionMapping best_map = map_section(s, m.kernels, arch, options);
    m.placement_seconds += best_map.search_seconds;
    m.placement_cost += best_map.cost;
    m.placement_lower_bound += best_map.lower_bound;
    m.sections.push_back(std::move(best_map));
  }
  m.compile_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

}  // namespace tessera::rdu
