// fp32 peak of this machine: a tight FMA loop on 1 and 2 threads (GFLOP/s counter), AVX-512
// and AVX2 widths.
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

}  // namespace

BENCHMARK_MAIN();
