#include "backend/rdu/placement.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "support/error.h"

namespace tessera::rdu {
namespace {

int hops(int a, int b, int cols) { return std::abs(a / cols - b / cols) + std::abs(a % cols - b % cols); }

// Kernel slot that produced the value a kernel reads, looking through metadata kernels; -1
// when it comes from outside the section.
int producer_slot(int kernel, const std::vector<Kernel>& kernels, const std::vector<int>& slot_of) {
  while (kernel >= 0 && kernels[kernel].costs_nothing()) {
    if (kernels[kernel].producers.empty()) return -1;
    kernel = kernels[kernel].producers.front();
  }
  return kernel >= 0 ? slot_of[kernel] : -1;
}

void build_streams(SectionMapping& m, const Section& sec, const std::vector<Kernel>& kernels) {
  std::vector<int> slot_of(kernels.size(), -1);
  for (size_t j = 0; j < sec.kernels.size(); ++j) slot_of[sec.kernels[j]] = static_cast<int>(j);
  for (size_t j = 0; j < sec.kernels.size(); ++j) {
    const Kernel& k = kernels[sec.kernels[j]];
    if (k.costs_nothing() || m.pmu_units[j].empty()) continue;
    // The output buffer is spread over the kernel's PMUs: PCU i writes PMU i mod P, and a
    // consumer's unit i reads the producer's PMU i mod P.
    const std::vector<int>& own = m.pmu_units[j];
    const int64_t n_pcu = static_cast<int64_t>(m.pcu_units[j].size());
    for (int64_t i = 0; i < n_pcu; ++i)
      m.streams.push_back({m.pcu_units[j][i], own[i % own.size()], static_cast<int>(j), k.out_bytes / n_pcu});
    for (size_t e = 0; e < k.producers.size(); ++e) {
      int ps = producer_slot(k.producers[e], kernels, slot_of);
      if (ps < 0 || ps == static_cast<int>(j) || m.pmu_units[ps].empty()) continue;
      const std::vector<int>& readers = m.pcu_units[j].empty() ? m.pmu_units[j] : m.pcu_units[j];
      const std::vector<int>& bufs = m.pmu_units[ps];
      for (size_t i = 0; i < readers.size(); ++i)
        m.streams.push_back({bufs[i % bufs.size()], readers[i], static_cast<int>(j),
                             k.producer_bytes[e] / static_cast<int64_t>(readers.size())});
    }
  }
}

}  // namespace

double placement_cost(const SectionMapping& m, const Arch& arch) {
  double c = 0;
  for (const Stream& s : m.streams) c += static_cast<double>(s.bytes) * hops(m.unit_cell[s.src_unit], m.unit_cell[s.dst_unit], arch.mesh.cols);
  return c;
}

SectionMapping place_section(const Section& sec, const std::vector<Kernel>& kernels, const Arch& arch,
                             const PlacementOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  const int cols = arch.mesh.cols, cells = arch.mesh.rows * arch.mesh.cols;
  SectionMapping m;
  // Every unit of the chip, in row-major cell order: the first pcu.count PCU cells and the
  // first pmu.count PMU cells exist.
  int n_pcu = 0, n_pmu = 0;
  for (int cell = 0; cell < cells; ++cell) {
    bool pcu = arch.is_pcu_cell(cell / cols, cell % cols);
    if (pcu ? n_pcu >= arch.pcu.count : n_pmu >= arch.pmu.count) continue;
    (pcu ? n_pcu : n_pmu)++;
    m.unit_cell.push_back(cell);
    m.unit_is_pcu.push_back(pcu);
  }
  const int n_units = static_cast<int>(m.unit_cell.size());
  std::vector<bool> taken(n_units, false);
  m.pcu_units.resize(sec.kernels.size());
  m.pmu_units.resize(sec.kernels.size());
  std::vector<int> slot_of(kernels.size(), -1);
  for (size_t j = 0; j < sec.kernels.size(); ++j) slot_of[sec.kernels[j]] = static_cast<int>(j);

  for (size_t j = 0; j < sec.kernels.size(); ++j) {
    const Kernel& k = kernels[sec.kernels[j]];
    // Anchor: mean position of the producers' output buffers (else the west edge, where the
    // AGCUs are).
    double ar = arch.mesh.rows / 2.0, ac = 0;
    int na = 0;
    double sr = 0, sc = 0;
    for (int prod : k.producers) {
      int ps = producer_slot(prod, kernels, slot_of);
      if (ps < 0 || m.pmu_units[ps].empty()) continue;
      int cell = m.unit_cell[m.pmu_units[ps].front()];
      sr += cell / cols;
      sc += cell % cols;
      ++na;
    }
    if (na) ar = sr / na, ac = sc / na;
    auto take = [&](bool pcu, int count, std::vector<int>& out) {
      std::vector<std::pair<double, int>> free;
      for (int u = 0; u < n_units; ++u) {
        if (taken[u] || m.unit_is_pcu[u] != pcu) continue;
        int cell = m.unit_cell[u];
        double d = options.naive ? u : std::abs(cell / cols - ar) + std::abs(cell % cols - ac);
        free.push_back({d, u});
      }
      TS_CHECK(static_cast<int>(free.size()) >= count, "rdu placement: section needs more ", pcu ? "PCUs" : "PMUs",
               " than are free (kernel ", k.name, ")");
      std::partial_sort(free.begin(), free.begin() + count, free.end());
      for (int i = 0; i < count; ++i) {
        taken[free[i].second] = true;
        out.push_back(free[i].second);
      }
    };
    take(false, sec.pmus[j], m.pmu_units[j]);
    take(true, sec.pcus[j], m.pcu_units[j]);
  }
  build_streams(m, sec, kernels);
  for (const Stream& s : m.streams) m.lower_bound += static_cast<double>(s.bytes);  // every stream needs >= 1 hop
  m.cost = placement_cost(m, arch);

  if (!options.naive && options.anneal && !m.streams.empty()) {
    // Simulated annealing over swaps of two same-type units' cells (a used unit may swap
    // with a free one). Only streams touching the two units change cost.
    std::vector<std::vector<int>> touching(n_units);
    for (size_t s = 0; s < m.streams.size(); ++s) {
      touching[m.streams[s].src_unit].push_back(static_cast<int>(s));
      touching[m.streams[s].dst_unit].push_back(static_cast<int>(s));
    }
    std::mt19937_64 rng(options.seed);
    std::uniform_int_distribution<int> pick(0, n_units - 1);
    std::uniform_real_distribution<double> unit(0, 1);
    int iters = options.iterations ? options.iterations : std::min(200000, 200 * n_units);
    double mean = m.cost / m.streams.size();
    double temp = std::max(mean, 1.0), cool = std::pow(1e-3, 1.0 / iters);
    auto local = [&](int a, int b) {
      double c = 0;
      for (int s : touching[a]) c += static_cast<double>(m.streams[s].bytes) * hops(m.unit_cell[m.streams[s].src_unit], m.unit_cell[m.streams[s].dst_unit], cols);
      for (int s : touching[b]) {
        if (m.streams[s].src_unit == a || m.streams[s].dst_unit == a) continue;  // counted once
        c += static_cast<double>(m.streams[s].bytes) * hops(m.unit_cell[m.streams[s].src_unit], m.unit_cell[m.streams[s].dst_unit], cols);
      }
      return c;
    };
    std::vector<int> best_cells = m.unit_cell;
    double best = m.cost;
    for (int it = 0; it < iters; ++it, temp *= cool) {
      int a = pick(rng), b = pick(rng);
      if (a == b || m.unit_is_pcu[a] != m.unit_is_pcu[b] || (touching[a].empty() && touching[b].empty())) continue;
      double before = local(a, b);
      std::swap(m.unit_cell[a], m.unit_cell[b]);
      double delta = local(a, b) - before;
      if (delta <= 0 || unit(rng) < std::exp(-delta / temp)) {
        m.cost += delta;
        ++m.anneal_moves_accepted;
        if (m.cost < best - 1e-9) best = m.cost, best_cells = m.unit_cell;
      } else {
        std::swap(m.unit_cell[a], m.unit_cell[b]);
      }
    }
    m.unit_cell = best_cells;  // annealing may end above the best mapping it visited
    m.cost = placement_cost(m, arch);
  }
  m.search_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

}  // namespace tessera::rdu
