#include "backend/rdu/partition.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <queue>

#include "support/error.h"

namespace tessera::rdu {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int min_pmus(int64_t sram, const Arch& arch) {
  return static_cast<int>(std::max<int64_t>(1, ceil_div(sram, arch.pmu.capacity_bytes)));
}

}  // namespace

int Section::used_pcus() const { return std::accumulate(pcus.begin(), pcus.end(), 0); }
int Section::used_pmus() const { return std::accumulate(pmus.begin(), pmus.end(), 0); }

std::vector<int> balance_pcus(const std::vector<const Kernel*>& ks, const std::vector<int>& pmus, int total_pcus,
                              const Arch& arch, const Precision& precision) {
  std::vector<int> u(ks.size(), 0);
  using Item = std::pair<double, size_t>;  // (cycles at current allocation, kernel)
  std::priority_queue<Item> heap;
  int left = total_pcus;
  for (size_t i = 0; i < ks.size(); ++i) {
    if (useful_pcus(*ks[i], arch) == 0) continue;
    u[i] = 1;
    --left;
    heap.push({stage_cycles(*ks[i], 1, pmus[i], arch, precision), i});
  }
  TS_CHECK(left >= 0, "rdu: section needs more PCUs than the chip has");
  // Greedy water-filling: the current bottleneck gets the next PCU; a kernel that cannot use
  // more leaves the heap, and the loop stops when the bottleneck cannot improve.
  while (left > 0 && !heap.empty()) {
    auto [cyc, i] = heap.top();
    heap.pop();
    if (u[i] >= useful_pcus(*ks[i], arch)) continue;
    // Jump to the next allocation that actually lowers the cycle count (ceil plateaus).
    int next = u[i] + 1;
    while (next - u[i] <= left && next < useful_pcus(*ks[i], arch) &&
           stage_cycles(*ks[i], next, pmus[i], arch, precision) >= cyc)
      ++next;
    if (next - u[i] > left) break;
    double c = stage_cycles(*ks[i], next, pmus[i], arch, precision);
    if (c >= cyc) break;
    left -= next - u[i];
    u[i] = next;
    heap.push({c, i});
  }
  return u;
}

void add_spare_pmus(const std::vector<const Kernel*>& ks, const std::vector<int>& pcus, std::vector<int>& pmus,
                    int total_pmus, const Arch& arch, const Precision& precision) {
  int left = total_pmus;
  for (int p : pmus) left -= p;
  using Item = std::pair<double, size_t>;
  std::priority_queue<Item> heap;
  for (size_t i = 0; i < ks.size(); ++i)
    if (!ks[i]->costs_nothing()) heap.push({stage_cycles(*ks[i], pcus[i], pmus[i], arch, precision), i});
  while (left > 0 && !heap.empty()) {
    auto [cyc, i] = heap.top();
    heap.pop();
    double c = stage_cycles(*ks[i], pcus[i], pmus[i] + 1, arch, precision);
    if (c >= cyc) break;  // the bottleneck is not its PMUs: more would not help
    ++pmus[i];
    --left;
    heap.push({c, i});
  }
}

namespace {

// Where kernel k's e-th input is really made: metadata producers (reshape, identity) are
// looked through.
int source_of(const std::vector<Kernel>& kernels, int k, size_t e) {
  int src = kernels[k].producers[e];
  while (kernels[src].costs_nothing() && !kernels[src].producers.empty()) src = kernels[src].producers.front();
  return src;
}

// Sections are contiguous runs of the topological order, so "in the section" is a range test.
struct Span {
  int lo, hi;
  bool has(int i) const { return i >= lo && i <= hi; }
};

struct Ctx {
  const std::vector<Kernel>& kernels;
  const Arch& arch;
  const Precision& precision;
  std::vector<std::vector<int>> users;
  std::vector<int> need_pcu, need_pmu;
  std::vector<int64_t> sram;
  bool weights_in_ddr;
};

// Units, allocation and off-chip traffic of kernels [span.lo, span.hi] as one section.
Section build_section(const Ctx& c, Span span) {
  const std::vector<Kernel>& kernels = c.kernels;
  const int T = c.arch.sim.tiles_per_section, B = c.arch.sim.buffer_tiles;
  Section sec;
  std::vector<const Kernel*> ks;
  for (int i = span.lo; i <= span.hi; ++i) {
    sec.kernels.push_back(i);
    sec.pmus.push_back(c.need_pmu[i]);
    sec.sram.push_back(c.sram[i]);
    ks.push_back(&kernels[i]);
  }
  sec.pcus = balance_pcus(ks, sec.pmus, c.arch.pcu.count, c.arch, c.precision);
  add_spare_pmus(ks, sec.pcus, sec.pmus, c.arch.pmu.count, c.arch, c.precision);
  for (size_t j = 0; j < ks.size(); ++j) {
    const Kernel& k = *ks[j];
    if (k.costs_nothing()) continue;
    sec.flops += k.flops;
    int64_t resident = kernel_sram_bytes(k, T, B);
    // Weights larger than the SRAM given: stream them in chunks, re-reading the inputs.
    int64_t chunks = resident > sec.sram[j] ? ceil_div(k.weight_bytes, std::max<int64_t>(1, sec.sram[j] / 2)) : 1;
    (c.weights_in_ddr ? sec.ddr_read : sec.hbm_read) += k.weight_bytes;
    for (size_t e = 0; e < k.producers.size(); ++e) {
      // A graph arg or a value from another section comes from HBM.
      int src = source_of(kernels, sec.kernels[j], e);
      if (kernels[src].costs_nothing() || !span.has(src)) sec.hbm_read += k.producer_bytes[e] * chunks;
    }
    bool leaves = k.is_result;
    for (int u : c.users[sec.kernels[j]]) {
      int target = u;
      // Follow metadata users (reshape, identity) to where the value is really consumed.
      while (kernels[target].costs_nothing() && !kernels[target].is_result && !c.users[target].empty())
        target = c.users[target].front();
      if (!span.has(target) || kernels[target].is_result) leaves = true;
    }
    if (leaves) sec.hbm_write += k.out_bytes;
  }
  return sec;
}

// Estimated cycles of a built section: its slowest stage (the pipeline's rate; fill is
// ignored), at least its off-chip traffic, plus the switch and sync it pays if it computes.
double estimate_cycles(const Ctx& c, const Section& sec) {
  double pipe = 0;
  bool compute = false;
  for (size_t j = 0; j < sec.kernels.size(); ++j) {
    const Kernel& k = c.kernels[sec.kernels[j]];
    if (k.costs_nothing()) continue;
    compute = true;
    pipe = std::max(pipe, stage_cycles(k, sec.pcus[j], sec.pmus[j], c.arch, c.precision));
  }
  const Arch& a = c.arch;
  double floor = (sec.hbm_read + sec.hbm_write) / a.hbm.effective_Bpc() + (sec.hbm_read ? a.hbm.latency_cycles : 0);
  floor = std::max(floor, sec.ddr_read / a.ddr.effective_Bpc() + (sec.ddr_read ? a.ddr.latency_cycles : 0));
  double sw = compute ? static_cast<double>(a.reconfig.section_switch_cycles + a.reconfig.kernel_call_sync_cycles) : 0;
  return std::max(pipe, floor) + sw;
}

// True if compute kernel k needs a whole tensor made by a compute kernel in [lo, k): it could
// not overlap its producer, so the two go to different sections and each gets the chip.
bool waits_within(const Ctx& c, int k, int lo) {
  const Kernel& kk = c.kernels[k];
  for (size_t e = 0; e < kk.producers.size(); ++e) {
    int src = source_of(c.kernels, k, e);
    if (kk.producer_whole[e] && !c.kernels[src].costs_nothing() && src >= lo) return true;
  }
  return false;
}

// Section starts: a cut may only fall before a compute kernel. Greedy: extend until the
// units run out or a whole-tensor wait (unfused: one compute kernel per section).
std::vector<int> greedy_starts(const Ctx& c, bool fused) {
  std::vector<int> starts;
  int pcus = 0, pmus = 0, computes = 0, lo = 0;
  for (int i = 0; i < static_cast<int>(c.kernels.size()); ++i) {
    bool compute = !c.kernels[i].costs_nothing();
    bool full = pcus + c.need_pcu[i] > c.arch.pcu.count || pmus + c.need_pmu[i] > c.arch.pmu.count;
    if (i == 0 || (compute && (full || waits_within(c, i, lo) || (!fused && computes > 0)))) {
      starts.push_back(i);
      lo = i;
      pcus = pmus = computes = 0;
    }
    pcus += c.need_pcu[i];
    pmus += c.need_pmu[i];
    computes += compute ? 1 : 0;
  }
  return starts;
}

// Cost-aware cuts: dynamic programming over the cut points (before compute kernels); a
// window is allowed if its minimum units fit and no kernel in it waits on a whole tensor made
// inside it; cost = estimate_cycles of the window as one section. Minimises the sum, ties (within
// kMargin) to fewer sections. O(cut points x window) section builds; each build is one water-filling.
std::vector<int> cost_aware_starts(const Ctx& c) {
  constexpr double kMargin = 0.002;
  const int n = static_cast<int>(c.kernels.size());
  std::vector<int> cuts;  // candidate section starts, then n
  for (int i = 0; i < n; ++i)
    if (i == 0 || !c.kernels[i].costs_nothing()) cuts.push_back(i);
  const int m = static_cast<int>(cuts.size());
  cuts.push_back(n);
  std::vector<double> best(m + 1, std::numeric_limits<double>::infinity());
  std::vector<int> from(m + 1, -1), count(m + 1, 0);
  best[0] = 0;
  for (int a = 0; a < m; ++a) {
    if (!std::isfinite(best[a])) continue;
    int pcus = 0, pmus = 0;
    for (int b = a + 1; b <= m; ++b) {
      // Window = kernels [cuts[a], cuts[b]); grow it by the kernels [cuts[b-1], cuts[b]).
      bool ok = true;
      for (int i = cuts[b - 1]; i < cuts[b]; ++i) {
        pcus += c.need_pcu[i];
        pmus += c.need_pmu[i];
        if (i > cuts[a] && !c.kernels[i].costs_nothing() && waits_within(c, i, cuts[a])) ok = false;
      }
      // A single kernel always forms a section (its units were checked by the lowering).
      if (b > a + 1 && (!ok || pcus > c.arch.pcu.count || pmus > c.arch.pmu.count)) break;
      double cost = best[a] + estimate_cycles(c, build_section(c, Span{cuts[a], cuts[b] - 1}));
      // The estimate ignores fill, link contention and placement, so fewer sections win
      // unless more save over kMargin of the time (EfficientNetB0 on sn40l_like: a 0.08%
      // "gain" from a cut simulated 1.9x slower; 1% would lose BERT on small at batch 32).
      bool fewer = count[a] + 1 < count[b];
      if (fewer ? cost <= best[b] * (1 + kMargin) : cost < best[b] * (1 - kMargin) || (cost < best[b] && count[a] + 1 == count[b])) {
        best[b] = cost;
        from[b] = a;
        count[b] = count[a] + 1;
      }
    }
  }
  std::vector<int> starts;
  for (int b = m; b > 0; b = from[b]) starts.push_back(cuts[from[b]]);
  std::reverse(starts.begin(), starts.end());
  return starts;
}

}  // namespace

Partition partition_kernels(const std::vector<Kernel>& kernels, const Arch& arch, const Precision& precision,
                            const PartitionOptions& options) {
  Partition p;
  p.section_of.assign(kernels.size(), -1);
  int64_t weights = 0;
  for (const Kernel& k : kernels) weights += k.weight_bytes;
  p.weights_in_ddr = weights > arch.hbm.capacity_bytes;
  if (weights > arch.hbm.capacity_bytes + arch.ddr.capacity_bytes)
    fail("rdu: the model's weights (", weights, " bytes) exceed HBM + DDR of chip '", arch.name, "'");
  if (kernels.empty()) return p;

  const int T = arch.sim.tiles_per_section, B = arch.sim.buffer_tiles;
  Ctx c{kernels, arch, precision, std::vector<std::vector<int>>(kernels.size()), {}, {}, {}, p.weights_in_ddr};
  for (size_t i = 0; i < kernels.size(); ++i) {
    const Kernel& k = kernels[i];
    for (int prod : k.producers) c.users[prod].push_back(static_cast<int>(i));
    int64_t sram = std::min<int64_t>(kernel_sram_bytes(k, T, B), arch.sram_bytes());
    c.sram.push_back(sram);
    c.need_pcu.push_back(useful_pcus(k, arch) > 0 ? 1 : 0);
    c.need_pmu.push_back(k.costs_nothing() ? 0 : min_pmus(sram, arch));
  }
  std::vector<int> starts = options.fused && options.cost_aware ? cost_aware_starts(c) : greedy_starts(c, options.fused);
  starts.push_back(static_cast<int>(kernels.size()));
  for (size_t s = 0; s + 1 < starts.size(); ++s) {
    for (int i = starts[s]; i < starts[s + 1]; ++i) p.section_of[i] = static_cast<int>(s);
    p.sections.push_back(build_section(c, Span{starts[s], starts[s + 1] - 1}));
  }
  return p;
}

}  // namespace tessera::rdu
