// Static memory planning: buffers with known sizes and lifetimes (step of first definition,
// step of last use) get offsets in one arena so that buffers alive at the same time never
// overlap. Greedy: largest first, each at the lowest offset that fits between the buffers
// already placed whose lifetimes intersect its own.
#pragma once
#include <cstdint>
#include <vector>

namespace tessera::cpu {

struct BufferRequest {
  int64_t bytes = 0;
  int first = 0;  // step that writes it
  int last = 0;   // last step that reads it (>= first)
};

struct MemoryPlan {
  std::vector<int64_t> offsets;  // per request, 64-byte aligned
  int64_t arena_bytes = 0;
  int64_t total_requested = 0;  // sum of sizes: arena_bytes / this is the reuse achieved
};

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests);

}  // namespace tessera::cpu
