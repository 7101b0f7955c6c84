#include "backend/rdu/validator.h"

#include <map>
#include <sstream>

namespace tessera::rdu {
namespace {

template <typename... Args>
std::string msg(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace

std::vector<std::string> validate_mapping(const RduMapping& mp, const SimReport* timing) {
  std::vector<std::string> bad;
  const Arch& a = mp.arch;
  const int rows = a.mesh.rows, cols = a.mesh.cols;
  auto in_grid = [&](int cell) { return cell >= 0 && cell < rows * cols; };
  for (size_t s = 0; s < mp.sections.size(); ++s) {
    const Section& sec = mp.partition.sections[s];
    const SectionMapping& sm = mp.sections[s];
    std::map<int, std::string> owner;  // cell -> kernel using it
    for (size_t j = 0; j < sec.kernels.size(); ++j) {
      const std::string& name = mp.kernels[sec.kernels[j]].name;
      for (int pass = 0; pass < 2; ++pass) {
        bool pcu = pass == 0;
        const std::vector<int>& units = pcu ? sm.pcu_units[j] : sm.pmu_units[j];
        if (static_cast<int>(units.size()) != (pcu ? sec.pcus[j] : sec.pmus[j]))
          bad.push_back(msg("unit: section ", s, " kernel '", name, "' has ", units.size(), pcu ? " PCUs" : " PMUs",
                            ", its allocation says ", pcu ? sec.pcus[j] : sec.pmus[j]));
        for (int u : units) {
          int cell = u >= 0 && u < static_cast<int>(sm.unit_cell.size()) ? sm.unit_cell[u] : -1;
          if (!in_grid(cell)) {
            bad.push_back(msg("unit: section ", s, " kernel '", name, "' uses a unit outside the grid"));
            continue;
          }
          if (a.is_pcu_cell(cell / cols, cell % cols) != pcu)
            bad.push_back(msg("unit: section ", s, " kernel '", name, "' uses cell (", cell / cols, ",", cell % cols,
                              ") as a ", pcu ? "PCU" : "PMU", " but it is not one"));
          auto [it, fresh] = owner.emplace(cell, name);
          if (!fresh)
            bad.push_back(msg("double-booked: section ", s, " cell (", cell / cols, ",", cell % cols, ") used by '",
                              it->second, "' and '", name, "'"));
        }
      }
      if (sec.sram[j] > static_cast<int64_t>(sm.pmu_units[j].size()) * a.pmu.capacity_bytes)
        bad.push_back(msg("sram: section ", s, " kernel '", name, "' keeps ", sec.sram[j], " bytes in ",
                          sm.pmu_units[j].size(), " PMUs of ", a.pmu.capacity_bytes, " bytes"));
    }
    if (sm.routes.size() != sm.streams.size())
      bad.push_back(msg("route: section ", s, " has ", sm.streams.size(), " streams but ", sm.routes.size(), " routes"));
    std::map<std::pair<int, int>, double> load;
    for (size_t i = 0; i < std::min(sm.routes.size(), sm.streams.size()); ++i) {
      const std::vector<int>& r = sm.routes[i];
      const Stream& st = sm.streams[i];
      if (r.empty() || r.front() != sm.unit_cell[st.src_unit] || r.back() != sm.unit_cell[st.dst_unit]) {
        bad.push_back(msg("route: section ", s, " stream ", i, " does not run from its source to its destination"));
        continue;
      }
      for (size_t h = 1; h < r.size(); ++h) {
        int d = std::abs(r[h] / cols - r[h - 1] / cols) + std::abs(r[h] % cols - r[h - 1] % cols);
        if (!in_grid(r[h]) || d != 1) {
          bad.push_back(msg("route: section ", s, " stream ", i, " jumps from cell ", r[h - 1], " to ", r[h]));
          break;
        }
        load[{r[h - 1], r[h]}] += static_cast<double>(st.bytes);
      }
    }
    if (timing && s < timing->sections.size() && timing->sections[s].pipeline_cycles > 0) {
      double capacity = timing->sections[s].pipeline_cycles * a.mesh.vector_link_Bpc;
      for (const auto& [link, bytes] : load)
        if (bytes > capacity * (1 + 1e-9))
          bad.push_back(msg("link: section ", s, " link ", link.first, "->", link.second, " carries ", bytes,
                            " bytes in ", timing->sections[s].pipeline_cycles, " cycles: ", 100 * bytes / capacity, "% of its bandwidth"));
    }
  }
  return bad;
}

}  // namespace tessera::rdu
