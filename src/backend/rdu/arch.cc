#include "backend/rdu/arch.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "support/error.h"
#include "support/file.h"

namespace tessera::rdu {
namespace {

using Obj = rapidjson::Value;

// Reads one JSON object, remembering which keys were used so unknown (misspelt) keys are
// rejected; keys starting with '_' are comments.
class Reader {
 public:
  Reader(const Obj& obj, std::string path, const std::string& what) : obj_(obj), path_(std::move(path)), what_(what) {
    if (!obj.IsObject()) fail(what_, ": '", path_, "' must be an object");
  }
  ~Reader() noexcept(false) {
    if (std::uncaught_exceptions()) return;
    for (auto it = obj_.MemberBegin(); it != obj_.MemberEnd(); ++it) {
      std::string k = it->name.GetString();
      if (!k.empty() && k[0] != '_' && !used_.count(k)) fail(what_, ": unknown field '", field(k), "'");
    }
  }
  double num(const std::string& k, double lo, double hi, std::optional<double> dflt = std::nullopt) {
    used_.insert(k);
    auto it = obj_.FindMember(k.c_str());
    if (it == obj_.MemberEnd()) {
      if (dflt) return *dflt;
      fail(what_, ": missing field '", field(k), "'");
    }
    if (!it->value.IsNumber()) fail(what_, ": field '", field(k), "' must be a number");
    double v = it->value.GetDouble();
    if (!(v >= lo && v <= hi)) fail(what_, ": field '", field(k), "' = ", v, " is outside [", lo, ", ", hi, "]");
    return v;
  }
  int integer(const std::string& k, int lo, int hi, std::optional<int> dflt = std::nullopt) {
    double v = num(k, lo, hi, dflt);
    if (v != std::floor(v)) fail(what_, ": field '", field(k), "' must be an integer");
    return static_cast<int>(v);
  }
  int64_t int64(const std::string& k, double lo, double hi, std::optional<double> dflt = std::nullopt) {
    double v = num(k, lo, hi, dflt);
    if (v != std::floor(v)) fail(what_, ": field '", field(k), "' must be an integer");
    return static_cast<int64_t>(v);
  }
  bool boolean(const std::string& k, bool dflt) {
    used_.insert(k);
    auto it = obj_.FindMember(k.c_str());
    if (it == obj_.MemberEnd()) return dflt;
    if (!it->value.IsBool()) fail(what_, ": field '", field(k), "' must be true or false");
    return it->value.GetBool();
  }
  std::string str(const std::string& k, const std::string& dflt) {
    used_.insert(k);
    auto it = obj_.FindMember(k.c_str());
    if (it == obj_.MemberEnd()) return dflt;
    if (!it->value.IsString()) fail(what_, ": field '", field(k), "' must be a string");
    return it->value.GetString();
  }
  Reader sub(const std::string& k, bool optional = false) {
    used_.insert(k);
    auto it = obj_.FindMember(k.c_str());
    if (it == obj_.MemberEnd()) {
      if (optional) return Reader(empty(), field(k), what_);
      fail(what_, ": missing object '", field(k), "'");
    }
    return Reader(it->value, field(k), what_);
  }

 private:
  static const Obj& empty() {
    static rapidjson::Document d = [] {
      rapidjson::Document x;
      x.SetObject();
      return x;
    }();
    return d;
  }
  std::string field(const std::string& k) const { return path_.empty() ? k : path_ + "." + k; }
  const Obj& obj_;
  std::string path_;
  const std::string& what_;
  std::set<std::string> used_;
};

constexpr double kBig = 1e18;

MemTier tier(Reader r, const std::string& name) {
  MemTier t;
  t.name = name;
  t.capacity_bytes = r.int64("capacity_bytes", 1, kBig);
  t.bw_Bpc = r.num("bw_Bpc", 1e-6, 1e9);
  t.efficiency = r.num("efficiency", 0.01, 1.0, 1.0);
  t.latency_cycles = r.int64("latency_cycles", 0, 1e9);
  return t;
}

}  // namespace

void Arch::validate() const {
  TS_CHECK(mesh.rows * mesh.cols >= pcu.count + pmu.count, "rdu chip '", name, "': grid ", mesh.rows, "x", mesh.cols,
           " has fewer cells than pcu.count + pmu.count = ", pcu.count + pmu.count);
  int pcu_cells = (mesh.rows * mesh.cols + 1) / 2, pmu_cells = mesh.rows * mesh.cols / 2;
  if (pcu.count > pcu_cells) fail("rdu chip '", name, "': pcu.count ", pcu.count, " exceeds the ", pcu_cells, " PCU cells of the checkerboard grid");
  if (pmu.count > pmu_cells) fail("rdu chip '", name, "': pmu.count ", pmu.count, " exceeds the ", pmu_cells, " PMU cells of the checkerboard grid");
  if (pcu.bf16_flop_per_cycle > 2.0 * pcu.lanes * pcu.stages + 1e-9)
    fail("rdu chip '", name, "': pcu.bf16_flop_per_cycle ", pcu.bf16_flop_per_cycle, " exceeds 2 * lanes * stages");
}

Arch parse_arch(const std::string& json, const std::string& what) {
  rapidjson::Document doc;
  doc.Parse(json.c_str(), json.size());
  if (doc.HasParseError())
    fail(what, ": invalid JSON at offset ", doc.GetErrorOffset(), ": ", rapidjson::GetParseError_En(doc.GetParseError()));
  Arch a;
  {
    Reader r(doc, "", what);
    a.name = r.str("name", "custom");
    a.clock_ghz = r.num("clock_ghz", 1e-3, 100);
    {
      Reader p = r.sub("pcu");
      a.pcu.count = p.integer("count", 1, 1 << 20);
      a.pcu.lanes = p.integer("lanes", 1, 4096);
      a.pcu.stages = p.integer("stages", 1, 4096);
      a.pcu.bf16_flop_per_cycle = p.num("bf16_flop_per_cycle", 1e-3, 1e7, 2.0 * a.pcu.lanes * a.pcu.stages);
      a.pcu.fp32_flop_per_cycle = p.num("fp32_flop_per_cycle", 1e-3, 1e7, a.pcu.bf16_flop_per_cycle / 2);
      a.pcu.pipeline_latency_cycles = p.integer("pipeline_latency_cycles", 0, 1 << 20);
      a.pcu.reduction_tree = p.boolean("reduction_tree", true);
    }
    {
      Reader p = r.sub("pmu");
      a.pmu.count = p.integer("count", 1, 1 << 20);
      a.pmu.capacity_bytes = p.int64("capacity_bytes", 64, 1e12);
      a.pmu.banks = p.integer("banks", 1, 1024);
      a.pmu.addr_per_cycle = p.integer("addr_per_cycle", 1, 1024);
      a.pmu.read_Bpc = p.num("read_Bpc", 1e-3, 1e6);
      a.pmu.write_Bpc = p.num("write_Bpc", 1e-3, 1e6);
    }
    {
      Reader m = r.sub("mesh");
      a.mesh.rows = m.integer("rows", 1, 1 << 15);
      a.mesh.cols = m.integer("cols", 1, 1 << 15);
      a.mesh.vector_link_Bpc = m.num("vector_link_Bpc", 1e-3, 1e6);
      a.mesh.scalar_link_Bpc = m.num("scalar_link_Bpc", 1e-3, 1e6);
      a.mesh.hop_latency_cycles = m.integer("hop_latency_cycles", 0, 1 << 20);
    }
    {
      Reader g = r.sub("agcu");
      a.agcu.count = g.integer("count", 1, 1 << 16);
      a.agcu.max_outstanding_reqs = g.integer("max_outstanding_reqs", 1, 1 << 20);
    }
    a.hbm = tier(r.sub("hbm"), "hbm");
    a.ddr = tier(r.sub("ddr"), "ddr");
    {
      Reader p = r.sub("p2p", true);
      a.p2p.sockets = p.integer("sockets", 1, 1 << 16, 1);
      a.p2p.bw_Bpc = p.num("bw_Bpc", 0, 1e9, 0);
      a.p2p.latency_cycles = p.int64("latency_cycles", 0, 1e12, 0);
    }
    {
      Reader p = r.sub("reconfig");
      a.reconfig.section_switch_cycles = p.int64("section_switch_cycles", 0, 1e12);
      a.reconfig.kernel_call_sync_cycles = p.int64("kernel_call_sync_cycles", 0, 1e12, 0);
    }
    {
      Reader p = r.sub("sim", true);
      a.sim.tiles_per_section = p.integer("tiles_per_section", 1, 1 << 20, 32);
      a.sim.buffer_tiles = p.integer("buffer_tiles", 1, 1 << 20, 2);
    }
  }
  with_context(what, [&] { a.validate(); });
  return a;
}

namespace {

// field -> (setter, minimum): the numeric fields a sweep may vary.
struct Param {
  double min;
  std::function<void(Arch&, double)> set;
};

const std::map<std::string, Param>& param_table() {
  static const std::map<std::string, Param> table = {
      {"clock_ghz", {1e-3, [](Arch& a, double v) { a.clock_ghz = v; }}},
      {"pcu.count", {1, [](Arch& a, double v) { a.pcu.count = static_cast<int>(v); }}},
      {"pcu.lanes", {1, [](Arch& a, double v) { a.pcu.lanes = static_cast<int>(v); a.pcu.bf16_flop_per_cycle = 2.0 * a.pcu.lanes * a.pcu.stages; a.pcu.fp32_flop_per_cycle = a.pcu.bf16_flop_per_cycle / 2; }}},
      {"pcu.stages", {1, [](Arch& a, double v) { a.pcu.stages = static_cast<int>(v); a.pcu.bf16_flop_per_cycle = 2.0 * a.pcu.lanes * a.pcu.stages; a.pcu.fp32_flop_per_cycle = a.pcu.bf16_flop_per_cycle / 2; }}},
      {"pmu.count", {1, [](Arch& a, double v) { a.pmu.count = static_cast<int>(v); }}},
      {"pmu.capacity_bytes", {64, [](Arch& a, double v) { a.pmu.capacity_bytes = static_cast<int64_t>(v); }}},
      {"pmu.write_Bpc", {1e-3, [](Arch& a, double v) { a.pmu.write_Bpc = v; }}},
      {"mesh.vector_link_Bpc", {1e-3, [](Arch& a, double v) { a.mesh.vector_link_Bpc = v; }}},
      {"hbm.bw_Bpc", {1e-6, [](Arch& a, double v) { a.hbm.bw_Bpc = v; }}},
      {"ddr.bw_Bpc", {1e-6, [](Arch& a, double v) { a.ddr.bw_Bpc = v; }}},
      {"reconfig.section_switch_cycles", {0, [](Arch& a, double v) { a.reconfig.section_switch_cycles = static_cast<int64_t>(v); }}},
      {"p2p.bw_Bpc", {1e-6, [](Arch& a, double v) { a.p2p.bw_Bpc = v; }}},
      {"p2p.latency_cycles", {0, [](Arch& a, double v) { a.p2p.latency_cycles = static_cast<int64_t>(v); }}},
      {"sim.tiles_per_section", {1, [](Arch& a, double v) { a.sim.tiles_per_section = static_cast<int>(v); }}},
  };
  return table;
}

}  // namespace

const std::vector<std::string>& arch_params() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [k, p] : param_table()) out.push_back(k);
    return out;
  }();
  return names;
}

void set_arch_param(Arch& arch, const std::string& field, double value) {
  auto it = param_table().find(field);
  if (it == param_table().end()) {
    std::string known;
    for (const auto& n : arch_params()) known += (known.empty() ? "" : ", ") + n;
    fail("rdu chip: '", field, "' cannot be swept (one of: ", known, ")");
  }
  if (!(value >= it->second.min)) fail("rdu chip: ", field, " = ", value, " must be >= ", it->second.min);
  it->second.set(arch, value);
  with_context("rdu chip with " + field + " = " + std::to_string(value), [&] { arch.validate(); });
}

std::string preset_dir() {
  if (const char* env = std::getenv("TESSERA_RDU_CONFIG_DIR")) return env;
#ifdef TESSERA_SOURCE_DIR_RDU
  return std::string(TESSERA_SOURCE_DIR_RDU) + "/configs/rdu";
#else
  return "configs/rdu";
#endif
}

Arch load_arch(const std::string& name_or_path) {
  std::string path = name_or_path;
  bool is_file = name_or_path.find('/') != std::string::npos ||
                 (name_or_path.size() > 5 && name_or_path.substr(name_or_path.size() - 5) == ".json");
  if (!is_file) {
    path = preset_dir() + "/" + name_or_path + ".json";
    if (!std::filesystem::exists(path))
      fail("unknown rdu chip '", name_or_path, "': not a preset in ", preset_dir(), " (tiny, small, sn40l_like) or a .json file");
  }
  return parse_arch(read_file(path), path);
}

}  // namespace tessera::rdu
