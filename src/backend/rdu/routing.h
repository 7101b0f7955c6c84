// Dimension-ordered (X then Y) routing of a section's streams on the vector plane of the
// mesh, and the resulting load on each directed link.
#pragma once
#include <map>
#include <vector>

#include "backend/rdu/placement.h"

namespace tessera::rdu {

// A directed link between two adjacent cells.
struct Link {
  int from = 0, to = 0;
  bool operator<(const Link& o) const { return from != o.from ? from < o.from : to < o.to; }
};

// Fills m.routes: column moves first, then row moves; each route lists every cell visited.
void route_streams(SectionMapping& m, const Arch& arch);

// Bytes each directed link carries per run of the section, from the routes.
std::map<Link, int64_t> link_loads(const SectionMapping& m);

// Bytes a stream's consumer slot receives over its busiest link (per section run), per slot.
std::vector<int64_t> busiest_input_link_bytes(const SectionMapping& m, int slots);

}  // namespace tessera::rdu
