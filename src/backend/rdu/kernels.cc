#include "backend/rdu/kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <unordered_map>

#include "support/error.h"

namespace tessera::rdu {
namespace {

// Ops that only relabel a buffer (or exist at compile time): no unit, no cycles.
const std::set<std::string> kMetadataOps = {
    "_Arg", "_Retval", "Const", "Identity", "IdentityN", "Reshape", "Squeeze", "ExpandDims", "NoOp",
    "Shape", "ShapeN", "Size", "Rank", "StopGradient", "Snapshot", "PreventGradient", "EnsureShape",
    "VarHandleOp", "ReadVariableOp", "Placeholder", "PlaceholderWithDefault"};
// Data movement without arithmetic: done by PMU address generators and crossbars.
const std::set<std::string> kLayoutOps = {
    "Transpose", "ConjugateTranspose", "Pad", "PadV2", "MirrorPad", "ConcatV2", "Concat", "Pack", "Unpack",
    "Slice", "StridedSlice", "Split", "SplitV", "GatherV2", "Gather", "ResourceGather", "Tile", "BroadcastTo",
    "Fill", "ZerosLike", "OnesLike", "Cast", "OneHot", "Reverse", "ReverseV2", "SpaceToDepth", "DepthToSpace"};
const std::set<std::string> kReduceOps = {"Sum", "Mean", "Max", "Min", "Prod", "ArgMax", "ArgMin", "All", "Any"};

int64_t elems_of(const Shape& s) { return s.empty() ? 1 : num_elements(s); }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Lowerer {
  int64_t batch;
  Precision precision;

  Shape shape(const Value& v) const { return concrete_shape(v.node->outputs.at(v.index), batch); }
  int64_t bytes(const Value& v) const {
    DType t = v.node->outputs.at(v.index).dtype;
    int64_t size = (t == DType::kFloat32 || t == DType::kBFloat16 || t == DType::kFloat16) ? precision.float_bytes()
                   : is_pod(t) ? static_cast<int64_t>(dtype_size(t)) : 8;
    const int64_t elems = elems_of(shape(v)), width = std::max<int64_t>(size, 1);
    TS_CHECK(elems <= std::numeric_limits<int64_t>::max() / width, v.node->label(), ": output of shape ",
             shape_str(shape(v)), " is too large to cost");
    return elems * width;
  }
  int64_t epilogue_ops(const Node& n) const {
    return n.attr_or<bool>("has_bias", false) + n.attr_or<bool>("has_residual", false) +
           (n.attr_or<std::string>("activation", "").empty() ? 0 : 1);
  }

  void gemm(Kernel& k, const Node& n) const {
    Shape out = shape(Value{const_cast<Node*>(&n), 0}), a = shape(n.inputs.at(0)), b = shape(n.inputs.at(1));
    TS_CHECK(out.size() >= 2 || n.op == "TsFusedMatMul", n.label(), ": matmul result of rank ", out.size());
    bool ta = n.attr_or<bool>("transpose_a", n.attr_or<bool>("adj_x", false));
    bool tb = n.attr_or<bool>("transpose_b", n.attr_or<bool>("adj_y", false));
    k.n = out.back();
    if (n.op == "BatchMatMulV2" || n.op == "BatchMatMul" || n.op == "BatchMatMulV3") {
      k.m = out[out.size() - 2];
      k.groups = elems_of(out) / (k.m * k.n);
      k.k = ta ? a[a.size() - 2] : a.back();
    } else {
      k.m = elems_of(out) / k.n;
      k.k = ta ? a[0] : a.back();
    }
    (void)tb;
    k.family = "gemm";
  }

  void conv(Kernel& k, const Node& n) const {
    Shape out = shape(Value{const_cast<Node*>(&n), 0}), f = shape(n.inputs.at(1));
    TS_CHECK(f.size() == 4 && out.size() == 4, n.label(), ": conv filter/result must be rank 4");
    k.k = f[0] * f[1] * f[2];  // implicit GEMM: im2col rows of kh*kw*cin
    k.n = f[3];
    k.m = elems_of(out) / k.n;
    k.family = "conv";
  }

  Kernel lower(const Node& n) const {
    Kernel k;
    k.node = &n;
    k.name = n.name;
    k.op = n.op;
    int64_t out_elems = 0;
    for (int i = 0; i < n.num_outputs(); ++i) {
      k.out_bytes += bytes(Value{const_cast<Node*>(&n), i});
      out_elems += elems_of(shape(Value{const_cast<Node*>(&n), i}));
    }
    for (const Value& in : n.inputs) (in.node->op == "Const" ? k.weight_bytes : k.act_in_bytes) += bytes(in);
    const std::string& op = n.op;
    if (kMetadataOps.count(op)) {
      k.engine = Engine::kNone;
      k.family = "metadata";
      k.weight_bytes = k.act_in_bytes = 0;
      if (op != "Const") k.out_bytes = 0;
      return k;
    }
    if (op == "MatMul" || op == "BatchMatMulV2" || op == "BatchMatMul" || op == "BatchMatMulV3" || op == "TsFusedMatMul" ||
        op == "Conv2D" || op == "TsFusedConv2D") {
      if (op == "Conv2D" || op == "TsFusedConv2D") conv(k, n);
      else gemm(k, n);
      k.engine = Engine::kSystolic;
      k.ops = epilogue_ops(n);  // bias/residual/activation in the tail stage, overlapped
      k.flops = 2.0 * k.m * k.k * k.n * k.groups + static_cast<double>(k.ops) * out_elems;
      return k;
    }
    if (op == "Conv2DBackpropInput" || op == "Conv2DBackpropFilter") {
      // Training graphs: the same implicit GEMM as the forward convolution, shaped from
      // out_backprop [N,OH,OW,Cout] and the filter [KH,KW,Cin,Cout] (input_sizes may be
      // unknown until run time). Data: [N*OH*OW, Cout] x [Cout, KH*KW*Cin] then col2im;
      // filter: [KH*KW*Cin, N*OH*OW] x [N*OH*OW, Cout].
      Shape dy = shape(n.inputs.at(2));
      Shape f = op == "Conv2DBackpropInput" ? shape(n.inputs.at(1)) : shape(Value{const_cast<Node*>(&n), 0});
      TS_CHECK(f.size() == 4 && dy.size() == 4, n.label(), ": conv gradient filter/out_backprop must be rank 4");
      const int64_t rows = dy[0] * dy[1] * dy[2], taps = f[0] * f[1] * f[2];
      if (op == "Conv2DBackpropInput") k.m = rows, k.k = f[3], k.n = taps;
      else k.m = taps, k.k = rows, k.n = f[3];
      k.family = "conv";
      k.engine = Engine::kSystolic;
      k.flops = 2.0 * k.m * k.k * k.n;
      return k;
    }
    if (op == "DepthwiseConv2dNative" || op == "TsFusedDepthwiseConv2D") {
      Shape f = shape(n.inputs.at(1));
      k.engine = Engine::kSimd;
      k.family = "depthwise";
      k.elems = out_elems;
      k.ops = 2 * f[0] * f[1] + epilogue_ops(n);  // a multiply-add per tap
      k.flops = static_cast<double>(k.ops) * out_elems;
      return k;
    }
    if (op == "TsAttention") {
      Shape q = shape(n.inputs.at(0)), kk = shape(n.inputs.at(1)), v = shape(n.inputs.at(2));
      TS_CHECK(q.size() == 4 && kk.size() == 4 && v.size() == 4, n.label(), ": attention operands must be rank 4");
      int64_t B = q[0], Sq = q[1], H = q[2], D = q[3], Sk = kk[1], Dv = v[3];
      k.engine = Engine::kSystolic;
      k.family = "attention";
      k.groups = B * H;
      k.m = Sq;
      k.k = D;
      k.n = Sk;                                  // scores; the second product uses k=Sk, n=Dv
      k.elems = B * H * Sq * Sk;                 // softmax on the scores
      k.ops = 5 + (n.attr_or<bool>("has_mask", false) ? 1 : 0) + 1;  // scale, (mask), max, sub, exp, sum, div
      k.reduce_len = Sk;
      k.flops = 2.0 * B * H * Sq * Sk * D + 2.0 * B * H * Sq * Sk * Dv + static_cast<double>(k.ops) * k.elems;
      return k;
    }
    if (kLayoutOps.count(op)) {
      k.engine = Engine::kPmu;
      k.family = "layout";
      k.pmu_bytes = k.out_bytes;
      return k;
    }
    k.engine = Engine::kSimd;
    if (op == "Softmax" || op == "LogSoftmax") {
      Shape s = shape(n.inputs.at(0));
      k.family = "softmax";
      k.elems = elems_of(s);
      k.ops = 5;  // max, subtract, exp (tail), sum, divide
      k.reduce_len = s.empty() ? 1 : s.back();
    } else if (op == "TsLayerNorm" || op == "FusedBatchNormV3" || op == "FusedBatchNorm") {
      Shape s = shape(n.inputs.at(0));
      k.family = "norm";
      k.elems = elems_of(s);
      k.ops = op == "TsLayerNorm" ? 8 : 4;  // mean, var, rsqrt (tail), scale, shift
      k.reduce_len = op == "TsLayerNorm" && !s.empty() ? s.back() : 0;
    } else if (kReduceOps.count(op)) {
      Shape s = shape(n.inputs.at(0));
      k.family = "reduce";
      k.elems = elems_of(s);
      k.ops = 1;
      k.reduce_len = std::max<int64_t>(1, k.elems / std::max<int64_t>(1, out_elems));
    } else if (op == "MaxPool" || op == "AvgPool") {
      const auto& ks = n.attr<std::vector<int64_t>>("ksize");
      int64_t window = 1;
      for (int64_t d : ks) window *= d;
      k.family = "pool";
      k.elems = out_elems;
      k.ops = window;
    } else if (op == "TsElementwise") {
      // One pass over the largest output (the iteration space); every program entry is a
      // stage, an exported entry included (out_bytes counts each output's write).
      k.family = "elementwise";
      k.elems = 0;
      for (int i = 0; i < n.num_outputs(); ++i)
        k.elems = std::max(k.elems, elems_of(shape(Value{const_cast<Node*>(&n), i})));
      k.ops = static_cast<int64_t>(n.attr<std::vector<std::string>>("program").size());
    } else {
      k.family = "elementwise";  // plain elementwise and anything else: one op per output element
      k.elems = out_elems;
      k.ops = 1;
    }
    k.flops = static_cast<double>(k.ops) * k.elems;
    return k;
  }
};

// Cycles of a weight-stationary systolic product on `u` PCUs: each pass holds a
// stages x lanes block of the [k, n] operand and streams the m rows through it. A pass pays
// the array's skew (rows enter one stage later per stage, sums leave one lane later per lane:
// stages + lanes - 1 cycles of fill and drain, as SCALE-Sim's WS model shows) or the
// configured pipeline latency if that is longer; the next block of weights is assumed loaded
// behind the current pass (double-buffered).
double systolic_cycles(int64_t m, int64_t kk, int64_t n, int64_t groups, int u, const Arch& arch) {
  int64_t passes = groups * ceil_div(kk, arch.pcu.stages) * ceil_div(n, arch.pcu.lanes);
  int64_t lat = std::max<int64_t>(arch.pcu.pipeline_latency_cycles, arch.pcu.stages + arch.pcu.lanes - 1);
  if (u <= passes) return static_cast<double>(ceil_div(passes, u)) * (m + lat);
  int64_t split = std::min<int64_t>(u / passes, m);  // spare PCUs split the rows of a pass
  return static_cast<double>(ceil_div(m, split) + lat);
}

double simd_cycles(int64_t elems, int64_t ops, int64_t reduce_len, int u, const Arch& arch) {
  if (elems == 0) return 0;
  int64_t vectors = ceil_div(elems, arch.pcu.lanes);
  int64_t passes = ceil_div(std::max<int64_t>(ops, 1), arch.pcu.stages);  // longer programs re-enter the pipeline
  double c = static_cast<double>(ceil_div(vectors, u)) * passes + arch.pcu.pipeline_latency_cycles;
  if (reduce_len > 1) c += std::ceil(std::log2(std::min<int64_t>(reduce_len, arch.pcu.lanes)));
  return c;
}

}  // namespace

Shape concrete_shape(const ValueInfo& info, int64_t batch) {
  if (!info.shape.known_rank) return {1};
  Shape s;
  for (int64_t d : info.shape.dims) s.push_back(d < 0 ? batch : d);
  return s;
}

std::vector<Kernel> lower_graph(const Graph& graph, int64_t batch, const Precision& precision) {
  Lowerer lw{batch, precision};
  std::vector<Node*> order = graph.topo_order();
  std::unordered_map<const Node*, int> index;
  std::vector<Kernel> kernels;
  for (Node* n : order) {
    Kernel k = with_context("rdu lowering of " + n->label(), [&] { return lw.lower(*n); });
    for (size_t ii = 0; ii < n->inputs.size(); ++ii) {
      const Value& in = n->inputs[ii];
      if (in.node->op == "_Arg") {
        auto it = std::find(graph.args.begin(), graph.args.end(), in.node);
        if (it != graph.args.end()) k.graph_args.push_back(static_cast<int>(it - graph.args.begin()));
      }
      auto p = index.find(in.node);
      if (p != index.end() && in.node->op != "Const") {
        k.producers.push_back(p->second);
        k.producer_bytes.push_back(lw.bytes(in));
        k.producer_whole.push_back((k.engine == Engine::kSystolic && ii >= 1 && k.family != "conv") ||
                                   n->op == "Transpose");
      }
    }
    index[n] = static_cast<int>(kernels.size());
    kernels.push_back(std::move(k));
  }
  for (const Value& r : graph.results) kernels.at(index.at(r.node)).is_result = true;
  return kernels;
}

double kernel_cycles(const Kernel& k, int pcus, int pmus, const Arch& arch, const Precision& precision) {
  // fp32 runs the same pipelines at the configured lower rate.
  double rate = precision.bf16 ? 1.0 : arch.pcu.bf16_flop_per_cycle / arch.pcu.fp32_flop_per_cycle;
  double systolic_rate = 2.0 * arch.pcu.lanes * arch.pcu.stages / arch.pcu.bf16_flop_per_cycle;
  switch (k.engine) {
    case Engine::kNone: return 0;
    case Engine::kPmu: return std::ceil(static_cast<double>(k.pmu_bytes) / (std::max(pmus, 1) * arch.pmu.read_Bpc));
    case Engine::kSimd: return rate * simd_cycles(k.elems, k.ops, k.reduce_len, std::max(pcus, 1), arch);
    case Engine::kSystolic: {
      int u = std::max(pcus, 1);
      double c = systolic_cycles(k.m, k.k, k.n, k.groups, u, arch);
      if (k.family == "attention") {
        int64_t dv = k.node ? concrete_shape(k.node->inputs.at(2).node->outputs.at(k.node->inputs.at(2).index), 1).back() : k.n;
        c += systolic_cycles(k.m, k.n, dv, k.groups, u, arch);
        c += simd_cycles(k.elems, k.ops, k.reduce_len, u, arch);
      }
      return rate * systolic_rate * c;
    }
  }
  return 0;
}

double stage_cycles(const Kernel& k, int pcus, int pmus, const Arch& arch, const Precision& precision) {
  if (k.engine == Engine::kNone) return 0;
  double c = kernel_cycles(k, pcus, pmus, arch, precision);
  int readers = std::max(1, k.engine == Engine::kPmu ? pmus : pcus);
  c = std::max(c, static_cast<double>(k.act_in_bytes) / (readers * arch.mesh.vector_link_Bpc));
  return std::max(c, static_cast<double>(k.out_bytes) / (std::max(1, pmus) * arch.pmu.write_Bpc));
}

int useful_pcus(const Kernel& k, const Arch& arch) {
  switch (k.engine) {
    case Engine::kNone:
    case Engine::kPmu: return 0;
    case Engine::kSimd: return static_cast<int>(std::clamp<int64_t>(ceil_div(k.elems, arch.pcu.lanes), 1, arch.pcu.count));
    case Engine::kSystolic: {
      int64_t passes = k.groups * ceil_div(k.k, arch.pcu.stages) * ceil_div(k.n, arch.pcu.lanes);
      return static_cast<int>(std::clamp<int64_t>(passes * std::max<int64_t>(k.m, 1), 1, arch.pcu.count));
    }
  }
  return 0;
}

int64_t kernel_sram_bytes(const Kernel& k, int tiles, int buffer_tiles) {
  if (k.engine == Engine::kNone) return 0;
  int64_t tile = ceil_div(k.act_in_bytes + k.out_bytes, std::max(tiles, 1));
  return k.weight_bytes + buffer_tiles * tile;
}

}  // namespace tessera::rdu
