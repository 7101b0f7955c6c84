// Checks a finished mapping against the chip, independently of how the placer built it:
// every unit sits on a cell of its type inside the grid and is booked once per section; each
// kernel has the units its section allots; resident SRAM (double buffers included) fits the
// kernel's PMUs; routes start and end at their stream's units and step between adjacent
// cells only; given a timing, no link carries more than its bandwidth.
#pragma once
#include <string>
#include <vector>

#include "backend/rdu/simulator.h"

namespace tessera::rdu {

// One message per violation, each starting with its kind: "unit:", "double-booked:",
// "sram:", "route:", "link:". Empty when the mapping is valid.
std::vector<std::string> validate_mapping(const RduMapping& mapping, const SimReport* timing = nullptr);

}  // namespace tessera::rdu
