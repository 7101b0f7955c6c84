// TsRandomUniformIndexed (rewrite_dropout's mask draw): rows are independent counter-based
// draws (ops/philox.h), so they split across threads with the same values as the reference.
// On AVX-512 sixteen Philox blocks (64 floats) run at once, one block per 32-bit lane.
#include <immintrin.h>
// GCC 12 false positive inside the AVX-512 intrinsics (their _mm512_undefined_* pass-through).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstring>

#include "backend/cpu/kernel.h"
#include "backend/cpu/threads.h"
#include "ops/philox.h"

namespace tessera::cpu {
namespace {

// High 32 bits of each lane's 32x32-bit product: even lanes from one widening multiply, odd
// lanes from another on the shifted words.
__attribute__((target("avx512f"))) inline __m512i mulhi_epu32(__m512i a, __m512i m) {
  __m512i even = _mm512_mul_epu32(a, m);
  __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  return _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

// philox::indexed_uniform_row<float>, bit for bit. Lane l computes block (l % 4) * 4 + l / 4 of
// the group, so the two unpack stages below leave blocks 0-3, 4-7, 8-11, 12-15 in order in
// four registers: 64 consecutive floats without a cross-lane shuffle.
__attribute__((target("avx512f"))) void indexed_uniform_row_avx512(uint64_t seed, uint32_t stream, uint64_t sample,
                                                                    float* out, int64_t n) {
  const __m512i lane_block = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
  const __m512i mantissa = _mm512_set1_epi32(0x7fffff), exponent = _mm512_set1_epi32(0x3f800000);
  const __m512 one = _mm512_set1_ps(1.0f);
  float tail[64];
  for (int64_t j = 0; j < n; j += 64) {
    __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(j / 4)), lane_block);
    __m512i c1 = _mm512_set1_epi32(static_cast<int>(stream));
    __m512i c2 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(sample)));
    __m512i c3 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(sample >> 32)));
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    for (int r = 0; r < 10; ++r) {
      __m512i hi0 = mulhi_epu32(c0, m0), hi1 = mulhi_epu32(c2, m1);
      __m512i lo0 = _mm512_mullo_epi32(c0, m0), lo1 = _mm512_mullo_epi32(c2, m1);
      c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(static_cast<int>(k0)));
      c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(static_cast<int>(k1)));
      c1 = lo1;
      c3 = lo0;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
    __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
    const __m512i words[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                              _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
    float* dst = n - j >= 64 ? out + j : tail;
    for (int q = 0; q < 4; ++q) {
      __m512i bits = _mm512_or_si512(_mm512_and_si512(words[q], mantissa), exponent);
      _mm512_storeu_ps(dst + 16 * q, _mm512_sub_ps(_mm512_castsi512_ps(bits), one));
    }
    if (dst == tail) std::memcpy(out + j, tail, static_cast<size_t>(n - j) * sizeof(float));
  }
}

struct IndexedUniform final : CpuKernel {
  uint32_t stream = 0;
  bool avx512 = false;
  void run(KernelRun& r) override {
    Shape shape = r.input(0).to_int_vector();
    for (int64_t d : shape) TS_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
    Tensor out = r.allocate(0, DType::kFloat32, shape);
    const uint64_t seed = static_cast<uint64_t>(r.input(1).scalar_int());
    const uint64_t offset = static_cast<uint64_t>(r.input(2).scalar_int());
    const int64_t rows = shape.empty() ? 1 : shape[0];
    const int64_t per_row = rows > 0 ? out.num_elements() / rows : 0;
    float* d = out.data<float>();
    // ~64K floats per task: each costs ~0.3 ns vectorised, so smaller tasks are mostly overhead.
    const int64_t grain = std::max<int64_t>(1, (avx512 ? 65536 : 16384) / std::max<int64_t>(per_row, 1));
    parallel_for(rows, grain, r.threads(), [&](int64_t lo, int64_t hi) {
      for (int64_t row = lo; row < hi; ++row) {
        if (avx512)
          indexed_uniform_row_avx512(seed, stream, offset + row, d + row * per_row, per_row);
        else
          philox::indexed_uniform_row(seed, stream, offset + row, d + row * per_row, per_row);
      }
    });
    r.set_output(0, out);
  }
};

}  // namespace

void register_random_kernels() {
  register_kernel("TsRandomUniformIndexed", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    if (n.attr_or<DType>("dtype", DType::kFloat32) != DType::kFloat32) return nullptr;  // reference
    auto k = std::make_unique<IndexedUniform>();
    k->stream = static_cast<uint32_t>(n.attr_or<int64_t>("stream", 0));
    k->avx512 = env.isa == Isa::kAvx512;
    return k;
  });
}

}  // namespace tessera::cpu
