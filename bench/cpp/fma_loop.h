// A tight loop of independent fused multiply-adds: the fp32 peak this core reaches in practice.
#pragma once
#include <cstdint>

namespace tessera::bench {

// Runs `iters` iterations of 12 independent vector FMAs; returns a value so nothing is elided.
float fma_loop_avx512(int64_t iters);
float fma_loop_avx2(int64_t iters);
constexpr int64_t kFmaFlopsPerIterAvx512 = 12 * 16 * 2;
constexpr int64_t kFmaFlopsPerIterAvx2 = 12 * 8 * 2;

// The bf16 counterpart: 12 independent vdpbf16ps (each lane adds two bf16 products to an
// f32 accumulator: 4 flops) per iteration; needs AVX-512 BF16.
float dpbf16_loop_avx512(int64_t iters);
constexpr int64_t kDpBf16FlopsPerIter = 12 * 16 * 4;
bool has_avx512_bf16();

// Peak GFLOP/s with `threads` threads (each running the widest loop the CPU has), measured
// for about `seconds`.
double measure_peak_gflops(int threads, double seconds = 0.3);

// One core's peak in GFLOP per second of that thread's CPU time: unaffected by other processes
// sharing the machine (wall-clock peaks are, on a loaded box).
double measure_core_peak_gflops_cpu_time(double seconds = 0.3);

}  // namespace tessera::bench
