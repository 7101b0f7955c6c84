// Whole-model latency: a zoo SavedModel (TESSERA_ZOO_DIR or ~/.cache/tessera/zoo; model names
// in TESSERA_BENCH_MODELS, default resnet50_tfk) after the default pass pipeline
// (TESSERA_BENCH_NO_PASSES=1: as imported) at batch 1 and 32, on the reference interpreter and
// on CpuExecutable (threads from TESSERA_BENCH_THREADS, default 2). Inputs are random with the
// signature's shape; warm-up (plan, packing) is excluded.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>

#include "backend/cpu/cpu_executable.h"
#include "ir/interpreter.h"
#include "passes/pass.h"
#include "passes/signature_graph.h"
#include "runtime/model.h"

namespace {

using namespace tessera;

struct Loaded {
  std::shared_ptr<const Model> model;
  std::shared_ptr<Graph> graph;
  std::unique_ptr<ResourceStore> vars;
};

Loaded load(const std::string& name) {
  const char* zoo = std::getenv("TESSERA_ZOO_DIR");
  std::filesystem::path dir = zoo ? zoo : std::filesystem::path(std::getenv("HOME")) / ".cache/tessera/zoo";
  Loaded l;
  l.model = Model::load((dir / name / "saved_model").string());
  l.graph = signature_graph(l.model->module(), l.model->signature("serving_default"));
  l.vars = std::make_unique<ResourceStore>();
  l.vars->restore(l.model->variables());
  if (!std::getenv("TESSERA_BENCH_NO_PASSES")) {  // the default pipeline, as `tessera compile` runs it
    passes::PassContext ctx;
    ctx.variables = l.vars.get();
    passes::run_passes(*l.graph, passes::default_pipeline(), ctx);
  }
  return l;
}

std::vector<Tensor> inputs(const Graph& g, int64_t batch) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(0, 1);
  std::vector<Tensor> args;
  for (Node* a : g.args) {
    Shape s;
    for (int64_t dim : a->outputs[0].shape.dims) s.push_back(dim < 0 ? batch : dim);
    Tensor t(DType::kFloat32, s);
    for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = d(rng);
    args.push_back(t);
  }
  return args;
}

void run_model(benchmark::State& state, const std::string& name, int64_t batch, bool reference) {
  static std::map<std::string, Loaded> cache;
  if (!cache.count(name)) cache[name] = load(name);
  Loaded& l = cache[name];
  const char* t = std::getenv("TESSERA_BENCH_THREADS");
  const int threads = t ? std::atoi(t) : 2;
  std::vector<Tensor> args = inputs(*l.graph, batch);
  if (reference) {
    for (auto _ : state) benchmark::DoNotOptimize(call_function(*l.graph, args, l.vars.get()));
  } else {
    auto exe = cpu::CpuExecutable::compile(l.graph, {threads, ""});
    exe->run(args, l.vars.get());
    exe->run(args, l.vars.get());
    for (auto _ : state) benchmark::DoNotOptimize(exe->run(args, l.vars.get()));
  }
  state.counters["items_per_s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                     benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  const char* m = std::getenv("TESSERA_BENCH_MODELS");
  std::stringstream names(m ? m : "resnet50_tfk");
  std::string name;
  while (std::getline(names, name, ','))
    for (int64_t batch : {1, 32})
      for (bool ref : {true, false})
        benchmark::RegisterBenchmark((name + "/b" + std::to_string(batch) + (ref ? "/reference" : "/cpu")).c_str(),
                                     [=](benchmark::State& s) { run_model(s, name, batch, ref); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MeasureProcessCPUTime()  // CPU column: all threads, robust to other load
            ->MinTime(ref ? 0.5 : 2.0);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
