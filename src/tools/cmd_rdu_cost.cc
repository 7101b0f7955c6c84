// `tessera rdu-cost GRAPH.ir|MODEL --chip C [--batch N] [--pcus P] [--json OUT]`: a validation
// tool. Reads a graph in IR text (ir/parser.h; e.g. a decoder layer built from shapes only,
// weights as args) or a model's optimised signature graph, maps it on the chip and prints
// each kernel's geometry and its cycles on P PCUs (default 1: the PCU as one systolic array,
// what a SCALE-Sim comparison needs), and the whole graph's FLOPs, off-chip bytes and
// simulated cycles.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "backend/rdu/figures.h"
#include "backend/rdu/simulator.h"
#include "ir/parser.h"
#include "runtime/model.h"
#include "tools/cli.h"

namespace tessera::cli {
namespace {

const char* kUsage =
    "usage: tessera rdu-cost GRAPH.ir|MODEL [--chip tiny|small|sn40l_like|FILE.json] [--batch N]\n"
    "                        [--pcus P] [--precision bf16|fp32] [--signature KEY] [--json OUT.json]\n"
    "  costs each kernel of an IR text graph (or a model signature's optimised graph) on P\n"
    "  PCUs (default 1) and maps and simulates the whole graph; for validation against\n"
    "  outside references\n";

int64_t int_flag(const Args& args, const std::string& flag, int64_t fallback) {
  std::string text = args.get(flag, std::to_string(fallback));
  try {
    size_t used = 0;
    int64_t v = std::stoll(text, &used);
    if (used == text.size() && v >= 1) return v;
  } catch (const std::exception&) {
  }
  fail(flag, " '", text, "': expected an integer >= 1");
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string shape_json(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

int cmd_rdu_cost(int argc, char** argv) {
  std::vector<std::string> flags = {"--chip", "--batch", "--pcus", "--precision", "--json", "--signature"};
  for (const auto& f : load_value_flags()) flags.push_back(f);
  Args args = parse_args(argc, argv, flags);
  if (args.has("--help") || args.positional.size() != 1) {
    std::printf("%s", kUsage);
    return args.has("--help") ? 0 : 2;
  }
  const std::string path = args.positional[0];
  std::shared_ptr<const Model> model;  // keeps a model's graph alive
  std::shared_ptr<Graph> parsed;
  const Graph* graph = nullptr;
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".ir") == 0) {
    std::ifstream in(path);
    if (!in) fail_code(ErrorCode::kNotFound, "rdu-cost: cannot open '", path, "'");
    std::stringstream text;
    text << in.rdbuf();
    parsed = with_context("rdu-cost: parsing " + path, [&] { return parse_graph(text.str()); });
    graph = parsed.get();
  } else {
    LoadOptions options;
    apply_load_flags(args, options, "cpu");
    model = Model::load(path, options);
    graph = model->compiled_signature(args.get("--signature", "serving_default")).graph.get();
  }
  int64_t batch = int_flag(args, "--batch", 1);
  int pcus = static_cast<int>(int_flag(args, "--pcus", 1));
  std::string precision = args.get("--precision", "bf16");
  if (precision != "bf16" && precision != "fp32") fail("--precision '", precision, "': expected bf16 or fp32");

  rdu::Arch arch = rdu::load_arch(args.get("--chip", "tiny"));
  rdu::MapOptions mo;
  mo.precision.bf16 = precision == "bf16";
  rdu::RduMapping mp = rdu::map_graph(*graph, batch, arch, mo);
  rdu::SimReport rep = rdu::simulate_timing(mp);
  rdu::TrafficFigures tf = rdu::traffic_figures(mp);

  std::ostringstream out;
  out.precision(17);
  out << "{\"chip\": " << json_string(arch.name) << ", \"batch\": " << batch << ", \"pcus\": " << pcus
      << ", \"flops\": " << tf.flops << ", \"product_flops\": " << tf.product_flops << ", \"hbm_read\": " << tf.hbm_read
      << ", \"hbm_write\": " << tf.hbm_write << ", \"ddr_read\": " << tf.ddr_read << ", \"offchip_bytes\": " << tf.offchip_bytes()
      << ", \"arg_bytes\": " << tf.arg_bytes << ", \"cycles\": " << rep.cycles << ", \"seconds\": " << rep.seconds
      << ", \"sections\": " << mp.sections.size() << ", \"kernels\": [";
  bool first = true;
  for (const rdu::Kernel& k : mp.kernels) {
    if (k.costs_nothing()) continue;
    out << (first ? "" : ", ") << "{\"name\": " << json_string(k.name) << ", \"op\": " << json_string(k.op)
        << ", \"family\": " << json_string(k.family) << ", \"m\": " << k.m << ", \"k\": " << k.k << ", \"n\": " << k.n
        << ", \"groups\": " << k.groups << ", \"elems\": " << k.elems << ", \"flops\": " << k.flops
        << ", \"act_in_bytes\": " << k.act_in_bytes << ", \"out_bytes\": " << k.out_bytes
        << ", \"cycles\": " << rdu::kernel_cycles(k, pcus, 1, arch, mp.precision);
    // Operand shapes and strides, so an outside tool can be given the same layer.
    out << ", \"out_shape\": " << shape_json(rdu::concrete_shape(k.node->outputs.at(0), batch));
    for (size_t i = 0; i < k.node->inputs.size() && i < 2; ++i) {
      const Value& v = k.node->inputs[i];
      out << (i ? ", \"w_shape\": " : ", \"in_shape\": ") << shape_json(rdu::concrete_shape(v.node->outputs.at(v.index), batch));
    }
    if (k.family == "conv") out << ", \"strides\": " << shape_json(k.node->attr<std::vector<int64_t>>("strides"));
    out << "}";
    first = false;
  }
  out << "]}\n";
  if (args.has("--json")) {
    std::ofstream f(args.get("--json"));
    if (!f) fail("rdu-cost: cannot write '", args.get("--json"), "'");
    f << out.str();
  } else {
    std::printf("%s", out.str().c_str());
  }
  return 0;
}

}  // namespace tessera::cli
