// TsElementwise programs from the seed MLP's training step (the fused gelu+dropout forward, its
// gradient, and the Adam update) run alone through the cpu backend on [rows, cols] float
// inputs: ns per element and the GB/s their inputs and outputs move. What the step's
// per-node profile shows for the same node, less than this, is the cost of cold caches.
#include <benchmark/benchmark.h>

#include <random>

#include "backend/cpu/cpu_executable.h"
#include "ir/op_registry.h"

namespace {

using namespace tessera;

struct Program {
  const char* name;
  int inputs;  // float32 [rows, cols] each, except those named in scalars
  std::vector<int> scalars;
  std::vector<std::string> lines;
  std::vector<int64_t> outputs;  // empty: the last entry
};

const Program kPrograms[] = {
    {"gelu_dropout_forward", 2, {}, {"GreaterEqual $0 0.3", "Mul 0.5 $1", "Neg $1", "Mul %2 0.70710677", "Erfc %3",
                                      "Mul %1 %4", "Mul %5 1.4285715", "SelectV2 %0 %6 0"}, {7, 1, 4, 3}},
    {"gelu_dropout_backward", 5, {}, {"GreaterEqual $3 0.3", "ZerosLike $2", "SelectV2 %0 $2 %1", "Mul %2 1.4285715",
                                       "Mul $1 %3", "Mul $4 $4", "Neg %5", "Exp %6", "Mul 1.1283792 %7", "Mul %4 %8",
                                       "Neg %9", "Mul %10 0.70710677", "Neg %11", "Mul %3 $0", "Mul 0.5 %13",
                                       "AddV2 %12 %14"}, {}},
    {"adam", 5, {1}, {"Sub $4 $2", "Mul %0 0.1", "AddV2 $2 %1", "Square $4", "Sub %3 $3", "Mul %4 0.001",
                      "AddV2 $3 %5", "Mul %2 $1", "Sqrt %6", "AddV2 %8 1e-07", "RealDiv %7 %9", "Sub $0 %10"},
     {11, 2, 6}},
};

Tensor random(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(0.01f, 1);
  Tensor t(DType::kFloat32, shape);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

void run_program(benchmark::State& state, const Program& p) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  auto g = std::make_shared<Graph>();
  std::vector<Value> ins;
  std::vector<Tensor> args;
  for (int i = 0; i < p.inputs; ++i) {
    const bool scalar = std::find(p.scalars.begin(), p.scalars.end(), i) != p.scalars.end();
    const Shape shape = scalar ? Shape{} : Shape{rows, cols};
    Node* a = g->add("x" + std::to_string(i), "_Arg", {},
                     {{"T", DType::kFloat32}, {"_shape", PartialShape(shape)}, {"index", int64_t{i}}});
    infer_node(*a);
    g->args.push_back(a);
    ins.push_back(a->out());
    args.push_back(random(shape, 7 + i));
  }
  AttrMap attrs = {{"program", p.lines}, {"N", static_cast<int64_t>(p.inputs)}, {"T", DType::kFloat32}};
  if (!p.outputs.empty()) attrs["outputs"] = p.outputs;
  Node* e = g->add("e", "TsElementwise", ins, attrs);
  infer_node(*e);
  const size_t outs = std::max<size_t>(1, p.outputs.size());
  for (size_t k = 0; k < outs; ++k) {
    g->results.push_back(e->out(static_cast<int>(k)));
    g->result_names.push_back("y" + std::to_string(k));
  }
  auto exe = cpu::CpuExecutable::compile(g, {threads, "", "fp32"});
  exe->run(args, nullptr);  // plan
  for (auto _ : state) benchmark::DoNotOptimize(exe->run(args, nullptr));
  const double elements = static_cast<double>(rows * cols) * static_cast<double>(state.iterations());
  const int streams = p.inputs - static_cast<int>(p.scalars.size()) + static_cast<int>(outs);
  state.counters["ns_per_element"] = benchmark::Counter(elements, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["ns_per_element"].value *= 1e9;
  state.counters["GBps"] = benchmark::Counter(elements * 4 * streams / 1e9, benchmark::Counter::kIsRate);
}

void register_all() {
  for (const Program& p : kPrograms)
    benchmark::RegisterBenchmark(p.name, [&p](benchmark::State& s) { run_program(s, p); })
        ->ArgsProduct({{256}, {512}, {1, 2}})
        ->Args({784, 512, 2})
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond)
        ->MinTime(0.5);
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
