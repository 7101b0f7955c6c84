#include "backend/cpu/weight_cache.h"

#include <cstring>

namespace tessera::cpu {

void WeightCache::set_source(const Tensor& source, const dnnl::memory::desc& md) {
  if (source_.valid() && source_.raw() == source.raw() && source_md_ == md) return;
  source_ = source;
  source_md_ = md;
  packs_.clear();
}

std::string WeightCache::layout_name(const dnnl::memory::desc& md) {
  return "onednn:" + onednn::layout_string(md) + ":" + onednn::effective_isa();
}

dnnl::memory WeightCache::get(const dnnl::memory::desc& want) {
  if (want == source_md_) return onednn::wrap(source_md_, source_.raw());
  for (auto& [md, t] : packs_)
    if (md == want) return onednn::wrap(md, t.raw());
  Tensor packed = Tensor::uninitialized(DType::kUInt8, {static_cast<int64_t>(want.get_size())});
  dnnl::memory src = onednn::wrap(source_md_, source_.raw());
  dnnl::memory dst = onednn::wrap(want, packed.raw());
  dnnl::stream s(onednn::engine());
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
  packs_.push_back({want, packed});
  return dst;
}

void WeightCache::adopt(const std::vector<PackedWeight>* prepacked, const dnnl::memory::desc& want) {
  if (!prepacked) return;
  const std::string name = layout_name(want);
  for (const PackedWeight& w : *prepacked)
    if (w.key == key_ && w.layout == name && w.data.dtype() == DType::kUInt8 &&
        static_cast<size_t>(w.data.num_elements()) == want.get_size()) {
      for (auto& [md, t] : packs_)
        if (md == want) return;
      packs_.push_back({want, w.data});
      return;
    }
}

std::vector<PackedWeight> WeightCache::packed() const {
  std::vector<PackedWeight> out;
  for (const auto& [md, t] : packs_) out.push_back({key_, layout_name(md), t});
  return out;
}

}  // namespace tessera::cpu
