// `tessera compile MODEL -o model.tsr`: optimise and compile a model's signatures for a target
// and write the executable artifact. `tessera passes`: the passes and the default pipeline.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "backend/cpu/isa.h"
#include "backend/rdu/mapping_codec.h"
#include "backend/rdu/validator.h"
#include "ir/printer.h"
#include "passes/pass.h"
#include "runtime/model.h"
#include "runtime/version.h"
#include "tools/cli.h"

namespace tessera::cli {
namespace {

const char* kCompileUsage =
    "usage: tessera compile MODEL -o OUT.tsr [--target cpu|reference] [--signature KEY]...\n"
    "                       [--passes a,b|none|default] [--dump-ir-after PASS|all] [--isa ISA]\n"
    "                       [--precision fp32|bf16] [--tags serve] [--chip C --batch N [--unfused]]\n"
    "  MODEL            a SavedModel directory or a .pb/.pbtxt GraphDef\n"
    "  -o, --output     the .tsr to write\n"
    "  --target         cpu (default), reference or rdu\n"
    "  --chip, --batch  rdu: also map each signature onto chip C (preset or .json) for batch N\n"
    "                   and store the mapping in the .tsr ('simulate' and rdu runs reuse it)\n"
    "  --signature KEY  compile only these signatures (default: all)\n"
    "  --passes         passes to run (comma-separated; see 'tessera passes'), none, or default\n"
    "  --dump-ir-after  print the IR to stdout after this pass (or after every pass: all)\n"
    "  --isa            avx512, avx2 or scalar: the ISA the weights are packed for\n"
    "  --precision      cpu: fp32 (default) or bf16, matmul/conv in bf16 with f32 accumulation\n"
    "                   (needs AVX-512 BF16; docs/bf16.md); rdu: the mapping's timing precision\n"
    "                   (bf16 default, or fp32)\n"
    "  --threads N, --inter-op N  accepted; the .tsr does not store them (give them to run/bench)\n";

}  // namespace

int cmd_compile(int argc, char** argv) {
  for (int i = 0; i < argc; ++i)
    if (std::string(argv[i]) == "-o") argv[i] = const_cast<char*>("--output");
  std::vector<std::string> flags = {"--output", "--signature", "--dump-ir-after", "--chip", "--batch", "--precision"};
  for (const auto& f : load_value_flags()) flags.push_back(f);
  Args args = parse_args(argc, argv, flags);
  if (args.has("--help") || args.positional.size() != 1 || !args.has("--output")) {
    std::printf("%s", kCompileUsage);
    return args.has("--help") ? 0 : 2;
  }
  const std::string model_path = args.positional[0], out = args.get("--output");
  if (is_artifact_file(model_path)) fail("'", model_path, "' is already a compiled .tsr artifact");
  LoadOptions options;
  apply_load_flags(args, options, "cpu");
  if (options.target != "cpu") options.precision.clear();  // rdu: --precision is the mapping's
  options.passes = options.passes ? options.passes : std::optional(passes::default_pipeline());
  options.use_cache = false;
  if (args.has("--dump-ir-after")) {
    std::string which = args.get("--dump-ir-after");
    if (which != "all") {
      passes::find_pass(which);
      bool listed = false;
      for (const auto& p : *options.passes) listed = listed || p == which;
      if (!listed) fail("--dump-ir-after ", which, ": that pass is not in the pipeline being run");
    }
    options.after_pass = [which](const std::string& pass, const Graph& g) {
      if (which != "all" && which != pass) return;
      std::printf("// ---- IR of signature '%s' after pass %s ----\n%s", g.name.c_str(), pass.c_str(),
                  print_graph(g).c_str());
      std::fflush(stdout);
    };
  }
  auto t0 = std::chrono::steady_clock::now();
  auto model = Model::load(model_path, options);
  if (!model->compiled()) fail("internal: model was not loaded for compilation");

  std::vector<std::string> keys = args.all("--signature");
  if (keys.empty())
    for (const auto& [k, s] : model->signatures()) keys.push_back(k);
  std::map<std::string, CompiledSignature> compiled;
  for (const auto& k : keys) compiled[k] = model->compiled_signature(k);
  double compile_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // rdu: the mapping for one chip and batch goes into the artifact (docs/rdu.md "Artifact").
  std::map<std::string, std::string> rdu_mappings;
  bool rdu_flags = args.has("--chip") || args.has("--batch") || args.has("--unfused") ||
                   (args.has("--precision") && options.target == "rdu");
  if (rdu_flags && options.target != "rdu") fail("--chip/--batch/--unfused need --target rdu");
  if (rdu_flags) {
    if (!args.has("--chip") || !args.has("--batch")) fail("--target rdu: give both --chip and --batch to store a mapping");
    int64_t batch = 0;
    try {
      batch = std::stoll(args.get("--batch"));
    } catch (const std::exception&) {
    }
    if (batch < 1) fail("--batch '", args.get("--batch"), "': expected an integer >= 1");
    std::string precision = args.get("--precision", "bf16");
    if (precision != "bf16" && precision != "fp32") fail("--precision '", precision, "': expected bf16 or fp32");
    rdu::Arch arch = rdu::load_arch(args.get("--chip"));
    rdu::MapOptions mo;
    mo.precision.bf16 = precision == "bf16";
    mo.partition.fused = !args.has("--unfused");
    for (const auto& [key, cs] : compiled) {
      rdu::RduMapping mp = rdu::map_graph(*cs.graph, batch, arch, mo);
      rdu::SimReport rep = rdu::simulate_timing(mp);
      std::vector<std::string> problems = rdu::validate_mapping(mp, &rep);
      if (!problems.empty()) fail("signature '", key, "': the rdu mapping fails the validator: ", problems.front());
      rdu_mappings[key] = rdu::encode_mapping(mp, mo, rep);
      std::fprintf(stderr, "rdu mapping of '%s' on %s, batch %lld: %zu sections, %.0f cycles, %.6g samples/s\n", key.c_str(),
                   arch.name.c_str(), static_cast<long long>(batch), mp.sections.size(), rep.cycles,
                   rep.seconds > 0 ? batch / rep.seconds : 0);
    }
    compile_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  ArtifactInfo info;
  info.target = options.target;
  info.isa = options.target == "cpu" ? cpu::isa_name(cpu::resolve_isa(options.isa)) : "";
  info.precision = options.target == "cpu" && !options.precision.empty() ? options.precision : "fp32";
  info.onednn_version = onednn_version_string();
  info.tessera_version = kTesseraVersion;
  info.source = model_path;
  info.passes = *options.passes;
  write_artifact(out, info, compiled, model->variables(), rdu_mappings);
  auto bytes = std::filesystem::file_size(out);
  std::fprintf(stderr, "compiled %zu signature(s) of '%s' for %s%s%s%s in %.2f s -> '%s' (%.1f MiB)\n",
               compiled.size(), model_path.c_str(), info.target.c_str(), info.isa.empty() ? "" : "/", info.isa.c_str(),
               info.precision == "bf16" ? "/bf16" : "", compile_s, out.c_str(), bytes / 1048576.0);
  return 0;
}

int cmd_passes(int argc, char** argv) {
  Args args = parse_args(argc, argv, {});
  if (args.has("--help")) {
    std::printf("usage: tessera passes\n  lists the optimisation passes; * marks the default pipeline\n");
    return 0;
  }
  std::vector<std::string> defaults = passes::default_pipeline();
  std::set<std::string> in_default(defaults.begin(), defaults.end());
  for (const auto& p : passes::all_passes())
    std::printf("%s %-28s %s\n", in_default.count(p.name) ? "*" : " ", p.name.c_str(), p.summary.c_str());
  std::printf("default pipeline:");
  for (const auto& p : defaults) std::printf(" %s", p.c_str());
  std::printf("%s\n", defaults.empty() ? " (empty)" : "");
  return 0;
}

}  // namespace tessera::cli
