#include "backend/cpu/onednn.h"

#include <cstdlib>
#include <mutex>
#include <sstream>

#include "support/error.h"

namespace tessera::cpu::onednn {

namespace {
std::once_flag g_init;
}

void init(Isa isa) {
  std::call_once(g_init, [isa] {
    if (!std::getenv("ONEDNN_MAX_CPU_ISA")) {
      dnnl::cpu_isa cap = isa == Isa::kAvx512 ? dnnl::cpu_isa::avx512_core
                          : isa == Isa::kAvx2 ? dnnl::cpu_isa::avx2
                                              : dnnl::cpu_isa::sse41;
      dnnl::set_max_cpu_isa(cap);  // before any primitive is made: the one point it is honoured
    }
  });
}

dnnl::engine& engine() {
  static dnnl::engine* e = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *e;
}

std::string effective_isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx512_core: return "avx512";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_bf16";
    default: return "other";
  }
}

dnnl::memory::dims dims_of(const Shape& s) { return dnnl::memory::dims(s.begin(), s.end()); }

dnnl::memory::desc plain_desc(const dnnl::memory::dims& dims) {
  dnnl::memory::dims strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * dims[i + 1];
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, strides);
}

dnnl::memory wrap(const dnnl::memory::desc& md, const void* data) {
  return dnnl::memory(md, engine(), const_cast<void*>(data));
}

void append_activation(dnnl::post_ops& ops, const std::string& act, float alpha) {
  using A = dnnl::algorithm;
  if (act.empty()) return;
  if (act == "Relu") return ops.append_eltwise(1.f, A::eltwise_relu, 0.f, 0.f);
  if (act == "Relu6") return ops.append_eltwise(1.f, A::eltwise_clip, 0.f, 6.f);
  if (act == "Elu") return ops.append_eltwise(1.f, A::eltwise_elu, 1.f, 0.f);
  if (act == "Selu") {
    ops.append_eltwise(1.f, A::eltwise_elu, 1.6732632423543772f, 0.f);
    return ops.append_eltwise(1.f, A::eltwise_linear, 1.0507009873554805f, 0.f);
  }
  if (act == "LeakyRelu") return ops.append_eltwise(1.f, A::eltwise_relu, alpha, 0.f);
  if (act == "Sigmoid") return ops.append_eltwise(1.f, A::eltwise_logistic, 0.f, 0.f);
  if (act == "Tanh") return ops.append_eltwise(1.f, A::eltwise_tanh, 0.f, 0.f);
  if (act == "Swish") return ops.append_eltwise(1.f, A::eltwise_swish, 1.f, 0.f);
  if (act == "GeluExact") return ops.append_eltwise(1.f, A::eltwise_gelu_erf, 0.f, 0.f);
  if (act == "GeluTanh") return ops.append_eltwise(1.f, A::eltwise_gelu_tanh, 0.f, 0.f);
  fail("unknown activation '", act, "'");
}

std::string layout_string(const dnnl::memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  std::ostringstream os;
  os << "dims";
  for (int i = 0; i < d.ndims; ++i) os << (i ? "x" : "=") << d.dims[i];
  if (d.format_kind == dnnl_blocked) {
    const auto& b = d.format_desc.blocking;
    os << ";strides";
    for (int i = 0; i < d.ndims; ++i) os << (i ? "," : "=") << b.strides[i];
    os << ";blocks";
    for (int i = 0; i < b.inner_nblks; ++i) os << (i ? "," : "=") << b.inner_idxs[i] << ":" << b.inner_blks[i];
  } else if (d.format_kind == dnnl_format_kind_wino) {
    // Winograd weights: every field of the variant, so a pack is only adopted for its own.
    const dnnl_wino_desc_t& w = d.format_desc.wino_desc;
    os << ";wino=" << static_cast<int>(w.wino_format) << "," << w.r << "," << w.alpha << "," << w.ic << "," << w.oc
       << "," << w.ic_block << "," << w.oc_block << "," << w.ic2_block << "," << w.oc2_block << "," << w.adj_scale
       << "," << w.size;
  } else {
    os << ";kind=" << static_cast<int>(d.format_kind);
  }
  if (d.extra.flags) os << ";extra=" << d.extra.flags;
  return os.str();
}

}  // namespace tessera::cpu::onednn
