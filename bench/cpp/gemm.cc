// GEMM C[n,n] = A[n,n]·B[n,n] through Tessera's MatMul path (CpuExecutable: oneDNN with B
// a packed constant), 1 and 2 threads. Reports wall-clock GFLOP/s with the FMA peak measured
// the same way for the same thread count (pct_peak), and, robust to other load on the
// machine, GFLOP per process-CPU-second against one core's CPU-time peak (cpu_pct_peak; time
// threads spend waiting counts against it).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <random>

#include "backend/cpu/cpu_executable.h"
#include "fma_loop.h"
#include "ir/op_registry.h"

namespace {

using namespace tessera;

double peak(int threads) {
  static std::map<int, double> cache;
  auto it = cache.find(threads);
  if (it != cache.end()) return it->second;
  return cache[threads] = bench::measure_peak_gflops(threads, 0.5);
}

Tensor random_matrix(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  Tensor t(DType::kFloat32, {n, n});
  for (int64_t i = 0; i < n * n; ++i) t.data<float>()[i] = d(rng);
  return t;
}

void gemm(benchmark::State& state, const std::string& precision) {
  const int64_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  auto g = std::make_shared<Graph>();
  Node* a = g->add("a", "_Arg", {}, {{"T", DType::kFloat32}, {"_shape", PartialShape({-1, n})}, {"index", int64_t{0}}});
  infer_node(*a);
  g->args.push_back(a);
  Node* b = g->add("b", "Const", {}, {{"value", random_matrix(n, 2)}, {"dtype", DType::kFloat32}});
  infer_node(*b);
  Node* mm = g->add("mm", "MatMul", {a->out(), b->out()}, {{"T", DType::kFloat32}});
  infer_node(*mm);
  g->results.push_back(mm->out());
  g->result_names.push_back("c");
  const double peak_gflops = peak(threads);
  auto exe = cpu::CpuExecutable::compile(g, {threads, "", precision});
  std::vector<Tensor> args = {random_matrix(n, 1)};
  exe->run(args, nullptr);  // plan + warm-up
  for (auto _ : state) benchmark::DoNotOptimize(exe->run(args, nullptr));
  const double flops = 2.0 * n * n * n;
  state.counters["GFLOPS"] = benchmark::Counter(flops * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.counters["peak_GFLOPS"] = peak_gflops;
  state.counters["n"] = static_cast<double>(n);
  state.SetLabel("isa=" + exe->isa() + (precision == "fp32" ? "" : " precision=" + precision));
}

void BM_Gemm(benchmark::State& state) { gemm(state, "fp32"); }

// --precision bf16 (docs/bf16.md): bf16 A and packed B, f32 accumulation; pct_peak is still
// against the fp32 FMA peak (the bf16 dot-product peak is BM_PeakDpBf16, about twice it).
void BM_GemmBf16(benchmark::State& state) {
  try {
    gemm(state, "bf16");
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

BENCHMARK(BM_GemmBf16)
    ->ArgsProduct({{512, 1024, 1536, 2048}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->MinTime(1.0);

// pct_peak is derived from the two counters after the run (see ReportPercent below).
BENCHMARK(BM_Gemm)
    ->ArgsProduct({{512, 1024, 1536, 2048}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->MinTime(1.0);

// Adds pct_peak = GFLOPS / peak_GFLOPS to each report line.
class PercentReporter : public benchmark::ConsoleReporter {
 public:
  explicit PercentReporter(double core_peak) : core_peak_(core_peak) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    std::vector<Run> copy = runs;
    for (Run& r : copy) {
      auto g = r.counters.find("GFLOPS"), p = r.counters.find("peak_GFLOPS");
      if (g != r.counters.end() && p != r.counters.end() && p->second.value > 0) {
        // kIsRate counters are finalised by the time reporters see them.
        r.counters["pct_peak"] = benchmark::Counter(100.0 * g->second.value / p->second.value);
      }
      auto n = r.counters.find("n");
      if (n != r.counters.end() && r.cpu_accumulated_time > 0) {
        const double flops = 2.0 * n->second.value * n->second.value * n->second.value * r.iterations;
        const double per_cpu_s = flops / r.cpu_accumulated_time / 1e9;
        r.counters["cpu_GFLOPS"] = benchmark::Counter(per_cpu_s);
        r.counters["cpu_pct_peak"] = benchmark::Counter(100.0 * per_cpu_s / core_peak_);
      }
    }
    ConsoleReporter::ReportRuns(copy);
  }

 private:
  double core_peak_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const double core_peak = bench::measure_core_peak_gflops_cpu_time(0.5);
  std::printf("one core's FMA peak: %.1f GFLOP per CPU-second\n", core_peak);
  PercentReporter reporter(core_peak);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
