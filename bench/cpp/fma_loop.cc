#include "fma_loop.h"

#include <immintrin.h>
#include <omp.h>

#include <time.h>

#include <chrono>

#include "backend/cpu/isa.h"

namespace tessera::bench {

// Twelve accumulators hide the FMA latency (4 cycles) over two pipes.
#define TS_FMA_BODY(T, FMA, SET1, ADD, REDUCE)                                                \
  T a[12];                                                                                    \
  for (int i = 0; i < 12; ++i) a[i] = SET1(1.0f + i * 1e-3f);                                 \
  const T m = SET1(0.999999f), c = SET1(1e-7f);                                               \
  for (int64_t it = 0; it < iters; ++it)                                                      \
    for (int i = 0; i < 12; ++i) a[i] = FMA(a[i], m, c);                                      \
  T s = a[0];                                                                                 \
  for (int i = 1; i < 12; ++i) s = ADD(s, a[i]);                                              \
  return REDUCE(s);

__attribute__((target("avx512f,fma"))) static float reduce512(__m512 v) {
  alignas(64) float f[16];
  _mm512_store_ps(f, v);
  float s = 0;
  for (float x : f) s += x;
  return s;
}

__attribute__((target("avx512f,fma"))) float fma_loop_avx512(int64_t iters) {
  TS_FMA_BODY(__m512, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_add_ps, reduce512)
}

__attribute__((target("avx2,fma"))) static float reduce256(__m256 v) {
  alignas(32) float f[8];
  _mm256_store_ps(f, v);
  return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(int64_t iters) {
  TS_FMA_BODY(__m256, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_add_ps, reduce256)
}

__attribute__((target("avx512f,avx512bf16"))) float dpbf16_loop_avx512(int64_t iters) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
  const __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(1e-4f));
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_dpbf16_ps(a[i], x, y);
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  return reduce512(s);
}

bool has_avx512_bf16() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16");
}

static volatile float benchmark_sink_;

double measure_peak_gflops(int threads, double seconds) {
  const bool wide = cpu::detected_isa() == cpu::Isa::kAvx512;
  const int64_t per_iter = wide ? kFmaFlopsPerIterAvx512 : kFmaFlopsPerIterAvx2;
  const int64_t iters = 20'000'000;
  double best = 0;
  auto start = std::chrono::steady_clock::now();
  float sink = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    {
      float r = wide ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
#pragma omp atomic
      sink += r;
    }
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark_sink_ = sink;
    best = std::max(best, static_cast<double>(per_iter) * iters * threads / dt / 1e9);
  }
  return best;
}

}  // namespace tessera::bench

namespace tessera::bench {

double measure_core_peak_gflops_cpu_time(double seconds) {
  const bool wide = cpu::detected_isa() == cpu::Isa::kAvx512;
  const int64_t per_iter = wide ? kFmaFlopsPerIterAvx512 : kFmaFlopsPerIterAvx2;
  auto cpu_now = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  };
  double best = 0, spent = 0;
  while (spent < seconds) {
    const double t0 = cpu_now();
    benchmark_sink_ = wide ? fma_loop_avx512(5'000'000) : fma_loop_avx2(5'000'000);
    const double dt = cpu_now() - t0;
    spent += dt;
    best = std::max(best, static_cast<double>(per_iter) * 5'000'000 / dt / 1e9);
  }
  return best;
}

}  // namespace tessera::bench
