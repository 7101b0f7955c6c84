// Serialisation of a finished rdu mapping (sections, unit allocation, placement, routes and a
// timing summary) for the .tsr artifact's "rdu_mapping" section, so `tessera simulate` and
// `--target rdu` runs reuse the compile-time mapping instead of searching again.
//
// The kernels are not stored: they are re-lowered from the artifact's optimised graph and
// must match the stored fingerprint. Section membership and off-chip traffic are recomputed
// by the partitioner and must equal the stored membership. Decoding treats the bytes as
// untrusted: every count and index is bounds-checked, and the result must pass the mapping
// validator; errors are ErrorCode::kDataLoss naming `what` and the field.
#pragma once
#include <string>
#include <string_view>

#include "backend/rdu/simulator.h"

namespace tessera::rdu {

inline constexpr uint32_t kMappingCodecVersion = 1;

struct StoredMapping {
  RduMapping mapping;
  MapOptions options;
  // The timing summary written at compile time: totals and per-section cycles/bottleneck.
  SimReport timing;
};

std::string encode_mapping(const RduMapping& mapping, const MapOptions& options, const SimReport& timing);

// `graph` is the optimised graph the mapping was made from (the artifact's signature graph).
StoredMapping decode_mapping(std::string_view bytes, const Graph& graph, const std::string& what);

// The chip description as JSON that parse_arch reads back to an equal Arch.
std::string arch_to_json(const Arch& arch);

// True when two chips have the same description (every field).
bool same_arch(const Arch& a, const Arch& b);

}  // namespace tessera::rdu
