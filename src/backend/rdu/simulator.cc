#include "backend/rdu/simulator.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <set>
#include <unordered_set>

#include "backend/rdu/routing.h"
#include "ir/interpreter.h"
#include "support/error.h"

namespace tessera::rdu {

PipeResult run_pipeline(const std::vector<PipeStage>& stages, int tiles, int buffer_tiles) {
  const size_t n = stages.size();
  PipeResult r;
  r.busy.assign(n, 0);
  r.stall.assign(n, 0);
  if (n == 0 || tiles <= 0) return r;
  // level: how many whole-tensor waits precede a stage; depth: its streamed pipeline depth.
  std::vector<int> level(n, 0), depth(n, 0);
  std::vector<std::vector<int>> succ(n);
  int max_level = 0;
  for (size_t i = 0; i < n; ++i) {
    for (int p : stages[i].preds) {
      level[i] = std::max(level[i], level[p]);
      depth[i] = std::max(depth[i], depth[p] + 1);
      succ[p].push_back(static_cast<int>(i));
    }
    for (int p : stages[i].whole) level[i] = std::max(level[i], level[p] + 1);
    max_level = std::max(max_level, level[i]);
  }
  std::vector<std::vector<double>> start(n, std::vector<double>(tiles)), finish(n, std::vector<double>(tiles));
  for (int lv = 0; lv <= max_level; ++lv) {
    for (int t = 0; t < tiles; ++t) {
      for (size_t i = 0; i < n; ++i) {
        if (level[i] != lv) continue;
        double s = t > 0 ? finish[i][t - 1] : 0;
        for (int p : stages[i].preds) s = std::max(s, finish[p][t]);
        if (t == 0)
          for (int p : stages[i].whole) s = std::max(s, finish[p][tiles - 1]);
        // Back-pressure: the buffer to each consumer on this level holds `d` tiles.
        if (buffer_tiles > 0)
          for (int c : succ[i]) {
            if (level[c] != lv) continue;
            int d = buffer_tiles * std::max(1, depth[c] - depth[i]);
            if (t >= d) s = std::max(s, start[c][t - d]);
          }
        double work = stages[i].per_tile + (t == 0 ? stages[i].first_latency : 0);
        start[i][t] = s;
        finish[i][t] = s + work;
        r.busy[i] += work;
      }
    }
  }
  for (size_t i = 0; i < n; ++i) {
    r.cycles = std::max(r.cycles, finish[i][tiles - 1]);
    r.stall[i] = finish[i][tiles - 1] - start[i][0] - r.busy[i];
  }
  return r;
}

namespace {

int producer_slot(int kernel, const std::vector<Kernel>& kernels, const std::vector<int>& slot_of) {
  while (kernel >= 0 && kernels[kernel].costs_nothing()) {
    if (kernels[kernel].producers.empty()) return -1;
    kernel = kernels[kernel].producers.front();
  }
  return kernel >= 0 ? slot_of[kernel] : -1;
}

}  // namespace

SectionTiming time_section(const std::vector<Kernel>& kernels, const Section& sec, const SectionMapping& sm,
                           const Arch& arch, const Precision& precision, double* pcu_busy) {
  const int T = arch.sim.tiles_per_section;
  SectionTiming st;
  st.flops = sec.flops;
  st.hbm_bytes = sec.hbm_read + sec.hbm_write;
  st.ddr_bytes = sec.ddr_read;
  st.pcus = sec.used_pcus();
  st.pmus = sec.used_pmus();
  std::vector<int> slot_of(kernels.size(), -1);
  for (size_t j = 0; j < sec.kernels.size(); ++j) slot_of[sec.kernels[j]] = static_cast<int>(j);
  std::vector<int64_t> link_bytes = busiest_input_link_bytes(sm, static_cast<int>(sec.kernels.size()));
  std::vector<int> longest_route(sec.kernels.size(), 0);
  for (size_t i = 0; i < sm.routes.size(); ++i)
    longest_route[sm.streams[i].dst_slot] = std::max<int>(longest_route[sm.streams[i].dst_slot], sm.routes[i].size() - 1);

  std::vector<PipeStage> stages;
  const double hbm_bw = arch.hbm.effective_Bpc(), ddr_bw = arch.ddr.effective_Bpc();
  PipeStage load{"hbm", 0, 0, {}};
  load.per_tile = std::max(sec.hbm_read / hbm_bw, sec.ddr_read / ddr_bw) / T;
  if (sec.ddr_read / ddr_bw > sec.hbm_read / hbm_bw) load.name = "ddr";
  if (sec.hbm_read) load.first_latency = static_cast<double>(arch.hbm.latency_cycles);
  if (sec.ddr_read) load.first_latency = std::max(load.first_latency, static_cast<double>(arch.ddr.latency_cycles));
  stages.push_back(load);
  std::vector<int> stage_of(sec.kernels.size(), -1);
  std::vector<bool> has_consumer(sec.kernels.size(), false);
  for (size_t j = 0; j < sec.kernels.size(); ++j) {
    const Kernel& k = kernels[sec.kernels[j]];
    if (k.costs_nothing()) continue;
    st.kernel_names.push_back(k.name);
    double compute = kernel_cycles(k, sec.pcus[j], sec.pmus[j], arch, precision);
    if (pcu_busy) *pcu_busy += compute * sec.pcus[j];
    PipeStage ps{k.name, compute / T, 0, {}};
    ps.per_tile = std::max(ps.per_tile, static_cast<double>(k.out_bytes) / T / (arch.pmu.write_Bpc * std::max(1, sec.pmus[j])));
    ps.per_tile = std::max(ps.per_tile, static_cast<double>(link_bytes[j]) / T / arch.mesh.vector_link_Bpc);
    ps.first_latency = static_cast<double>(longest_route[j]) * arch.mesh.hop_latency_cycles;
    bool from_outside = k.producers.empty();
    for (size_t e = 0; e < k.producers.size(); ++e) {
      int ps_slot = producer_slot(k.producers[e], kernels, slot_of);
      if (ps_slot < 0 || stage_of[ps_slot] < 0) {
        from_outside = true;
        continue;
      }
      (k.producer_whole[e] ? ps.whole : ps.preds).push_back(stage_of[ps_slot]);
      has_consumer[ps_slot] = true;
    }
    if (from_outside || k.weight_bytes) ps.preds.push_back(0);
    stage_of[j] = static_cast<int>(stages.size());
    stages.push_back(ps);
  }
  PipeStage store{"store", sec.hbm_write / hbm_bw / T, 0, {}};
  for (size_t j = 0; j < sec.kernels.size(); ++j)
    if (stage_of[j] >= 0 && !has_consumer[j]) store.preds.push_back(stage_of[j]);
  stages.push_back(store);
  PipeResult pr = run_pipeline(stages, T, arch.sim.buffer_tiles);
  // Reads and writes share the HBM channels: the section cannot beat their sum.
  double offchip_floor = (sec.hbm_read + sec.hbm_write) / hbm_bw + (sec.hbm_read ? arch.hbm.latency_cycles : 0);
  offchip_floor = std::max(offchip_floor, sec.ddr_read / ddr_bw + (sec.ddr_read ? arch.ddr.latency_cycles : 0));
  st.pipeline_cycles = std::max(pr.cycles, offchip_floor);
  size_t worst = 0;
  for (size_t i = 0; i < stages.size(); ++i)
    if (stages[i].per_tile > stages[worst].per_tile) worst = i;
  st.bottleneck = offchip_floor > pr.cycles ? "hbm" : stages[worst].name;
  // A deep pipeline with few tiles spends most of its time filling and draining.
  if (offchip_floor <= pr.cycles && pr.cycles > 2 * T * stages[worst].per_tile)
    st.bottleneck = "fill/drain (" + std::to_string(stages.size()) + " stages)";
  bool has_compute = !st.kernel_names.empty();
  st.switch_cycles = has_compute ? static_cast<double>(arch.reconfig.section_switch_cycles + arch.reconfig.kernel_call_sync_cycles) : 0;
  st.cycles = has_compute ? st.pipeline_cycles + st.switch_cycles : 0;
  if (st.pipeline_cycles > 0) {
    for (const auto& [link, bytes] : link_loads(sm))
      st.max_link_util = std::max(st.max_link_util, bytes / (st.pipeline_cycles * arch.mesh.vector_link_Bpc));
  }
  return st;
}

SimReport simulate_timing(const RduMapping& mp) {
  const Arch& arch = mp.arch;
  SimReport rep;
  rep.peak_flop_per_cycle = arch.peak_flop_per_cycle(mp.precision.bf16);
  double pcu_busy = 0;
  for (size_t s = 0; s < mp.partition.sections.size(); ++s) {
    SectionTiming st = time_section(mp.kernels, mp.partition.sections[s], mp.sections[s], arch, mp.precision, &pcu_busy);
    rep.cycles += st.cycles;
    rep.flops += st.flops;
    rep.hbm_bytes += st.hbm_bytes;
    rep.ddr_bytes += st.ddr_bytes;
    rep.sections.push_back(std::move(st));
  }
  rep.seconds = rep.cycles / (arch.clock_ghz * 1e9);
  rep.pcu_utilisation = rep.cycles > 0 ? pcu_busy / (rep.cycles * arch.pcu.count) : 0;
  return rep;
}

std::vector<Tensor> simulate_functional(const Graph& graph, const RduMapping& mp, const std::vector<Tensor>& args,
                                        ResourceStore* variables) {
  TS_CHECK(args.size() == graph.args.size(), "rdu simulate: expected ", graph.args.size(), " args, got ", args.size());
  std::vector<Node*> order = graph.topo_order();
  TS_CHECK(order.size() == mp.kernels.size(), "rdu simulate: the mapping is for a different graph");
  std::unordered_map<const Node*, int> section;
  for (size_t i = 0; i < order.size(); ++i) section[order[i]] = mp.partition.section_of[i];
  // Values each section must hand on: used by a later section or a graph result.
  std::unordered_set<const Node*> results;
  for (const Value& r : graph.results) results.insert(r.node);
  std::vector<std::vector<Value>> outputs(mp.partition.sections.size());
  std::set<std::pair<const Node*, int>> seen;
  for (Node* n : order)
    for (const Value& in : n->inputs)
      if (section[in.node] != section[n] && in.node->op != "_Arg" && seen.insert({in.node, in.index}).second)
        outputs[section[in.node]].push_back(in);
  for (const Value& r : graph.results)
    if (r.node->op != "_Arg" && seen.insert({r.node, r.index}).second) outputs[section[r.node]].push_back(r);

  std::vector<Feed> feeds;
  for (size_t i = 0; i < args.size(); ++i) feeds.push_back({graph.args[i]->out(0), args[i]});
  for (size_t s = 0; s < outputs.size(); ++s) {
    if (outputs[s].empty()) continue;
    std::vector<Tensor> vals = with_context("rdu section " + std::to_string(s),
                                            [&] { return interpret(graph, feeds, outputs[s], {}, variables); });
    for (size_t i = 0; i < vals.size(); ++i) feeds.push_back({outputs[s][i], vals[i]});
  }
  std::vector<Tensor> out;
  for (const Value& r : graph.results) {
    auto it = std::find_if(feeds.begin(), feeds.end(), [&](const Feed& f) { return f.value == r; });
    TS_CHECK(it != feeds.end(), "rdu simulate: result ", r.str(), " was not computed");
    out.push_back(it->tensor);
  }
  return out;
}

}  // namespace tessera::rdu
