// Static memory planning: buffers with known sizes get offsets in one arena so that two
// buffers that may be alive at the same time never overlap. Greedy: largest first, each at the
// lowest offset that fits between the placed buffers it may coexist with.
//
// "May coexist" comes from a StepOrder. With sequential execution a buffer lives from its
// writer's step to its last reader's; with inter-op parallelism steps only wait for their
// dependencies, so buffer A may share space with B only when every step using A is a
// dependency ancestor of B's writer (or the reverse). One rule covers both: A is done before
// step w when every use u of A satisfies order.before(u, w).
//
// In place: a value may take over the buffer of an input its writer reads when the kernel
// allows it, the sizes match, the input is not a result, and every other use of that buffer is
// ordered before the writer. The two lifetimes merge into one buffer.
#pragma once
#include <cstdint>
#include <vector>

namespace tessera::cpu {

// Which steps are guaranteed to finish before which others start.
class StepOrder {
 public:
  static StepOrder sequential(int steps);  // step a before step b iff a < b
  // deps[i]: the steps step i waits for (each < i). before() is the transitive closure.
  static StepOrder from_deps(const std::vector<std::vector<int>>& deps);
  int steps() const { return steps_; }
  bool before(int a, int b) const;
  // Bitset over steps: the steps that start after every step in `uses` has finished.
  std::vector<uint64_t> after_all(const std::vector<int>& uses) const;

 private:
  int steps_ = 0;
  int words_ = 0;
  bool sequential_ = true;
  std::vector<uint64_t> desc_;  // steps_ x words_: strict descendants of each step
};

// One value a step writes; bytes <= 0 keeps it out of the arena (args, constants, heap
// outputs of reference kernels). Values are listed in the order of their writers.
struct PlanValue {
  int64_t bytes = 0;
  int writer = 0;
  std::vector<int> readers;  // steps reading it or any alias of it
  bool live_out = false;     // a result: alive after the last step
  std::vector<int> in_place;  // earlier values the writer reads and could overwrite (kernel allows it)
};

struct ValuePlan {
  std::vector<int64_t> offsets;  // per value: 64-byte aligned arena offset, -1 when not placed
  std::vector<int> shares;       // per value: the value whose buffer it took over in place, else -1
  int64_t arena_bytes = 0;
  int64_t total_requested = 0;   // bytes of all placed values (in-place ones included)
  int in_place = 0;              // values written in place
};

ValuePlan plan_values(const std::vector<PlanValue>& values, const StepOrder& order);

// The interval form (sequential lifetimes [first, last]), kept for direct tests of the packer.
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
