// `tessera simulate MODEL --chip tiny|small|sn40l_like|FILE.json --batch N`: maps a signature's
// optimised graph onto an rdu chip and reports simulated cycles, throughput, % of peak,
// off-chip traffic and each section's bottleneck. --check also runs the sectioned schedule
// functionally and compares its outputs with the cpu backend's.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>

#include "backend/rdu/mapping_codec.h"
#include "backend/rdu/report.h"
#include "backend/rdu/simulator.h"
#include "backend/rdu/validator.h"
#include "runtime/model.h"
#include "tools/cli.h"

namespace tessera::cli {
namespace {

const char* kUsage =
    "usage: tessera simulate MODEL [--chip tiny|small|sn40l_like|FILE.json] [--batch N]\n"
    "                        [--signature KEY] [--precision bf16|fp32] [--unfused]\n"
    "                        [--naive-placement] [--check] [--json OUT.json] [--sections]\n"
    "  --chip        a preset in configs/rdu or a chip description (default tiny, or the\n"
    "                chip of the mapping stored in a .tsr by 'compile --target rdu --chip')\n"
    "  --batch       samples per run (default 1, or the stored mapping's batch)\n"
    "  --unfused     the baseline mapping: one operator per section\n"
    "  --naive-placement  row-major placement without annealing (baseline)\n"
    "  --check       run the sectioned schedule on seeded inputs and compare with the cpu target\n"
    "  --sections    print every section (default: the 10 slowest)\n"
    "  --kernels     print each kernel of the printed sections: units, cycles, FLOPs\n"
    "  --sweep P=v1,v2,...  re-map and re-simulate with chip field P (e.g. pcu.count,\n"
    "                hbm.bw_Bpc, mesh.vector_link_Bpc) set to each value; prints a table\n"
    "  --chips K --parallel data|pipeline|tensor [--microbatches M]  map onto K linked chips\n"
    "                (data: K replicas + gradient all-reduce; pipeline: K stages of sections;\n"
    "                tensor: matmul/conv split by output column); docs/rdu.md \"Multi-chip\"\n"
    "  --report OUT.html  one self-contained HTML page: meshes, roofline, sections, fused vs\n"
    "                unfused (maps the other one too), the sweep as a plot\n";

// Seeded inputs for one signature: normal floats, small integers; unknown dims = batch.
std::vector<Tensor> seeded_args(const CompiledSignature& cs, int64_t batch) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  std::vector<Tensor> args(cs.graph->args.size());
  for (const TensorSpec& spec : cs.signature.inputs) {
    auto it = std::find(cs.graph->args.begin(), cs.graph->args.end(), spec.value.node);
    TS_CHECK(it != cs.graph->args.end(), "simulate: input '", spec.key, "' is not a graph arg");
    Tensor t(spec.dtype, rdu::concrete_shape(ValueInfo{spec.dtype, spec.shape}, batch));
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      switch (spec.dtype) {
        case DType::kFloat32: t.data<float>()[i] = normal(rng); break;
        case DType::kInt32: t.data<int32_t>()[i] = static_cast<int32_t>(rng() % 10); break;
        case DType::kInt64: t.data<int64_t>()[i] = static_cast<int64_t>(rng() % 10); break;
        default: fail("simulate --check: no seeded inputs for ", dtype_name(spec.dtype), " input '", spec.key, "'");
      }
    }
    args[it - cs.graph->args.begin()] = t;
  }
  return args;
}

// The last two components of a node name (Keras prefixes every name with the call path).
std::string short_name(const std::string& name) {
  size_t cut = name.rfind('/');
  if (cut != std::string::npos && cut > 0) cut = name.rfind('/', cut - 1);
  return cut == std::string::npos ? name : name.substr(cut + 1);
}

// The shared numeric-match rule: max|rdu - cpu| <= 1e-4 * max|cpu| + 1e-6 (exact for non-floats).
bool numeric_match(const Tensor& got, const Tensor& ref, double* max_diff) {
  TS_CHECK(got.shape() == ref.shape() && got.dtype() == ref.dtype(), "simulate --check: rdu and cpu outputs differ in shape/dtype");
  if (ref.dtype() != DType::kFloat32) return std::memcmp(got.raw(), ref.raw(), ref.nbytes()) == 0;
  double worst = 0, max_ref = 0;
  for (int64_t i = 0; i < ref.num_elements(); ++i) {
    double x = got.data<float>()[i], y = ref.data<float>()[i];
    if (std::isnan(x) != std::isnan(y)) return false;
    if (std::isnan(y)) continue;
    worst = std::max(worst, std::abs(x - y));
    max_ref = std::max(max_ref, std::abs(y));
  }
  *max_diff = std::max(*max_diff, worst);
  return worst <= 1e-4 * max_ref + 1e-6;
}

// What limits a section, for summaries: "hbm"/"ddr"/"store"/"fill" or the bottleneck
// kernel's family ("conv", "gemm", "elementwise", ...).
std::string bottleneck_kind(const rdu::RduMapping& mp, const std::string& bottleneck) {
  if (bottleneck.rfind("fill", 0) == 0) return "fill";
  for (const rdu::Kernel& k : mp.kernels)
    if (k.name == bottleneck) return k.family;
  return bottleneck;
}

}  // namespace

// `--chips K` (cmd_simulate_chips.cc): the multi-chip report instead of the single-chip one.
int simulate_chips(const Args& args, const Graph& graph, const rdu::Arch& arch, const rdu::MapOptions& mo, int64_t batch);

int cmd_simulate(int argc, char** argv) {
  std::vector<std::string> flags = {"--signature", "--chip", "--batch", "--precision", "--json", "--sweep",
                                    "--chips", "--parallel", "--microbatches", "--report"};
  for (const auto& f : load_value_flags()) flags.push_back(f);
  Args args = parse_args(argc, argv, flags);
  if (args.has("--help") || args.positional.size() != 1) {
    std::printf("%s", kUsage);
    return args.has("--help") ? 0 : 2;
  }
  const std::string path = args.positional[0], key = args.get("--signature", "serving_default");
  LoadOptions options;
  apply_load_flags(args, options, "cpu");
  // A .tsr keeps its own target: an rdu artifact needs no cpu compile (--check makes one).
  if (!args.has("--target") && is_artifact_file(path)) options.target = "";
  auto model = Model::load(path, options);
  const CompiledSignature& cs = model->compiled_signature(key);
  // A mapping stored in the .tsr (compile --target rdu --chip C --batch N) sets the defaults
  // and is used as is when chip, batch and mapping options match.
  std::optional<rdu::StoredMapping> stored;
  if (auto it = model->rdu_mappings().find(key); it != model->rdu_mappings().end())
    stored = rdu::decode_mapping(it->second, *cs.graph, "'" + path + "' rdu mapping of '" + key + "'");

  int64_t batch = 0;
  try {
    batch = args.has("--batch") || !stored ? std::stoll(args.get("--batch", "1")) : stored->mapping.batch;
  } catch (const std::exception&) {
  }
  if (batch < 1) fail("--batch '", args.get("--batch"), "': expected an integer >= 1");
  std::string precision = args.get("--precision", stored && !stored->mapping.precision.bf16 ? "fp32" : "bf16");
  if (precision != "bf16" && precision != "fp32") fail("--precision '", precision, "': expected bf16 or fp32");
  rdu::Arch arch = args.has("--chip") || !stored ? rdu::load_arch(args.get("--chip", "tiny")) : stored->mapping.arch;

  rdu::MapOptions mo;
  mo.precision.bf16 = precision == "bf16";
  // A stored unfused mapping keeps simulate unfused (there is no --fused flag to ask otherwise).
  mo.partition.fused = !args.has("--unfused") && (!stored || stored->options.partition.fused);
  mo.placement.naive = args.has("--naive-placement");
  bool use_stored = stored && rdu::same_arch(arch, stored->mapping.arch) && batch == stored->mapping.batch &&
                    mo.precision.bf16 == stored->options.precision.bf16 &&
                    mo.partition.fused == stored->options.partition.fused && mo.placement.naive == stored->options.placement.naive;
  if (args.has("--chips") || args.has("--parallel") || args.has("--microbatches")) {
    if (args.has("--report")) fail("--report draws one chip's mapping; it cannot be combined with --chips");
    return simulate_chips(args, *cs.graph, arch, mo, batch);
  }
  rdu::RduMapping mp = use_stored ? std::move(stored->mapping) : rdu::map_graph(*cs.graph, batch, arch, mo);
  rdu::SimReport rep = rdu::simulate_timing(mp);
  std::vector<std::string> problems = rdu::validate_mapping(mp, &rep);
  if (use_stored) {
    std::printf("mapping: stored in the artifact (chip %s, batch %lld); stored timing %.0f cycles%s\n", arch.name.c_str(),
                static_cast<long long>(batch), stored->timing.cycles,
                stored->timing.cycles == rep.cycles ? ", re-simulated the same" : ", re-simulated differently (a newer timing model)");
  } else if (stored) {
    std::printf("mapping: the artifact's is for chip %s, batch %lld, %s%s; re-mapped for this run\n",
                stored->mapping.arch.name.c_str(), static_cast<long long>(stored->mapping.batch),
                stored->options.precision.bf16 ? "bf16" : "fp32", stored->options.partition.fused ? "" : ", unfused");
  }

  double peak_tflops = rep.peak_flop_per_cycle * arch.clock_ghz * 1e9 / 1e12;
  std::printf("model %s  signature %s  chip %s  batch %lld  %s  %s mapping\n", path.c_str(), key.c_str(), arch.name.c_str(),
              static_cast<long long>(batch), precision.c_str(), mo.partition.fused ? "fused" : "unfused (one op per section)");
  std::printf("sections %zu  kernels %zu  compile %.3f s (placement search %.3f s, cost %.3gx its lower bound)\n",
              mp.sections.size(), mp.kernels.size(), mp.compile_seconds, mp.placement_seconds,
              mp.placement_lower_bound > 0 ? mp.placement_cost / mp.placement_lower_bound : 1.0);
  std::printf("cycles %.0f  time %.6g s  samples/s %.6g\n", rep.cycles, rep.seconds, rep.seconds > 0 ? batch / rep.seconds : 0);
  std::printf("flops %.6g  achieved %.4g TFLOP/s = %.2f%% of peak %.4g TFLOP/s  PCU utilisation %.2f%%\n", rep.flops,
              rep.tflops(), 100 * rep.fraction_of_peak(), peak_tflops, 100 * rep.pcu_utilisation);
  std::printf("off-chip bytes  hbm %lld  ddr %lld\n", static_cast<long long>(rep.hbm_bytes), static_cast<long long>(rep.ddr_bytes));
  std::printf("validator %s\n", problems.empty() ? "ok" : "FAILED");
  for (const auto& p : problems) std::printf("  %s\n", p.c_str());
  std::vector<size_t> order(rep.sections.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (!args.has("--sections")) {
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rep.sections[a].cycles > rep.sections[b].cycles; });
    if (order.size() > 10) order.resize(10);
  }
  std::printf("%-8s %12s %6s %6s %12s %12s %7s  %-24s %s\n", "section", "cycles", "pcus", "pmus", "flops", "hbm_bytes", "link%",
              "bottleneck", "kernels");
  for (size_t i : order) {
    const auto& s = rep.sections[i];
    std::string ks;
    for (size_t k = 0; k < s.kernel_names.size() && k < 4; ++k) ks += (k ? "," : "") + short_name(s.kernel_names[k]);
    if (s.kernel_names.size() > 4) ks += ",... (" + std::to_string(s.kernel_names.size()) + ")";
    std::printf("%-8zu %12.0f %6d %6d %12.4g %12lld %6.1f%%  %-24s %s\n", i, s.cycles, s.pcus, s.pmus, s.flops,
                static_cast<long long>(s.hbm_bytes), 100 * s.max_link_util, short_name(s.bottleneck).c_str(), ks.c_str());
    if (args.has("--kernels")) {
      const rdu::Section& sec = mp.partition.sections[i];
      for (size_t j = 0; j < sec.kernels.size(); ++j) {
        const rdu::Kernel& k = mp.kernels[sec.kernels[j]];
        if (k.costs_nothing()) continue;
        std::printf("    %-40s %-11s pcus %4d pmus %4d  compute %10.0f  stage %10.0f  flops %.4g\n", short_name(k.name).c_str(),
                    k.family.c_str(), sec.pcus[j], sec.pmus[j], rdu::kernel_cycles(k, sec.pcus[j], sec.pmus[j], arch, mp.precision),
                    rdu::stage_cycles(k, sec.pcus[j], sec.pmus[j], arch, mp.precision), k.flops);
      }
    }
  }

  double check = -1;
  int check_ok = -1;  // -1: not checked
  if (args.has("--check")) {
    std::vector<Tensor> in = seeded_args(cs, batch);
    ResourceStore store_a, store_b;
    store_a.restore(model->variables());
    store_b.restore(model->variables());
    std::vector<Tensor> sim = rdu::simulate_functional(*cs.graph, mp, in, &store_a);
    // The comparison is with the cpu target even when the model was compiled for another.
    std::shared_ptr<Executable> cpu_exe =
        cs.executable->target() == "cpu" ? cs.executable : make_executable("cpu", cs.graph, cpu::CpuOptions{});
    std::vector<Tensor> ref = cpu_exe->run(in, &store_b);
    check = 0;
    bool ok = true;
    for (size_t i = 0; i < ref.size(); ++i) ok = numeric_match(sim.at(i), ref[i], &check) && ok;
    check_ok = ok ? 1 : 0;
    std::printf("check: numeric match with the cpu target %s (max |rdu - cpu| = %.3g over %zu outputs)\n", ok ? "yes" : "NO",
                check, ref.size());
  }
  struct SweepRow {
    double value;
    rdu::SimReport rep;
    size_t sections;
    bool valid;
  };
  std::string sweep_param;
  std::vector<SweepRow> sweep;
  if (args.has("--sweep")) {
    std::string text = args.get("--sweep");
    size_t eq = text.find('=');
    if (eq == std::string::npos || eq == 0) fail("--sweep '", text, "': expected PARAM=v1,v2,...");
    sweep_param = text.substr(0, eq);
    std::printf("\nsweep of %s\n%14s %14s %14s %10s %9s %6s\n", sweep_param.c_str(), "value", "cycles", "samples/s",
                "% peak", "sections", "valid");
    for (size_t pos = eq + 1; pos <= text.size();) {
      size_t c = text.find(',', pos);
      if (c == std::string::npos) c = text.size();
      std::string item = text.substr(pos, c - pos);
      pos = c + 1;
      if (item.empty()) continue;
      double v = 0;
      try {
        size_t used = 0;
        v = std::stod(item, &used);
        if (used != item.size()) throw std::invalid_argument(item);
      } catch (const std::exception&) {
        fail("--sweep value '", item, "' is not a number");
      }
      rdu::Arch a = arch;
      rdu::set_arch_param(a, sweep_param, v);
      rdu::RduMapping m = rdu::map_graph(*cs.graph, batch, a, mo);
      rdu::SimReport r = rdu::simulate_timing(m);
      bool valid = rdu::validate_mapping(m, &r).empty();
      sweep.push_back({v, r, m.sections.size(), valid});
      std::printf("%14.6g %14.0f %14.6g %9.2f%% %9zu %6s\n", v, r.cycles, r.seconds > 0 ? batch / r.seconds : 0,
                  100 * r.fraction_of_peak(), m.sections.size(), valid ? "yes" : "NO");
    }
  }
  if (args.has("--report")) {
    // The report compares with the other mapping (unfused for a fused run and vice versa).
    rdu::MapOptions other_mo = mo;
    other_mo.partition.fused = !mo.partition.fused;
    rdu::RduMapping other = rdu::map_graph(*cs.graph, batch, arch, other_mo);
    rdu::SimReport other_rep = rdu::simulate_timing(other);
    rdu::ReportInput ri{path, key, batch, {&mp, &rep}, {&other, &other_rep}, mo.partition.fused, problems, sweep_param};
    if (!mo.partition.fused) std::swap(ri.fused, ri.unfused);
    for (const SweepRow& r : sweep)
      ri.sweep.push_back({r.value, r.rep.seconds > 0 ? batch / r.rep.seconds : 0, r.rep.fraction_of_peak(), r.sections, r.valid});
    std::ofstream html(args.get("--report"));
    if (!(html << rdu::render_report(ri))) fail("--report '", args.get("--report"), "': cannot write the file");
    std::printf("report written to %s (%s: %.6g samples/s, %zu sections)\n", args.get("--report").c_str(),
                mo.partition.fused ? "unfused" : "fused", other_rep.seconds > 0 ? batch / other_rep.seconds : 0, other.sections.size());
  }
  if (args.has("--json")) {
    std::ofstream out(args.get("--json"));
    out.precision(17);
    out << "{\"chip\": \"" << arch.name << "\", \"mapping_source\": \"" << (use_stored ? "artifact" : "mapped")
        << "\", \"batch\": " << batch << ", \"fused\": " << (mo.partition.fused ? "true" : "false")
        << ", \"cycles\": " << rep.cycles << ", \"seconds\": " << rep.seconds << ", \"flops\": " << rep.flops
        << ", \"peak_flop_per_cycle\": " << rep.peak_flop_per_cycle << ", \"fraction_of_peak\": " << rep.fraction_of_peak()
        << ", \"hbm_bytes\": " << rep.hbm_bytes << ", \"ddr_bytes\": " << rep.ddr_bytes << ", \"sections\": " << rep.sections.size()
        << ", \"valid\": " << (problems.empty() ? "true" : "false") << ", \"check\": " << check << ", \"check_ok\": " << check_ok
        << ", \"compile_seconds\": " << mp.compile_seconds << ", \"placement_seconds\": " << mp.placement_seconds
        << ", \"clock_ghz\": " << arch.clock_ghz << ", \"pcu_peak_flop_per_cycle\": " << rep.peak_flop_per_cycle / arch.pcu.count
        << ", \"hbm_Bpc\": " << arch.hbm.effective_Bpc() << ", \"per_section\": [";
    for (size_t i = 0; i < rep.sections.size(); ++i) {
      const auto& s = rep.sections[i];
      out << (i ? ", " : "") << "{\"cycles\": " << s.cycles << ", \"pipeline_cycles\": " << s.pipeline_cycles
          << ", \"flops\": " << s.flops << ", \"pcus\": " << s.pcus << ", \"pmus\": " << s.pmus << ", \"hbm_bytes\": " << s.hbm_bytes
          << ", \"ddr_bytes\": " << s.ddr_bytes << ", \"max_link_util\": " << s.max_link_util
          << ", \"switch_cycles\": " << s.switch_cycles << ", \"bottleneck_kind\": \"" << bottleneck_kind(mp, s.bottleneck) << "\"}";
    }
    // Multiply-add FLOPs of products and convolutions alone (what TF's profiler counts for
    // MatMul/Conv2D), to cross-check the lowering against TensorFlow.
    double product_flops = 0;
    for (const rdu::Kernel& k : mp.kernels)
      if (k.family == "gemm" || k.family == "conv") product_flops += 2.0 * k.m * k.k * k.n * k.groups;
    out << "], \"product_flops\": " << product_flops << ", \"sweep_param\": \"" << sweep_param << "\", \"sweep\": [";
    for (size_t i = 0; i < sweep.size(); ++i)
      out << (i ? ", " : "") << "{\"value\": " << sweep[i].value << ", \"cycles\": " << sweep[i].rep.cycles
          << ", \"seconds\": " << sweep[i].rep.seconds << ", \"fraction_of_peak\": " << sweep[i].rep.fraction_of_peak()
          << ", \"sections\": " << sweep[i].sections << ", \"valid\": " << (sweep[i].valid ? "true" : "false") << "}";
    out << "]}\n";
  }
  return problems.empty() && check_ok != 0 ? 0 : 1;
}

}  // namespace tessera::cli
