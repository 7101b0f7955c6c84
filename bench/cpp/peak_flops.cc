// fp32 peak of this machine: a tight FMA loop on 1 and 2 threads (GFLOP/s counter), AVX-512
// and AVX2 widths; and the bf16 dot-product (vdpbf16ps) peak where AVX-512 BF16 exists.
#include <benchmark/benchmark.h>

#include "backend/cpu/isa.h"
#include "fma_loop.h"

namespace {

using namespace tessera::bench;

void BM_PeakFma(benchmark::State& state) {
  const bool wide = state.range(0) == 512;
  if (wide && tessera::cpu::detected_isa() != tessera::cpu::Isa::kAvx512) return state.SkipWithError("no AVX-512");
  const int64_t iters = 1'000'000;
  for (auto _ : state) benchmark::DoNotOptimize(wide ? fma_loop_avx512(iters) : fma_loop_avx2(iters));
  const double flops = static_cast<double>(wide ? kFmaFlopsPerIterAvx512 : kFmaFlopsPerIterAvx2) * iters;
  state.counters["GFLOPS"] = benchmark::Counter(flops * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PeakFma)->Arg(512)->Arg(256)->Threads(1)->Threads(2)->UseRealTime();

// bf16 dot-product peak (vdpbf16ps), the ceiling of --precision bf16 matmul/conv. Threads are
// OpenMP's inside the loop (Arg = thread count), so the name does not end in "threads:N",
// which bench/environment.py reads as the fp32 peak.
void BM_PeakDpBf16(benchmark::State& state) {
  if (!has_avx512_bf16()) return state.SkipWithError("no AVX-512 BF16");
  const int threads = static_cast<int>(state.range(0));
  const int64_t iters = 1'000'000;
  for (auto _ : state) {
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += dpbf16_loop_avx512(iters);
    benchmark::DoNotOptimize(sink);
  }
  const double flops = static_cast<double>(kDpBf16FlopsPerIter) * iters * threads;
  state.counters["GFLOPS"] = benchmark::Counter(flops * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PeakDpBf16)->ArgName("omp_threads")->Arg(1)->Arg(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
