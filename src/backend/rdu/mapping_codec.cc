#include "backend/rdu/mapping_codec.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "backend/rdu/validator.h"
#include "runtime/byte_io.h"

namespace tessera::rdu {
namespace {

using artifact_io::Reader;
using artifact_io::Writer;

constexpr char kMagic[] = "tessera-rdu-mapping";
// Units and route cells a decoder accepts per section: far above any preset (sn40l_like has
// 2,080 units), low enough that a corrupt count cannot exhaust memory.
constexpr uint64_t kMaxUnits = 1 << 22;

void f64(Writer& w, double v) { w.put(&v, 8); }
double f64(Reader& r, const char* field, double lo = 0, double hi = 1e300) {
  double v;
  std::memcpy(&v, r.take(8, field), 8);
  if (!std::isfinite(v) || v < lo || v > hi) r.bad(field, str_cat("value ", v, " is outside [", lo, ", ", hi, "]"));
  return v;
}
int64_t i64(Reader& r, const char* field, int64_t lo, int64_t hi) {
  int64_t v = r.i64();
  if (v < lo || v > hi) r.bad(field, str_cat("value ", v, " is outside [", lo, ", ", hi, "]"));
  return v;
}
int index(Reader& r, const char* field, size_t size) {
  return static_cast<int>(i64(r, field, 0, static_cast<int64_t>(size) - 1));
}

void ints(Writer& w, const std::vector<int>& v) {
  w.u64(v.size());
  for (int x : v) w.i64(x);
}

// Identifies the kernel list: a stored mapping only fits the graph it was made from.
uint64_t fingerprint(const std::vector<Kernel>& kernels) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  };
  for (const Kernel& k : kernels) {
    mix(k.name.data(), k.name.size());
    mix(k.op.data(), k.op.size());
    for (int64_t v : {k.m, k.k, k.n, k.groups, k.elems, k.ops, k.pmu_bytes, k.weight_bytes, k.act_in_bytes, k.out_bytes,
                      static_cast<int64_t>(k.engine)})
      mix(&v, 8);
  }
  return h;
}

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

std::string arch_to_json(const Arch& a) {
  auto tier = [](const MemTier& t) {
    return str_cat("{\"capacity_bytes\": ", t.capacity_bytes, ", \"bw_Bpc\": ", num(t.bw_Bpc), ", \"efficiency\": ",
                   num(t.efficiency), ", \"latency_cycles\": ", t.latency_cycles, "}");
  };
  std::string name;
  for (char c : a.name) {
    if (c == '"' || c == '\\') name += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) name += c;
  }
  return str_cat(
      "{\"name\": \"", name, "\", \"clock_ghz\": ", num(a.clock_ghz), ", \"pcu\": {\"count\": ", a.pcu.count,
      ", \"lanes\": ", a.pcu.lanes, ", \"stages\": ", a.pcu.stages, ", \"bf16_flop_per_cycle\": ", num(a.pcu.bf16_flop_per_cycle),
      ", \"fp32_flop_per_cycle\": ", num(a.pcu.fp32_flop_per_cycle), ", \"pipeline_latency_cycles\": ", a.pcu.pipeline_latency_cycles,
      ", \"reduction_tree\": ", a.pcu.reduction_tree ? "true" : "false", "}, \"pmu\": {\"count\": ", a.pmu.count,
      ", \"capacity_bytes\": ", a.pmu.capacity_bytes, ", \"banks\": ", a.pmu.banks, ", \"addr_per_cycle\": ", a.pmu.addr_per_cycle,
      ", \"read_Bpc\": ", num(a.pmu.read_Bpc), ", \"write_Bpc\": ", num(a.pmu.write_Bpc), "}, \"mesh\": {\"rows\": ", a.mesh.rows,
      ", \"cols\": ", a.mesh.cols, ", \"vector_link_Bpc\": ", num(a.mesh.vector_link_Bpc), ", \"scalar_link_Bpc\": ",
      num(a.mesh.scalar_link_Bpc), ", \"hop_latency_cycles\": ", a.mesh.hop_latency_cycles, "}, \"agcu\": {\"count\": ", a.agcu.count,
      ", \"max_outstanding_reqs\": ", a.agcu.max_outstanding_reqs, "}, \"hbm\": ", tier(a.hbm), ", \"ddr\": ", tier(a.ddr),
      ", \"p2p\": {\"sockets\": ", a.p2p.sockets, ", \"bw_Bpc\": ", num(a.p2p.bw_Bpc), ", \"latency_cycles\": ", a.p2p.latency_cycles,
      "}, \"reconfig\": {\"section_switch_cycles\": ", a.reconfig.section_switch_cycles, ", \"kernel_call_sync_cycles\": ",
      a.reconfig.kernel_call_sync_cycles, "}, \"sim\": {\"tiles_per_section\": ", a.sim.tiles_per_section,
      ", \"buffer_tiles\": ", a.sim.buffer_tiles, "}}");
}

bool same_arch(const Arch& a, const Arch& b) { return arch_to_json(a) == arch_to_json(b); }

std::string encode_mapping(const RduMapping& m, const MapOptions& o, const SimReport& timing) {
  Writer w;
  w.str(kMagic);
  w.u32(kMappingCodecVersion);
  w.str(arch_to_json(m.arch));
  w.u8(m.precision.bf16 ? 1 : 0);
  w.i64(m.batch);
  w.u8(o.partition.fused ? 1 : 0);
  w.u8(o.placement.naive ? 1 : 0);
  w.u8(o.placement.anneal ? 1 : 0);
  w.i64(o.placement.iterations);
  w.u64(o.placement.seed);
  w.u64(m.kernels.size());
  w.u64(fingerprint(m.kernels));
  for (double v : {m.compile_seconds, m.placement_seconds, m.placement_cost, m.placement_lower_bound}) f64(w, v);
  w.u64(m.sections.size());
  for (size_t s = 0; s < m.sections.size(); ++s) {
    const Section& sec = m.partition.sections[s];
    const SectionMapping& sm = m.sections[s];
    ints(w, sec.kernels);
    ints(w, sec.pcus);
    ints(w, sec.pmus);
    w.u64(sm.unit_cell.size());
    for (size_t u = 0; u < sm.unit_cell.size(); ++u) {
      w.i64(sm.unit_cell[u]);
      w.u8(sm.unit_is_pcu[u] ? 1 : 0);
    }
    for (size_t j = 0; j < sec.kernels.size(); ++j) {
      ints(w, sm.pcu_units[j]);
      ints(w, sm.pmu_units[j]);
    }
    w.u64(sm.streams.size());
    for (size_t i = 0; i < sm.streams.size(); ++i) {
      const Stream& st = sm.streams[i];
      w.i64(st.src_unit);
      w.i64(st.dst_unit);
      w.i64(st.dst_slot);
      w.i64(st.bytes);
      ints(w, sm.routes[i]);
    }
    for (double v : {sm.cost, sm.lower_bound, sm.search_seconds}) f64(w, v);
    w.i64(sm.anneal_moves_accepted);
  }
  // Timing summary.
  for (double v : {timing.cycles, timing.seconds, timing.flops, timing.pcu_utilisation}) f64(w, v);
  w.i64(timing.hbm_bytes);
  w.i64(timing.ddr_bytes);
  w.u64(timing.sections.size());
  for (const SectionTiming& st : timing.sections) {
    f64(w, st.cycles);
    w.str(st.bottleneck);
  }
  return std::move(w.bytes());
}

namespace {

StoredMapping decode(std::string_view bytes, const Graph& graph, const std::string& what) {
  Reader r(bytes.data(), bytes.size(), what);
  if (r.str("magic") != kMagic) r.bad("magic", "not an rdu mapping");
  uint32_t version = r.u32();
  if (version != kMappingCodecVersion)
    r.bad("version", str_cat("rdu mapping format ", version, ", this Tessera reads ", kMappingCodecVersion,
                             "; recompile with 'tessera compile --target rdu --chip C --batch N'"));
  StoredMapping out;
  RduMapping& m = out.mapping;
  std::string arch_json = r.str("chip");
  try {
    m.arch = parse_arch(arch_json, what + " chip");
  } catch (const Error& e) {
    r.bad("chip", e.what());
  }
  m.precision.bf16 = r.u8() != 0;
  out.options.precision = m.precision;
  m.batch = i64(r, "batch", 1, int64_t{1} << 40);
  out.options.partition.fused = r.u8() != 0;
  out.options.placement.naive = r.u8() != 0;
  out.options.placement.anneal = r.u8() != 0;
  out.options.placement.iterations = static_cast<int>(i64(r, "iterations", 0, 1 << 30));
  out.options.placement.seed = r.u64();

  uint64_t n_kernels = r.u64();
  uint64_t print = r.u64();
  m.kernels = lower_graph(graph, m.batch, m.precision);
  if (n_kernels != m.kernels.size() || print != fingerprint(m.kernels))
    r.bad("kernels", str_cat("the mapping was made for another graph (", n_kernels, " kernels; this graph lowers to ",
                             m.kernels.size(), " at batch ", m.batch, ")"));
  m.compile_seconds = f64(r, "compile_seconds");
  m.placement_seconds = f64(r, "placement_seconds");
  m.placement_cost = f64(r, "placement_cost");
  m.placement_lower_bound = f64(r, "placement_lower_bound");

  // Membership and traffic come from the partitioner; the stored sections must agree.
  m.partition = partition_kernels(m.kernels, m.arch, m.precision, out.options.partition);
  uint64_t n_sections = r.count("section count", 24, 1 << 24);
  if (n_sections != m.partition.sections.size())
    r.bad("section count", str_cat(n_sections, " sections, the partitioner makes ", m.partition.sections.size()));
  auto read_ints = [&](const char* field, size_t expected, int64_t lo, int64_t hi) {
    uint64_t n = r.count(field, 8, kMaxUnits);
    if (expected != SIZE_MAX && n != expected) r.bad(field, str_cat(n, " entries, expected ", expected));
    std::vector<int> v(n);
    for (auto& x : v) x = static_cast<int>(i64(r, field, lo, hi));
    return v;
  };
  const int64_t cells = static_cast<int64_t>(m.arch.mesh.rows) * m.arch.mesh.cols;
  for (size_t s = 0; s < n_sections; ++s) {
    Section& sec = m.partition.sections[s];
    std::vector<int> members = read_ints("section kernels", SIZE_MAX, 0, static_cast<int64_t>(m.kernels.size()) - 1);
    if (members != sec.kernels) r.bad("section kernels", str_cat("section ", s, " holds other kernels than the partitioner's"));
    const size_t slots = sec.kernels.size();
    sec.pcus = read_ints("section pcus", slots, 0, m.arch.pcu.count);
    std::vector<int> min_pmus = sec.pmus;
    sec.pmus = read_ints("section pmus", slots, 0, m.arch.pmu.count);
    // The mapper only adds units to the partitioner's minimum; fewer would divide by zero.
    for (size_t j = 0; j < slots; ++j)
      if (sec.pmus[j] < min_pmus[j] || (useful_pcus(m.kernels[sec.kernels[j]], m.arch) > 0 && sec.pcus[j] < 1))
        r.bad("section units", str_cat("section ", s, " kernel '", m.kernels[sec.kernels[j]].name, "' gets ", sec.pcus[j],
                                       " PCUs and ", sec.pmus[j], " PMUs, below what it needs"));
    SectionMapping sm;
    uint64_t units = r.count("unit count", 9, kMaxUnits);
    sm.unit_cell.resize(units);
    sm.unit_is_pcu.resize(units);
    for (uint64_t u = 0; u < units; ++u) {
      sm.unit_cell[u] = index(r, "unit cell", static_cast<size_t>(cells));
      sm.unit_is_pcu[u] = r.u8() != 0;
    }
    for (size_t j = 0; j < slots; ++j) {
      sm.pcu_units.push_back(read_ints("kernel pcu units", SIZE_MAX, 0, static_cast<int64_t>(units) - 1));
      sm.pmu_units.push_back(read_ints("kernel pmu units", SIZE_MAX, 0, static_cast<int64_t>(units) - 1));
    }
    uint64_t n_streams = r.count("stream count", 40, kMaxUnits);
    for (uint64_t i = 0; i < n_streams; ++i) {
      Stream st;
      st.src_unit = index(r, "stream source", units);
      st.dst_unit = index(r, "stream destination", units);
      st.dst_slot = index(r, "stream slot", slots);
      st.bytes = i64(r, "stream bytes", 0, int64_t{1} << 60);
      sm.streams.push_back(st);
      sm.routes.push_back(read_ints("route", SIZE_MAX, 0, cells - 1));
    }
    sm.cost = f64(r, "cost");
    sm.lower_bound = f64(r, "lower bound");
    sm.search_seconds = f64(r, "search seconds");
    sm.anneal_moves_accepted = static_cast<int>(i64(r, "anneal moves", 0, INT32_MAX));
    m.sections.push_back(std::move(sm));
  }
  SimReport& t = out.timing;
  t.cycles = f64(r, "cycles");
  t.seconds = f64(r, "seconds");
  t.flops = f64(r, "flops");
  t.pcu_utilisation = f64(r, "pcu utilisation", 0, 1);
  t.hbm_bytes = i64(r, "hbm bytes", 0, INT64_MAX);
  t.ddr_bytes = i64(r, "ddr bytes", 0, INT64_MAX);
  t.peak_flop_per_cycle = m.arch.peak_flop_per_cycle(m.precision.bf16);
  uint64_t n_timed = r.count("timed sections", 16, 1 << 24);
  if (n_timed != n_sections) r.bad("timed sections", str_cat(n_timed, " timed sections for ", n_sections, " sections"));
  for (uint64_t s = 0; s < n_timed; ++s) {
    SectionTiming st;
    st.cycles = f64(r, "section cycles");
    st.bottleneck = r.str("bottleneck");
    t.sections.push_back(std::move(st));
  }
  if (r.remaining()) r.bad("end", str_cat(r.remaining(), " unexpected trailing bytes"));

  // Structure is in bounds; now the mapping itself must be valid on its chip.
  std::vector<std::string> problems = validate_mapping(m);
  if (problems.empty()) {
    SimReport now = simulate_timing(m);
    problems = validate_mapping(m, &now);
  }
  if (!problems.empty())
    fail_code(ErrorCode::kDataLoss, what, ": the stored rdu mapping fails the validator (", problems.size(),
              " problem(s)): ", problems.front());
  return out;
}

}  // namespace

StoredMapping decode_mapping(std::string_view bytes, const Graph& graph, const std::string& what) {
  try {
    return decode(bytes, graph, what);
  } catch (const Error& e) {
    // A chip or partition the stored bytes make impossible is still a corrupt section.
    if (e.code() == ErrorCode::kDataLoss) throw;
    fail_code(ErrorCode::kDataLoss, what, ": ", e.what());
  }
}

}  // namespace tessera::rdu
