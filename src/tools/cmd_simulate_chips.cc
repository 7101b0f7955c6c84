// `tessera simulate MODEL --chips K --parallel data|pipeline|tensor [--microbatches M]`: the
// multi-chip report (per-chip lines, p2p traffic, the all-reduce), a sweep of it and its JSON.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "backend/rdu/multichip.h"
#include "tools/cli.h"

namespace tessera::cli {

// `--chips K`: the multi-chip report (and a sweep of it) instead of the single-chip one.
int simulate_chips(const Args& args, const Graph& graph, const rdu::Arch& arch, const rdu::MapOptions& mo, int64_t batch) {
  auto integer = [&](const char* flag, const char* dflt) {
    try {
      size_t used = 0;
      int v = std::stoi(args.get(flag, dflt), &used);
      if (used == args.get(flag, dflt).size() && v >= 1) return v;
    } catch (const std::exception&) {
    }
    fail(flag, " '", args.get(flag, dflt), "': expected an integer >= 1");
  };
  rdu::MultiChipOptions o;
  o.chips = integer("--chips", "1");
  o.microbatches = integer("--microbatches", "1");
  o.parallel = rdu::parse_parallel(args.get("--parallel", "data"));
  o.map = mo;
  if (args.has("--check")) fail("--check is not supported with --chips (the split does not change the arithmetic: check without it)");
  rdu::MultiChipReport rep = rdu::simulate_multichip(graph, batch, arch, o);
  std::printf("chip %s  batch %lld  %s  %s mapping\n%s", arch.name.c_str(), static_cast<long long>(batch),
              mo.precision.bf16 ? "bf16" : "fp32", mo.partition.fused ? "fused" : "unfused", rdu::describe(rep).c_str());
  std::string sweep;
  if (args.has("--sweep")) {
    std::string text = args.get("--sweep");
    size_t eq = text.find('=');
    if (eq == std::string::npos || eq == 0) fail("--sweep '", text, "': expected PARAM=v1,v2,...");
    std::printf("\nsweep of %s\n%14s %14s %14s %6s\n", text.substr(0, eq).c_str(), "value", "step_cycles", "samples/s", "valid");
    for (size_t pos = eq + 1; pos < text.size();) {
      size_t c = std::min(text.find(',', pos), text.size());
      std::string item = text.substr(pos, c - pos);
      char* end = nullptr;
      double v = std::strtod(item.c_str(), &end);
      if (item.empty() || *end) fail("--sweep value '", item, "' is not a number");
      pos = c + 1;
      rdu::Arch a = arch;
      rdu::set_arch_param(a, text.substr(0, eq), v);
      rdu::MultiChipReport r = rdu::simulate_multichip(graph, batch, a, o);
      std::printf("%14.6g %14.0f %14.6g %6s\n", v, r.step_cycles, r.samples_per_second(), r.valid() ? "yes" : "NO");
      sweep += std::string(sweep.empty() ? "" : ", ") + "{\"value\": " + std::to_string(v) + ", \"report\": " + rdu::to_json(r) + "}";
    }
  }
  if (args.has("--json")) std::ofstream(args.get("--json")) << "{\"multichip\": " << rdu::to_json(rep) << ", \"sweep\": [" << sweep << "]}\n";
  return rep.valid() ? 0 : 1;
}

}  // namespace tessera::cli
