#include "backend/cpu/onednn.h"

#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>

#include <oneapi/dnnl/dnnl_debug.h>

#include "backend/cpu/threads.h"
#include "support/error.h"

namespace tessera::cpu::onednn {

namespace {
std::once_flag g_init;
}

void init(Isa isa) {
  std::call_once(g_init, [isa] {
    if (!std::getenv("ONEDNN_MAX_CPU_ISA")) {
      // avx512_core_bf16 (a cap, so a processor without BF16 stays at avx512_core) lets bf16
      // primitives use the native instructions; f32 kernels are the same at either cap.
      dnnl::cpu_isa cap = isa == Isa::kAvx512 ? dnnl::cpu_isa::avx512_core_bf16
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

bool bf16_supported() {
  const auto eff = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (eff & bf16) == bf16;  // ISA values are feature bitmasks; AMX includes BF16
}

void require_bf16(Isa isa) {
  init(resolve_isa(""));
  if (isa == Isa::kAvx512 && bf16_supported()) return;
  fail_code(ErrorCode::kFailedPrecondition, "bf16 precision needs AVX-512 BF16, but ",
            isa != Isa::kAvx512 ? "the kernels were asked for ISA '" + isa_name(isa) + "'"
                                : "oneDNN dispatches to '" + effective_isa() + "' here",
            " (processor, TESSERA_ISA or ONEDNN_MAX_CPU_ISA); compile with --precision fp32");
}

namespace {

uint16_t bf16_scalar(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

__attribute__((target("avx512f,avx512bf16"))) int64_t to_bf16_avx512(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
    std::memcpy(dst + i, &v, 32);
  }
  return i;
}

}  // namespace

void to_bf16(const float* src, uint16_t* dst, int64_t n, int threads) {
  const bool native = bf16_supported();
  parallel_for(n, 1 << 15, threads, [&](int64_t lo, int64_t hi) {
    int64_t i = lo + (native ? to_bf16_avx512(src + lo, dst + lo, hi - lo) : 0);
    for (; i < hi; ++i) dst[i] = bf16_scalar(src[i]);
  });
}

void* thread_buffer(ThreadBuffer which, size_t bytes) {
  thread_local Tensor buffers[static_cast<int>(ThreadBuffer::kCount)];
  Tensor& buf = buffers[static_cast<int>(which)];
  const int64_t need = std::max<int64_t>(static_cast<int64_t>(bytes), 1);
  if (!buf.valid() || buf.num_elements() < need) buf = Tensor(DType::kUInt8, {need});
  return buf.mutable_raw();
}

const void* bf16_scratch(const Tensor& t, int slot, int threads) {
  const int64_t n = t.num_elements();
  auto* dst = static_cast<uint16_t*>(
      thread_buffer(slot == 0 ? ThreadBuffer::kBf16First : ThreadBuffer::kBf16Second, 2 * static_cast<size_t>(n)));
  to_bf16(t.data<float>(), dst, n, threads);
  return dst;
}

dnnl::memory::desc retype(const dnnl::memory::desc& md, dnnl::memory::data_type type) {
  dnnl_memory_desc_t d = md.data;
  d.data_type = static_cast<dnnl_data_type_t>(type);
  return dnnl::memory::desc(d);
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
  if (d.data_type != dnnl_f32) os << ";dt=" << dnnl_dt2str(d.data_type);
  if (d.extra.flags) os << ";extra=" << d.extra.flags;
  return os.str();
}

void use_own_scratchpad(dnnl::primitive_attr& attr) { attr.set_scratchpad_mode(dnnl::scratchpad_mode::user); }

dnnl::memory thread_scratchpad(const dnnl::memory::desc& md) {
  return wrap(md, thread_buffer(ThreadBuffer::kScratchpad, md.get_size()));
}

}  // namespace tessera::cpu::onednn

namespace tessera::cpu {

void check_precision(const std::string& precision) {
  if (precision != "fp32" && precision != "bf16")
    fail_code(ErrorCode::kInvalidArgument, "unknown precision '", precision, "' (expected fp32 or bf16)");
}

}  // namespace tessera::cpu
