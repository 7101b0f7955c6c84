// A weight (constant or variable) kept in the layouts oneDNN primitives ask for. Packing
// happens once per (source tensor, layout): a constant is packed at compile time; a variable
// is repacked only when its value changes (assignment swaps in a new Tensor, so a different
// storage pointer means a new value).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_executable.h"
#include "backend/cpu/onednn.h"

namespace tessera::cpu {

class WeightCache {
 public:
  explicit WeightCache(std::string key) : key_(std::move(key)) {}
  // `source` in its TF layout described by `source_md`; clears packs made from another value.
  void set_source(const Tensor& source, const dnnl::memory::desc& source_md);
  bool has_source() const { return source_.valid(); }
  // The weight in layout `want`, reordering (once) if needed. Not thread-safe: callers run
  // under the executable's lock.
  dnnl::memory get(const dnnl::memory::desc& want);
  // Uses an artifact's packed bytes for `want` if the layout name matches.
  void adopt(const std::vector<PackedWeight>* prepacked, const dnnl::memory::desc& want);
  std::vector<PackedWeight> packed() const;
  static std::string layout_name(const dnnl::memory::desc& md);

 private:
  std::string key_;
  Tensor source_;
  dnnl::memory::desc source_md_;
  std::vector<std::pair<dnnl::memory::desc, Tensor>> packs_;
};

}  // namespace tessera::cpu
