#include "backend/rdu/partition.h"

#include <algorithm>
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

Partition partition_kernels(const std::vector<Kernel>& kernels, const Arch& arch, const Precision& precision,
                            const PartitionOptions& options) {
  Partition p;
  p.section_of.assign(kernels.size(), -1);
  int64_t weights = 0;
  for (const Kernel& k : kernels) weights += k.weight_bytes;
  p.weights_in_ddr = weights > arch.hbm.capacity_bytes;
  if (weights > arch.hbm.capacity_bytes + arch.ddr.capacity_bytes)
    fail("rdu: the model's weights (", weights, " bytes) exceed HBM + DDR of chip '", arch.name, "'");

  const int T = arch.sim.tiles_per_section, B = arch.sim.buffer_tiles;
  Section cur;
  int cur_pcus = 0, cur_pmus = 0;
  int compute_kernels = 0;
  auto close = [&] {
    if (cur.kernels.empty()) return;
    p.sections.push_back(std::move(cur));
    cur = Section{};
    cur_pcus = cur_pmus = compute_kernels = 0;
  };
  for (size_t i = 0; i < kernels.size(); ++i) {
    const Kernel& k = kernels[i];
    int64_t sram = std::min<int64_t>(kernel_sram_bytes(k, T, B), arch.sram_bytes());
    int need_pcu = useful_pcus(k, arch) > 0 ? 1 : 0;
    int need_pmu = k.costs_nothing() ? 0 : min_pmus(sram, arch);
    bool full = cur_pcus + need_pcu > arch.pcu.count || cur_pmus + need_pmu > arch.pmu.count;
    // A kernel that needs a whole tensor made in this section could not overlap with its
    // producer; starting a new section lets each use the whole chip.
    bool waits = false;
    for (size_t e = 0; e < k.producers.size(); ++e) {
      int src = k.producers[e];
      while (kernels[src].costs_nothing() && !kernels[src].producers.empty()) src = kernels[src].producers.front();
      if (k.producer_whole[e] && !kernels[src].costs_nothing() && p.section_of[src] == static_cast<int>(p.sections.size()))
        waits = true;
    }
    if (!k.costs_nothing() && (full || waits || (!options.fused && compute_kernels > 0))) close();
    cur.kernels.push_back(static_cast<int>(i));
    cur.pmus.push_back(need_pmu);
    cur.pcus.push_back(need_pcu);
    cur.sram.push_back(sram);
    cur_pcus += need_pcu;
    cur_pmus += need_pmu;
    compute_kernels += k.costs_nothing() ? 0 : 1;
    p.section_of[i] = static_cast<int>(p.sections.size());
  }
  close();

  // Users of each kernel, to find values leaving their section.
  std::vector<std::vector<int>> users(kernels.size());
  for (size_t i = 0; i < kernels.size(); ++i)
    for (int prod : kernels[i].producers) users[prod].push_back(static_cast<int>(i));

  for (size_t s = 0; s < p.sections.size(); ++s) {
    Section& sec = p.sections[s];
    std::vector<const Kernel*> ks;
    for (int i : sec.kernels) ks.push_back(&kernels[i]);
    sec.pcus = balance_pcus(ks, sec.pmus, arch.pcu.count, arch, precision);
    add_spare_pmus(ks, sec.pcus, sec.pmus, arch.pmu.count, arch, precision);
    for (size_t j = 0; j < ks.size(); ++j) {
      const Kernel& k = *ks[j];
      if (k.costs_nothing()) continue;
      sec.flops += k.flops;
      int64_t resident = kernel_sram_bytes(k, T, B);
      // Weights larger than the SRAM given: stream them in chunks, re-reading the inputs.
      int64_t chunks = resident > sec.sram[j] ? ceil_div(k.weight_bytes, std::max<int64_t>(1, sec.sram[j] / 2)) : 1;
      (p.weights_in_ddr ? sec.ddr_read : sec.hbm_read) += k.weight_bytes;
      for (size_t e = 0; e < k.producers.size(); ++e) {
        // Look through metadata producers (reshape, identity) to where the value is made; a
        // graph arg or a value from another section comes from HBM.
        int src = k.producers[e];
        while (kernels[src].costs_nothing() && !kernels[src].producers.empty()) src = kernels[src].producers.front();
        if (kernels[src].costs_nothing() || p.section_of[src] != static_cast<int>(s)) sec.hbm_read += k.producer_bytes[e] * chunks;
      }
      bool leaves = k.is_result;
      for (int u : users[sec.kernels[j]]) {
        int target = u;
        // Follow metadata users (reshape, identity) to where the value is really consumed.
        while (kernels[target].costs_nothing() && !kernels[target].is_result && !users[target].empty())
          target = users[target].front();
        if (p.section_of[target] != static_cast<int>(s) || kernels[target].is_result) leaves = true;
      }
      if (leaves) sec.hbm_write += k.out_bytes;
    }
  }
  return p;
}

}  // namespace tessera::rdu
