#include "backend/rdu/multichip.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/rdu/validator.h"
#include "support/error.h"

namespace tessera::rdu {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t weights_of(const std::vector<Kernel>& kernels, const std::vector<int>& which) {
  int64_t w = 0;
  for (int i : which) w += kernels[i].weight_bytes;
  return w;
}

int64_t all_weights(const std::vector<Kernel>& kernels) {
  int64_t w = 0;
  for (const Kernel& k : kernels) w += k.weight_bytes;
  return w;
}

int64_t offchip_capacity(const Arch& a) { return a.hbm.capacity_bytes + a.ddr.capacity_bytes; }

void check_fits(int64_t weights, const Arch& a, const std::string& who, const char* hint) {
  if (weights > offchip_capacity(a))
    fail("rdu: ", who, " needs ", weights, " bytes of weights, more than chip '", a.name, "' holds (HBM ",
         a.hbm.capacity_bytes, " + DDR ", a.ddr.capacity_bytes, " bytes)", hint);
}

// Where a kernel's input is really made: through metadata kernels (reshape, identity).
int resolve(const std::vector<Kernel>& kernels, int src) {
  while (kernels[src].costs_nothing() && !kernels[src].producers.empty()) src = kernels[src].producers.front();
  return src;
}

ChipPlan plan_from(const RduMapping& m, const SimReport& r, const std::string& role) {
  ChipPlan p;
  p.role = role;
  p.batch = m.batch;
  p.cycles = r.cycles;
  p.flops = r.flops;
  p.sections = m.sections.size();
  p.end_section = static_cast<int>(m.sections.size());
  for (const Section& s : m.partition.sections) p.weight_bytes += weights_of(m.kernels, s.kernels);
  p.weights_in_ddr = m.partition.weights_in_ddr;
  p.problems = validate_mapping(m, &r);
  return p;
}

MultiChipReport data_parallel(const Graph& graph, int64_t batch, const Arch& arch, const MultiChipOptions& o, MultiChipReport rep) {
  const int K = o.chips;
  if (batch < K)
    fail("rdu: data parallelism over ", K, " chips needs a batch of at least ", K, " (one sample per replica), got ", batch);
  // Replicas take ceil(N/K) or floor(N/K) samples; the step waits for the largest.
  const int64_t hi = ceil_div(batch, K), lo = batch / K, n_hi = batch % K == 0 ? K : batch % K;
  int64_t w = all_weights(lower_graph(graph, hi, o.map.precision));
  check_fits(w, arch, "each data-parallel replica", "; a pipeline or tensor split divides the weights over the chips");
  RduMapping m_hi = map_graph(graph, hi, arch, o.map);
  SimReport r_hi = simulate_timing(m_hi);
  ChipPlan p_hi = plan_from(m_hi, r_hi, ""), p_lo = p_hi;
  if (lo != hi) {
    RduMapping m_lo = map_graph(graph, lo, arch, o.map);
    p_lo = plan_from(m_lo, simulate_timing(m_lo), "");
    rep.notes.push_back("batch " + std::to_string(batch) + " over " + std::to_string(K) + " replicas: " + std::to_string(n_hi) +
                        " take " + std::to_string(hi) + " samples, the rest " + std::to_string(lo) + "; the step waits for the largest");
  }
  for (int i = 0; i < K; ++i) {
    rep.plans.push_back(i < n_hi ? p_hi : p_lo);
    rep.plans.back().role = "replica " + std::to_string(i);
    rep.step_cycles = std::max(rep.step_cycles, rep.plans.back().cycles);
    rep.flops += rep.plans.back().flops;
  }
  rep.steady_cycles = rep.latency_cycles = rep.step_cycles;
  rep.allreduce_bytes = w;
  rep.allreduce_cycles = ring_allreduce_cycles(w, K, arch.p2p);
  return rep;
}

// Bytes live across each section boundary c (made before section c, used at or after it):
// what a pipeline cut there sends to the next stage (values needed further on are forwarded).
std::vector<int64_t> live_bytes(const std::vector<Kernel>& kernels, const Partition& p) {
  const size_t n = p.sections.size();
  std::vector<int> last_use(kernels.size(), -1);
  for (size_t i = 0; i < kernels.size(); ++i) {
    if (kernels[i].costs_nothing()) continue;
    for (int prod : kernels[i].producers) {
      int src = resolve(kernels, prod);
      if (!kernels[src].costs_nothing()) last_use[src] = std::max(last_use[src], p.section_of[i]);
    }
  }
  std::vector<int64_t> live(n + 1, 0);
  for (size_t k = 0; k < kernels.size(); ++k)
    for (int c = p.section_of[k] + 1; c <= last_use[k]; ++c) live[c] += kernels[k].out_bytes;
  return live;
}

MultiChipReport pipeline_parallel(const Graph& graph, int64_t batch, const Arch& arch, const MultiChipOptions& o, MultiChipReport rep) {
  const int K = o.chips, M = o.microbatches;
  if (M < 1 || M > batch) fail("rdu: --microbatches ", M, " must be between 1 and the batch (", batch, ")");
  const int64_t mb = ceil_div(batch, M);
  if (batch % M) rep.notes.push_back("batch " + std::to_string(batch) + " in " + std::to_string(M) + " microbatches of " + std::to_string(mb) +
                                     " (the last padded, timed as full)");
  std::vector<Kernel> kernels = lower_graph(graph, mb, o.map.precision);
  // Sections do not depend on off-chip capacity; weights start in HBM and a stage whose weights
  // exceed its HBM moves them to DDR (the single-chip rule, applied per chip).
  Arch roomy = arch;
  roomy.hbm.capacity_bytes = roomy.ddr.capacity_bytes = std::numeric_limits<int64_t>::max() / 4;
  Partition raw = partition_kernels(kernels, roomy, o.map.precision, o.map.partition);
  const int n = static_cast<int>(raw.sections.size());
  rep.total_sections = n;
  if (n < K)
    fail("rdu: a pipeline over ", K, " chips needs at least ", K, " sections, but the model maps into ", n,
         " on chip '", arch.name, "' (use fewer chips, data or tensor parallelism, or --unfused)");
  struct Mapped {
    Section sec;
    SectionMapping sm;
    double cycles = 0;
  };
  auto map_one = [&](Section s, bool in_ddr) {
    if (in_ddr) {
      int64_t w = weights_of(kernels, s.kernels);
      s.hbm_read -= w;
      s.ddr_read += w;
    }
    Mapped m;
    m.sm = map_section(s, kernels, arch, o.map);
    m.cycles = time_section(kernels, s, m.sm, arch, o.map.precision).cycles;
    m.sec = std::move(s);
    return m;
  };
  std::vector<Mapped> hbm, ddr;
  std::vector<double> w(n + 1, 0), c_hbm(n + 1, 0), c_ddr(n + 1, 0);  // prefix sums
  for (int s = 0; s < n; ++s) {
    hbm.push_back(map_one(raw.sections[s], false));
    w[s + 1] = w[s] + weights_of(kernels, raw.sections[s].kernels);
    c_hbm[s + 1] = c_hbm[s] + hbm.back().cycles;
  }
  if (w[n] > arch.hbm.capacity_bytes)  // some stage may have to keep its weights in DDR
    for (int s = 0; s < n; ++s) {
      ddr.push_back(map_one(raw.sections[s], true));
      c_ddr[s + 1] = c_ddr[s] + ddr.back().cycles;
    }
  auto in_ddr = [&](int j, int i) { return w[i] - w[j] > arch.hbm.capacity_bytes; };
  auto stage_cost = [&](int j, int i) {
    if (w[i] - w[j] > offchip_capacity(arch)) return kInf;
    return in_ddr(j, i) ? c_ddr[i] - c_ddr[j] : c_hbm[i] - c_hbm[j];
  };
  std::vector<int64_t> live = live_bytes(kernels, raw);
  auto link = [&](int c) { return c > 0 && c < n ? p2p_transfer_cycles(live[c], arch.p2p) : 0.0; };

  // Contiguous cuts minimising the slowest stage or link (then the latency): dynamic
  // programming over (stages, sections covered).
  struct Best {
    double bottleneck = kInf, latency = kInf;
    int from = -1;
  };
  std::vector<std::vector<Best>> best(K + 1, std::vector<Best>(n + 1));
  best[0][0] = {0, 0, -1};
  for (int k = 1; k <= K; ++k)
    for (int i = k; i <= n; ++i)
      for (int j = k - 1; j < i; ++j) {
        const Best& prev = best[k - 1][j];
        double cost = stage_cost(j, i);
        if (prev.bottleneck == kInf || cost == kInf) continue;
        Best b{std::max({prev.bottleneck, link(j), cost}), prev.latency + link(j) + cost, j};
        Best& cur = best[k][i];
        if (b.bottleneck < cur.bottleneck || (b.bottleneck == cur.bottleneck && b.latency < cur.latency)) cur = b;
      }
  if (best[K][n].bottleneck == kInf)
    fail("rdu: a pipeline of ", K, " stages needs ", static_cast<int64_t>(w[n]), " bytes of weights in all, and no cut of its ", n,
         " sections keeps every stage's share within chip '", arch.name, "' (HBM ", arch.hbm.capacity_bytes, " + DDR ",
         arch.ddr.capacity_bytes, " bytes); use more chips or a tensor split");
  std::vector<int> cuts(K + 1, n);
  for (int k = K, i = n; k > 0; --k) cuts[k - 1] = i = best[k][i].from;

  double steady = 0;
  for (int k = 0; k < K; ++k) {
    const int j = cuts[k], i = cuts[k + 1];
    const bool ddr_stage = in_ddr(j, i);
    RduMapping sm;
    sm.arch = arch;
    sm.precision = o.map.precision;
    sm.batch = mb;
    sm.kernels = kernels;
    sm.partition.section_of = raw.section_of;
    sm.partition.weights_in_ddr = ddr_stage;
    for (int s = j; s < i; ++s) {
      const Mapped& mm = ddr_stage ? ddr[s] : hbm[s];
      sm.partition.sections.push_back(mm.sec);
      sm.sections.push_back(mm.sm);
    }
    ChipPlan p = plan_from(sm, simulate_timing(sm), "stage " + std::to_string(k));
    p.first_section = j;
    p.end_section = i;
    p.p2p_send_bytes = i < n ? live[i] : 0;
    p.p2p_cycles = link(i);
    steady = std::max({steady, p.cycles, p.p2p_cycles});
    rep.latency_cycles += p.cycles + p.p2p_cycles;
    rep.flops += M * p.flops;
    rep.p2p_bytes += M * p.p2p_send_bytes;
    rep.p2p_cycles += p.p2p_cycles;
    rep.plans.push_back(std::move(p));
  }
  // GPipe-style: the first microbatch crosses every stage, each further one leaves a bottleneck
  // interval later.
  rep.steady_cycles = M * steady;
  rep.step_cycles = rep.latency_cycles + (M - 1) * steady;
  rep.bubble_fraction = rep.step_cycles > 0 ? 1 - rep.steady_cycles / rep.step_cycles : 0;
  return rep;
}

MultiChipReport tensor_parallel(const Graph& graph, int64_t batch, const Arch& arch, const MultiChipOptions& o, MultiChipReport rep) {
  const int K = o.chips;
  std::vector<Kernel> kernels = lower_graph(graph, batch, o.map.precision);
  double gather_cycles = 0;
  int64_t gather_send = 0;  // per chip
  int split = 0;
  for (Kernel& k : kernels) {
    if (k.engine != Engine::kSystolic || (k.family != "gemm" && k.family != "conv") || K == 1) continue;
    // Each chip computes ceil(n/K) output columns with that share of the weights; the full
    // output is then all-gathered so every chip has it for the next layer.
    const int64_t n_full = k.n, n_part = ceil_div(n_full, K);
    const double f = static_cast<double>(n_part) / n_full;
    const double product = 2.0 * k.m * k.k * k.groups;
    const int64_t out_full = k.out_bytes;
    k.flops = product * n_part + (k.flops - product * n_full) * f;
    k.n = n_part;
    k.weight_bytes = static_cast<int64_t>(std::ceil(k.weight_bytes * f));
    k.out_bytes = static_cast<int64_t>(std::ceil(out_full * f));
    gather_cycles += ring_allgather_cycles(out_full, K, arch.p2p);
    gather_send += out_full * (K - 1) / K;  // rounded down: never more than the time charged carries
    ++split;
  }
  check_fits(all_weights(kernels), arch, "each tensor-parallel shard", "; use more chips");
  RduMapping m = map_kernels(std::move(kernels), batch, arch, o.map);
  ChipPlan p = plan_from(m, simulate_timing(m), "");
  p.p2p_send_bytes = gather_send;
  p.p2p_cycles = gather_cycles;
  for (int i = 0; i < K; ++i) {
    rep.plans.push_back(p);
    rep.plans.back().role = "shard " + std::to_string(i);
  }
  rep.flops = K * p.flops;
  rep.p2p_bytes = K * gather_send;
  rep.p2p_cycles = gather_cycles;
  rep.step_cycles = rep.steady_cycles = rep.latency_cycles = p.cycles + gather_cycles;
  if (K > 1)
    rep.notes.push_back(std::to_string(split) + " matmul/conv kernels split " + std::to_string(K) +
                        " ways by output column, each followed by an all-gather not overlapped with compute; other kernels run "
                        "whole on every chip");
  return rep;
}

}  // namespace

Parallel parse_parallel(const std::string& name) {
  if (name == "data") return Parallel::kData;
  if (name == "pipeline") return Parallel::kPipeline;
  if (name == "tensor") return Parallel::kTensor;
  fail("--parallel '", name, "': expected data, pipeline or tensor");
}

const char* parallel_name(Parallel p) {
  switch (p) {
    case Parallel::kData: return "data";
    case Parallel::kPipeline: return "pipeline";
    case Parallel::kTensor: return "tensor";
  }
  return "?";
}

double p2p_transfer_cycles(int64_t bytes, const P2pSpec& p2p) {
  return bytes > 0 ? static_cast<double>(bytes) / p2p.bw_Bpc + static_cast<double>(p2p.latency_cycles) : 0;
}

double ring_allreduce_cycles(int64_t bytes, int chips, const P2pSpec& p2p) {
  if (chips <= 1 || bytes <= 0) return 0;
  return 2.0 * (chips - 1) / chips * static_cast<double>(bytes) / p2p.bw_Bpc + 2.0 * (chips - 1) * p2p.latency_cycles;
}

double ring_allgather_cycles(int64_t bytes, int chips, const P2pSpec& p2p) {
  if (chips <= 1 || bytes <= 0) return 0;
  return static_cast<double>(chips - 1) / chips * static_cast<double>(bytes) / p2p.bw_Bpc + static_cast<double>(chips - 1) * p2p.latency_cycles;
}

MultiChipReport simulate_multichip(const Graph& graph, int64_t batch, const Arch& arch, const MultiChipOptions& o) {
  const int K = o.chips;
  if (K < 1) fail("rdu: --chips ", K, " must be at least 1");
  if (K > arch.p2p.sockets)
    fail("rdu: --chips ", K, ": chip '", arch.name, "' has p2p.sockets = ", arch.p2p.sockets,
         " (chips linked in one node); more than one node is not modelled");
  if (K > 1 && !(arch.p2p.bw_Bpc > 0)) fail("rdu: --chips ", K, ": chip '", arch.name, "' has no chip-to-chip links (p2p.bw_Bpc = 0)");
  if (batch < 1) fail("rdu: batch ", batch, " must be at least 1");
  MultiChipReport rep;
  rep.parallel = o.parallel;
  rep.chips = K;
  rep.batch = batch;
  rep.microbatches = o.parallel == Parallel::kPipeline ? o.microbatches : 1;
  rep.clock_ghz = arch.clock_ghz;
  switch (o.parallel) {
    case Parallel::kData: rep = data_parallel(graph, batch, arch, o, std::move(rep)); break;
    case Parallel::kPipeline: rep = pipeline_parallel(graph, batch, arch, o, std::move(rep)); break;
    case Parallel::kTensor: rep = tensor_parallel(graph, batch, arch, o, std::move(rep)); break;
  }
  rep.problems = validate_multichip(rep, arch);
  return rep;
}

}  // namespace tessera::rdu
