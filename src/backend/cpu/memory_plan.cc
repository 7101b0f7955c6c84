#include "backend/cpu/memory_plan.h"

#include <algorithm>
#include <functional>
#include <numeric>

#include "support/error.h"

namespace tessera::cpu {

namespace {
constexpr int64_t kAlign = 64;
int64_t align_up(int64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
bool test_bit(const std::vector<uint64_t>& bits, int i) { return (bits[static_cast<size_t>(i) / 64] >> (i % 64)) & 1; }
void set_bit(std::vector<uint64_t>& bits, int i) { bits[static_cast<size_t>(i) / 64] |= uint64_t(1) << (i % 64); }

// Places buffers largest first, each at the lowest offset clear of the placed buffers that
// `coexist` with it. Returns the arena size.
int64_t pack(const std::vector<int64_t>& bytes, const std::function<bool(size_t, size_t)>& coexist,
             std::vector<int64_t>& offsets) {
  std::vector<size_t> order(bytes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return bytes[a] > bytes[b]; });
  offsets.assign(bytes.size(), 0);
  int64_t arena = 0;
  std::vector<size_t> placed;
  std::vector<std::pair<int64_t, int64_t>> busy;
  for (size_t i : order) {
    const int64_t size = align_up(std::max<int64_t>(bytes[i], 1));
    busy.clear();
    for (size_t j : placed)
      if (coexist(i, j)) busy.push_back({offsets[j], offsets[j] + align_up(std::max<int64_t>(bytes[j], 1))});
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& [b, e] : busy) {
      if (offset + size <= b) break;
      offset = std::max(offset, e);
    }
    offsets[i] = offset;
    arena = std::max(arena, offset + size);
    placed.push_back(i);
  }
  return arena;
}
}  // namespace

StepOrder StepOrder::sequential(int steps) {
  StepOrder o;
  o.steps_ = steps;
  o.words_ = (steps + 63) / 64;
  return o;
}

StepOrder StepOrder::from_deps(const std::vector<std::vector<int>>& deps) {
  StepOrder o = sequential(static_cast<int>(deps.size()));
  o.sequential_ = false;
  const int n = o.steps_, w = o.words_;
  std::vector<std::vector<int>> succ(n);
  for (int i = 0; i < n; ++i)
    for (int d : deps[i]) {
      TS_CHECK(d >= 0 && d < i, "step ", i, " depends on step ", d, ", which does not come before it");
      succ[d].push_back(i);
    }
  o.desc_.assign(static_cast<size_t>(n) * w, 0);
  for (int i = n - 1; i >= 0; --i) {
    uint64_t* mine = &o.desc_[static_cast<size_t>(i) * w];
    for (int s : succ[i]) {
      const uint64_t* theirs = &o.desc_[static_cast<size_t>(s) * w];
      for (int k = 0; k < w; ++k) mine[k] |= theirs[k];
      mine[s / 64] |= uint64_t(1) << (s % 64);
    }
  }
  return o;
}

bool StepOrder::before(int a, int b) const {
  if (sequential_) return a < b;
  return (desc_[static_cast<size_t>(a) * words_ + static_cast<size_t>(b) / 64] >> (b % 64)) & 1;
}

std::vector<uint64_t> StepOrder::after_all(const std::vector<int>& uses) const {
  std::vector<uint64_t> bits(words_, 0);
  if (sequential_) {
    int last = -1;
    for (int u : uses) last = std::max(last, u);
    for (int s = last + 1; s < steps_; ++s) set_bit(bits, s);
    return bits;
  }
  bits.assign(words_, ~uint64_t(0));
  for (int u : uses)
    for (int k = 0; k < words_; ++k) bits[k] &= desc_[static_cast<size_t>(u) * words_ + k];
  return bits;
}

ValuePlan plan_values(const std::vector<PlanValue>& values, const StepOrder& order) {
  struct Group {
    int64_t bytes = 0;
    int writer = 0;  // the first member's writer: every later member's writer follows it
    int tail = -1;   // the member written last; only it can be overwritten again
    bool live_out = false;
    std::vector<int> uses;
  };
  ValuePlan plan;
  const size_t n = values.size();
  plan.offsets.assign(n, -1);
  plan.shares.assign(n, -1);
  std::vector<int> group_of(n, -1);
  std::vector<Group> groups;
  auto add_uses = [&](Group& g, const PlanValue& v) {
    g.uses.push_back(v.writer);
    g.uses.insert(g.uses.end(), v.readers.begin(), v.readers.end());
    g.live_out = g.live_out || v.live_out;
  };
  for (size_t i = 0; i < n; ++i) {
    const PlanValue& v = values[i];
    if (v.bytes <= 0) continue;
    TS_CHECK(v.writer >= 0 && v.writer < order.steps(), "value ", i, " has writer step ", v.writer, " of ",
             order.steps());
    plan.total_requested += v.bytes;
    int chosen = -1;
    for (int c : v.in_place) {
      if (c < 0 || static_cast<size_t>(c) >= i || group_of[c] < 0) continue;
      const Group& g = groups[group_of[c]];
      if (g.live_out || g.bytes != v.bytes || g.tail != c) continue;
      // Every other use of the buffer must be over before this writer starts.
      bool ok = true;
      for (int u : g.uses) ok = ok && (u == v.writer || order.before(u, v.writer));
      if (ok) {
        chosen = c;
        break;
      }
    }
    if (chosen >= 0) {
      Group& g = groups[group_of[chosen]];
      group_of[i] = group_of[chosen];
      plan.shares[i] = chosen;
      g.tail = static_cast<int>(i);
      add_uses(g, v);
      ++plan.in_place;
      continue;
    }
    Group g;
    g.bytes = v.bytes;
    g.writer = v.writer;
    g.tail = static_cast<int>(i);
    add_uses(g, v);
    group_of[i] = static_cast<int>(groups.size());
    groups.push_back(std::move(g));
  }
  // Group a is done before group b starts when every use of a precedes b's first writer.
  std::vector<std::vector<uint64_t>> after(groups.size());
  std::vector<int64_t> sizes(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    sizes[g] = groups[g].bytes;
    if (!groups[g].live_out) after[g] = order.after_all(groups[g].uses);
  }
  auto done_before = [&](size_t a, size_t b) { return !groups[a].live_out && test_bit(after[a], groups[b].writer); };
  std::vector<int64_t> offsets;
  plan.arena_bytes = pack(sizes, [&](size_t a, size_t b) { return !done_before(a, b) && !done_before(b, a); }, offsets);
  for (size_t i = 0; i < n; ++i)
    if (group_of[i] >= 0) plan.offsets[i] = offsets[group_of[i]];
  return plan;
}

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests) {
  MemoryPlan plan;
  std::vector<int64_t> sizes;
  for (const BufferRequest& r : requests) {
    sizes.push_back(r.bytes);
    plan.total_requested += r.bytes;
  }
  plan.arena_bytes = pack(
      sizes,
      [&](size_t a, size_t b) {
        return !(requests[a].last < requests[b].first || requests[b].last < requests[a].first);
      },
      plan.offsets);
  return plan;
}

}  // namespace tessera::cpu
