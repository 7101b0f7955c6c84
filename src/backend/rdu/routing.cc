#include "backend/rdu/routing.h"

#include <algorithm>

namespace tessera::rdu {

void route_streams(SectionMapping& m, const Arch& arch) {
  const int cols = arch.mesh.cols;
  m.routes.clear();
  m.routes.reserve(m.streams.size());
  for (const Stream& s : m.streams) {
    int r = m.unit_cell[s.src_unit] / cols, c = m.unit_cell[s.src_unit] % cols;
    int tr = m.unit_cell[s.dst_unit] / cols, tc = m.unit_cell[s.dst_unit] % cols;
    std::vector<int> path{r * cols + c};
    while (c != tc) c += c < tc ? 1 : -1, path.push_back(r * cols + c);
    while (r != tr) r += r < tr ? 1 : -1, path.push_back(r * cols + c);
    m.routes.push_back(std::move(path));
  }
}

std::map<Link, int64_t> link_loads(const SectionMapping& m) {
  std::map<Link, int64_t> load;
  for (size_t s = 0; s < m.routes.size(); ++s)
    for (size_t i = 1; i < m.routes[s].size(); ++i) load[{m.routes[s][i - 1], m.routes[s][i]}] += m.streams[s].bytes;
  return load;
}

std::vector<int64_t> busiest_input_link_bytes(const SectionMapping& m, int slots) {
  std::map<Link, int64_t> load = link_loads(m);
  std::vector<int64_t> out(slots, 0);
  for (size_t s = 0; s < m.routes.size(); ++s)
    for (size_t i = 1; i < m.routes[s].size(); ++i)
      out[m.streams[s].dst_slot] = std::max(out[m.streams[s].dst_slot], load[{m.routes[s][i - 1], m.routes[s][i]}]);
  return out;
}

}  // namespace tessera::rdu
