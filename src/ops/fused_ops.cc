// Tessera's own ops, the vocabulary the fusion passes rewrite TensorFlow patterns into
// (docs/fused_ops.md). Their reference kernels run the registered TF ops' kernels on whole
// tensors wherever a TF op exists, so an optimised graph computes what the unfused one did
// (bit for bit for matmul/conv + bias + activation) and the semantics live in one place.
#include <cmath>
#include <map>

#include "ops/elementwise_util.h"
#include "ops/op_helpers.h"

namespace tessera {
namespace {

// Runs registered op `op` on `inputs` with `attrs` (plus the op's defaults and T=float32).
std::vector<Tensor> run_ops(const std::string& op, std::vector<Tensor> inputs, AttrMap attrs = {}) {
  const OpDef* def = OpRegistry::global().find(op);
  TS_CHECK(def && def->compute, "fused op kernel: no kernel for '", op, "'");
  Node node;
  node.name = "fused/" + op;
  node.op = op;
  node.def = def;
  node.attrs = std::move(attrs);
  for (const auto& [key, value] : def->attr_defaults)
    if (!node.attrs.count(key)) node.attrs[key] = value;
  if (!node.attrs.count("T")) node.attrs["T"] = DType::kFloat32;
  KernelContext ctx{node, inputs, {}};
  ctx.call = [](const std::string& fn, std::vector<Tensor>) -> std::vector<Tensor> {
    fail("function '", fn, "' cannot be called from a fused op");
  };
  def->compute(ctx);
  return std::move(ctx.outputs);
}
Tensor run_op(const std::string& op, std::vector<Tensor> inputs, AttrMap attrs = {}) {
  return run_ops(op, std::move(inputs), std::move(attrs)).at(0);
}

// Runs op `op`'s shape inference for this node's first `n` inputs and its attributes.
ValueInfo infer_as(InferContext& c, const std::string& op, size_t n) {
  const OpDef* def = OpRegistry::global().find(op);
  TS_CHECK(def, "no op '", op, "'");
  Node tmp;
  tmp.name = c.node.name;
  tmp.op = op;
  tmp.def = def;
  tmp.attrs = c.node.attrs;
  for (const auto& [key, value] : def->attr_defaults)
    if (!tmp.attrs.count(key)) tmp.attrs[key] = value;
  tmp.inputs.assign(c.node.inputs.begin(), c.node.inputs.begin() + static_cast<long>(n));
  InferContext ctx{tmp};
  def->infer(ctx);
  return tmp.outputs.at(0);
}

void check_f32(InferContext& c, size_t i, const char* what) {
  DType t = c.input(i).dtype;
  TS_CHECK(t == DType::kFloat32, what, " must be float32, got ", dtype_name(t));
}

// ---- activations ---------------------------------------------------------------------------

const std::vector<std::string> kActivations = {"",     "Relu",    "Relu6",   "Elu",
                                               "Selu", "LeakyRelu", "Sigmoid", "Tanh",
                                               "Swish", "GeluExact", "GeluTanh"};

void check_activation(const std::string& act) {
  for (const auto& a : kActivations)
    if (a == act) return;
  fail("unknown activation '", act, "'");
}

float gelu(float x, bool approximate) {
  if (approximate) {
    const float k = std::sqrt(2.0f / static_cast<float>(M_PI));
    return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
  }
  return 0.5f * x * (1.0f + std::erf(x * static_cast<float>(M_SQRT1_2)));
}

Tensor map_f32(const Tensor& x, float (*f)(float, bool), bool flag) {
  Tensor out(DType::kFloat32, x.shape());
  const float* a = x.data<float>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < x.num_elements(); ++i) o[i] = f(a[i], flag);
  return out;
}

Tensor apply_activation(const Tensor& x, const std::string& act, float alpha) {
  if (act.empty()) return x;
  if (act == "LeakyRelu") return run_op("LeakyRelu", {x}, {{"alpha", alpha}});
  if (act == "Swish") return run_op("Mul", {x, run_op("Sigmoid", {x})});
  if (act == "GeluExact") return map_f32(x, gelu, false);
  if (act == "GeluTanh") return map_f32(x, gelu, true);
  check_activation(act);
  return run_op(act, {x});
}

// ---- matmul / conv + bias + residual + activation ------------------------------------------

AttrMap epilogue_defaults(AttrMap m) {
  m["has_bias"] = false;
  m["has_residual"] = false;
  m["activation"] = std::string();
  m["alpha"] = 0.2f;
  m["T"] = DType::kFloat32;
  return m;
}

// Checks the optional bias/residual inputs against the main result `out` (last dim = channels).
void infer_epilogue(InferContext& c, const ValueInfo& out) {
  bool has_bias = c.attr<bool>("has_bias"), has_residual = c.attr<bool>("has_residual");
  check_activation(c.attr<std::string>("activation"));
  size_t want = 2 + (has_bias ? 1 : 0) + (has_residual ? 1 : 0);
  TS_CHECK(c.num_inputs() == want, "expected ", want, " inputs (has_bias=", has_bias,
           ", has_residual=", has_residual, "), got ", c.num_inputs());
  for (size_t i = 0; i < want; ++i) check_f32(c, i, "every input");
  size_t next = 2;
  if (has_bias) {
    const PartialShape& b = c.input(next++).shape;
    TS_CHECK(!b.known_rank || b.rank() == 1, "bias must be a vector, got ", b.str());
    int64_t n = out.shape.known_rank && out.shape.rank() > 0 ? out.shape.dims.back() : -1;
    TS_CHECK(!b.known_rank || n < 0 || b.dims[0] < 0 || b.dims[0] == n, "bias has ", b.str(),
             " for ", n, " channels");
  }
  PartialShape shape = out.shape;
  if (has_residual) {
    const PartialShape& r = c.input(next).shape;
    TS_CHECK(!r.known_rank || !shape.known_rank || r.rank() == shape.rank(), "residual ",
             r.str(), " does not match the result ", shape.str());
    if (r.known_rank && shape.known_rank)
      for (size_t i = 0; i < shape.dims.size(); ++i) {
        TS_CHECK(r.dims[i] < 0 || shape.dims[i] < 0 || r.dims[i] == shape.dims[i], "residual ",
                 r.str(), " does not match the result ", shape.str());
        if (shape.dims[i] < 0) shape.dims[i] = r.dims[i];
      }
    if (!shape.known_rank) shape = r;
  }
  c.set_output(0, DType::kFloat32, shape);
}

Tensor apply_epilogue(KernelContext& c, Tensor y) {
  size_t next = 2;
  if (c.attr<bool>("has_bias")) y = run_op("BiasAdd", {y, c.input(next++)});
  if (c.attr<bool>("has_residual")) {
    const Tensor& r = c.input(next);
    TS_CHECK(r.shape() == y.shape(), "residual ", shape_str(r.shape()), " does not match the result ",
             shape_str(y.shape()));
    y = run_op("AddV2", {y, r});
  }
  return apply_activation(y, c.attr<std::string>("activation"), c.attr<float>("alpha"));
}

void infer_fused_matmul(InferContext& c) {
  const PartialShape& a = c.input(0).shape;
  const PartialShape& b = c.input(1).shape;
  bool ta = c.attr<bool>("transpose_a"), tb = c.attr<bool>("transpose_b");
  TS_CHECK(!b.known_rank || b.rank() == 2, "b must be a matrix, got ", b.str());
  TS_CHECK(!a.known_rank || a.rank() >= 2, "a must have rank >= 2, got ", a.str());
  TS_CHECK(!ta || !a.known_rank || a.rank() == 2, "transpose_a needs a rank-2 a, got ", a.str());
  int64_t n = b.known_rank ? b.dims[tb ? 0 : 1] : -1;
  int64_t kb = b.known_rank ? b.dims[tb ? 1 : 0] : -1;
  PartialShape out;
  if (a.known_rank) {
    int64_t ka = ta ? a.dims[0] : a.dims.back();
    TS_CHECK(ka < 0 || kb < 0 || ka == kb, "Matrix size-incompatible: a ", a.str(), ", b ", b.str());
    std::vector<int64_t> dims = a.dims;
    if (ta) dims = {a.dims[1]};
    else dims.pop_back();
    dims.push_back(n);
    out = PartialShape(dims);
  }
  infer_epilogue(c, {DType::kFloat32, out});
}

void fused_matmul_kernel(KernelContext& c) {
  const Tensor& a = c.input(0);
  TS_CHECK(a.rank() >= 2, "a must have rank >= 2, got ", shape_str(a.shape()));
  Shape lead(a.shape().begin(), a.shape().end() - 1);
  int64_t rows = 1;
  for (int64_t d : lead) rows *= d;
  Tensor a2 = a.rank() == 2 ? a : a.reshaped({rows, a.shape().back()});
  Tensor y = run_op("MatMul", {a2, c.input(1)},
                    {{"transpose_a", c.attr<bool>("transpose_a")},
                     {"transpose_b", c.attr<bool>("transpose_b")}});
  if (a.rank() > 2) {
    lead.push_back(y.dim(1));
    y = y.reshaped(lead);
  }
  c.set_output(0, apply_epilogue(c, y));
}

void register_conv_like(OpRegistry& r, const std::string& name, const std::string& base) {
  // Families register in order (ops.cc), so the base op is already in `r`.
  const OpDef* def = r.find(base);
  TS_CHECK(def, "fused ops must register after '", base, "'");
  AttrMap defaults = epilogue_defaults(def->attr_defaults);
  defaults.erase("use_cudnn_on_gpu");
  r.add({.name = name, .attr_defaults = defaults,
         .infer = [base](InferContext& c) { infer_epilogue(c, infer_as(c, base, 2)); },
         .compute = [base](KernelContext& c) {
           AttrMap attrs;
           for (const char* k : {"strides", "padding", "explicit_paddings", "data_format", "dilations"})
             if (c.node.has_attr(k)) attrs[k] = c.node.attrs.at(k);
           c.set_output(0, apply_epilogue(c, run_op(base, {c.input(0), c.input(1)}, attrs)));
         },
         .rowwise = ops::rows_from_input0});
}

// ---- TsElementwise -------------------------------------------------------------------------
// A typed straight-line program (docs/fused_ops.md): float32 and bool values, outputs named by
// `outputs` (entry indices; default the last entry), each with the shape its own operands
// broadcast to, as the unfused ops would have produced.

enum class Ty { kF32, kBool };

// Operand types and result type of each program op. Comparisons also take two bools for
// Equal/NotEqual (checked separately).
struct Sig {
  std::vector<Ty> operands;
  Ty result;
};

const std::map<std::string, Sig>& signatures() {
  static const std::map<std::string, Sig> sigs = [] {
    std::map<std::string, Sig> s;
    for (const char* op : {"Neg", "Abs", "Exp", "Log", "Sqrt", "Rsqrt", "Square", "Reciprocal", "Tanh", "Sigmoid",
                           "Relu", "Relu6", "Elu", "Selu", "Erf", "Erfc", "Softplus", "Floor", "Ceil", "ZerosLike",
                           "OnesLike"})
      s[op] = {{Ty::kF32}, Ty::kF32};
    for (const char* op : {"AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Pow", "SquaredDifference"})
      s[op] = {{Ty::kF32, Ty::kF32}, Ty::kF32};
    s["LeakyRelu"] = {{Ty::kF32, Ty::kF32}, Ty::kF32};  // alpha: a literal
    for (const char* op : {"Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual"})
      s[op] = {{Ty::kF32, Ty::kF32}, Ty::kBool};
    s["LogicalAnd"] = s["LogicalOr"] = {{Ty::kBool, Ty::kBool}, Ty::kBool};
    s["LogicalNot"] = {{Ty::kBool}, Ty::kBool};
    s["SelectV2"] = {{Ty::kBool, Ty::kF32, Ty::kF32}, Ty::kF32};
    s["Cast"] = {{Ty::kBool}, Ty::kF32};  // bool -> float32 only
    return s;
  }();
  return sigs;
}

const char* ty_name(Ty t) { return t == Ty::kF32 ? "float32" : "bool"; }

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// One parsed program entry. Operands: kind 'i' (input), 'r' (earlier result), 'f' (literal).
struct Operand {
  char kind = 'f';
  int index = 0;
  float literal = 0;
};
struct Entry {
  std::string op;
  std::vector<Operand> operands;
  Ty type = Ty::kF32;
  std::vector<char> deps;  // deps[i]: the entry reads input i, directly or through earlier entries
};
struct Program {
  std::vector<Entry> entries;
  std::vector<int64_t> outputs;
};

Operand parse_operand(const std::string& t, size_t k, const std::string& line) {
  Operand o;
  try {
    size_t used = 0;
    if (t[0] == '$' || t[0] == '%') {
      o.kind = t[0] == '$' ? 'i' : 'r';
      o.index = std::stoi(t.substr(1), &used);
      TS_CHECK(used + 1 == t.size(), "bad operand");
    } else {
      o.literal = std::stof(t, &used);
      TS_CHECK(used == t.size(), "bad operand");
    }
  } catch (const std::logic_error&) {
    fail("program entry ", k, " '", line, "': bad operand '", t, "'");
  }
  return o;
}

// Parses and type-checks `program` against the input types; errors name the entry.
Program parse_program(const std::vector<std::string>& program, const std::vector<Ty>& inputs,
                      const std::vector<int64_t>& outputs) {
  TS_CHECK(!program.empty(), "empty program");
  const int64_t n_inputs = static_cast<int64_t>(inputs.size());
  Program p;
  for (size_t k = 0; k < program.size(); ++k) {
    std::vector<std::string> w = split_words(program[k]);
    TS_CHECK(!w.empty(), "program entry ", k, " is empty");
    Entry e{w[0], {}, Ty::kF32, std::vector<char>(inputs.size(), 0)};
    auto sig = signatures().find(e.op);
    TS_CHECK(sig != signatures().end(), "program entry ", k, " '", program[k], "': unknown op '", e.op, "'");
    const size_t arity = sig->second.operands.size();
    TS_CHECK(w.size() == arity + 1, "program entry ", k, " '", program[k], "': ", e.op, " takes ", arity,
             " operands");
    std::vector<Ty> types;
    for (size_t j = 1; j < w.size(); ++j) {
      Operand o = parse_operand(w[j], k, program[k]);
      Ty t = Ty::kF32;
      if (o.kind == 'i') {
        TS_CHECK(o.index >= 0 && o.index < n_inputs, "program entry ", k, ": input $", o.index,
                 " out of range (N=", n_inputs, ")");
        t = inputs[o.index];
        e.deps[o.index] = 1;
      }
      if (o.kind == 'r') {
        TS_CHECK(o.index >= 0 && o.index < static_cast<int>(k), "program entry ", k, ": %", o.index,
                 " is not an earlier entry");
        const Entry& src = p.entries[o.index];
        t = src.type;
        for (size_t i = 0; i < e.deps.size(); ++i) e.deps[i] |= src.deps[i];
      }
      e.operands.push_back(o);
      types.push_back(t);
    }
    const bool same_typed_eq = (e.op == "Equal" || e.op == "NotEqual") && types[0] == types[1];
    for (size_t j = 0; j < arity && !same_typed_eq; ++j)
      TS_CHECK(types[j] == sig->second.operands[j], "program entry ", k, " '", program[k], "': operand ", j + 1,
               " of ", e.op, " must be ", ty_name(sig->second.operands[j]), ", got ", ty_name(types[j]));
    TS_CHECK(e.op != "LeakyRelu" || e.operands[1].kind == 'f', "program entry ", k,
             ": LeakyRelu's alpha must be a literal");
    e.type = sig->second.result;
    p.entries.push_back(std::move(e));
  }
  p.outputs = outputs.empty() ? std::vector<int64_t>{static_cast<int64_t>(program.size()) - 1} : outputs;
  for (int64_t o : p.outputs) {
    TS_CHECK(o >= 0 && o < static_cast<int64_t>(program.size()), "output entry ", o, " out of range (",
             program.size(), " entries)");
    TS_CHECK(p.entries[o].type == Ty::kF32, "output entry ", o, " '", program[o], "' is bool: outputs are float32");
  }
  return p;
}

std::vector<int64_t> output_entries(const Node& n) {
  return n.attr_or<std::vector<int64_t>>("outputs", std::vector<int64_t>{});
}

void infer_elementwise(InferContext& c) {
  int64_t n = c.attr<int64_t>("N");
  TS_CHECK(static_cast<int64_t>(c.num_inputs()) == n, "N=", n, " but ", c.num_inputs(), " inputs");
  TS_CHECK(n > 0, "needs at least one input");
  std::vector<Ty> types;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    DType t = c.input(i).dtype;
    TS_CHECK(t == DType::kFloat32 || t == DType::kBool, "every input must be float32 or bool, got ", dtype_name(t),
             " for input ", i);
    types.push_back(t == DType::kBool ? Ty::kBool : Ty::kF32);
  }
  Program p = parse_program(c.attr<std::vector<std::string>>("program"), types, output_entries(c.node));
  for (size_t k = 0; k < p.outputs.size(); ++k) {
    PartialShape shape(std::vector<int64_t>{});
    for (size_t i = 0; i < c.num_inputs(); ++i)
      if (p.entries[p.outputs[k]].deps[i]) shape = ops::broadcast(shape, c.input(i).shape);
    c.set_output(k, DType::kFloat32, shape);
  }
}

void elementwise_kernel(KernelContext& c) {
  std::vector<Ty> types;
  for (const Tensor& t : c.inputs) types.push_back(t.dtype() == DType::kBool ? Ty::kBool : Ty::kF32);
  Program p = parse_program(c.attr<std::vector<std::string>>("program"), types, output_entries(c.node));
  std::vector<Tensor> results;
  auto operand = [&](const Operand& o) {
    if (o.kind == 'i') return c.input(static_cast<size_t>(o.index));
    if (o.kind == 'r') return results[static_cast<size_t>(o.index)];
    return Tensor::scalar<float>(o.literal);
  };
  for (const Entry& e : p.entries) {
    std::vector<Tensor> args;
    for (const Operand& o : e.operands) args.push_back(operand(o));
    if (e.op == "LeakyRelu") {
      results.push_back(run_op("LeakyRelu", {args[0]}, {{"alpha", e.operands[1].literal}}));
    } else if (e.op == "Cast") {
      results.push_back(run_op("Cast", args, {{"SrcT", DType::kBool}, {"DstT", DType::kFloat32}}));
    } else if (e.type == Ty::kBool && args[0].dtype() == DType::kBool) {  // Equal on bools, Logical*
      results.push_back(run_op(e.op, std::move(args), {{"T", DType::kBool}}));
    } else {
      results.push_back(run_op(e.op, std::move(args)));
    }
  }
  for (size_t k = 0; k < p.outputs.size(); ++k) c.set_output(k, results[static_cast<size_t>(p.outputs[k])]);
}

// ---- TsLayerNorm / TsGelu ------------------------------------------------------------------

void infer_layer_norm(InferContext& c) {
  TS_CHECK(c.num_inputs() == 3, "expected x, gamma, beta");
  for (size_t i = 0; i < 3; ++i) check_f32(c, i, "every input");
  const PartialShape& x = c.input(0).shape;
  TS_CHECK(!x.known_rank || x.rank() >= 1, "x must have rank >= 1");
  int64_t ch = x.known_rank ? x.dims.back() : -1;
  for (size_t i = 1; i < 3; ++i) {
    const PartialShape& p = c.input(i).shape;
    TS_CHECK(!p.known_rank || (p.rank() == 1 && (ch < 0 || p.dims[0] < 0 || p.dims[0] == ch)),
             i == 1 ? "gamma" : "beta", " must be [", ch, "], got ", p.str());
  }
  c.set_output(0, DType::kFloat32, x);
}

void layer_norm_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  const Tensor& gamma = c.input(1);
  const Tensor& beta = c.input(2);
  TS_CHECK(x.rank() >= 1, "x must have rank >= 1");
  const int64_t ch = x.shape().back();
  TS_CHECK(gamma.num_elements() == ch && beta.num_elements() == ch, "gamma/beta must have ", ch,
           " elements");
  const double eps = c.attr<float>("epsilon");
  Tensor out(DType::kFloat32, x.shape());
  const float* px = x.data<float>();
  const float* g = gamma.data<float>();
  const float* b = beta.data<float>();
  float* po = out.data<float>();
  const int64_t rows = ch ? x.num_elements() / ch : 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = px + r * ch;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < ch; ++i) mean += xr[i];
    mean /= static_cast<double>(ch);
    for (int64_t i = 0; i < ch; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= static_cast<double>(ch);
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < ch; ++i)
      po[r * ch + i] = static_cast<float>((xr[i] - mean) * inv * g[i] + b[i]);
  }
  c.set_output(0, out);
}

// ---- TsAttention ---------------------------------------------------------------------------

void infer_attention(InferContext& c) {
  bool has_mask = c.attr<bool>("has_mask");
  TS_CHECK(c.num_inputs() == (has_mask ? 4u : 3u), "expected q, k, v", has_mask ? ", mask" : "");
  for (size_t i = 0; i < c.num_inputs(); ++i) check_f32(c, i, "every input");
  const PartialShape& q = c.input(0).shape;
  const PartialShape& k = c.input(1).shape;
  const PartialShape& v = c.input(2).shape;
  for (const PartialShape* s : {&q, &k, &v})
    TS_CHECK(!s->known_rank || s->rank() == 4, "q, k, v must be [B, S, H, D], got ", s->str());
  std::vector<int64_t> out = {-1, -1, -1, -1};
  if (q.known_rank) out = {q.dims[0], q.dims[1], q.dims[2], -1};
  if (v.known_rank) {
    out[3] = v.dims[3];
    if (out[0] < 0) out[0] = v.dims[0];
    if (out[2] < 0) out[2] = v.dims[2];
  }
  if (q.known_rank && k.known_rank)
    TS_CHECK(q.dims[3] < 0 || k.dims[3] < 0 || q.dims[3] == k.dims[3], "q ", q.str(), " and k ",
             k.str(), " differ in depth");
  c.set_output(0, DType::kFloat32, PartialShape(out));
}

void attention_kernel(KernelContext& c) {
  const Tensor& q = c.input(0);
  const Tensor& k = c.input(1);
  const Tensor& v = c.input(2);
  for (const Tensor* t : {&q, &k, &v})
    TS_CHECK(t->rank() == 4, "q, k, v must be [B, S, H, D], got ", shape_str(t->shape()));
  const int64_t B = q.dim(0), Sq = q.dim(1), H = q.dim(2), D = q.dim(3);
  const int64_t Sk = k.dim(1), Dv = v.dim(3);
  TS_CHECK(k.dim(0) == B && v.dim(0) == B && k.dim(2) == H && v.dim(2) == H && k.dim(3) == D &&
               v.dim(1) == Sk,
           "inconsistent q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ",
           shape_str(v.shape()));
  Tensor mask;
  if (c.attr<bool>("has_mask")) {
    Tensor dims = Tensor::from_vector<int64_t>({B, H, Sq, Sk}, {4});
    mask = run_op("BroadcastTo", {c.input(3), dims}, {{"Tidx", DType::kInt64}});
  }
  const float scale = c.attr<float>("scale");
  Tensor out(DType::kFloat32, {B, Sq, H, Dv});
  const float* pq = q.data<float>();
  const float* pk = k.data<float>();
  const float* pv = v.data<float>();
  const float* pm = mask.valid() ? mask.data<float>() : nullptr;
  float* po = out.data<float>();
  std::vector<float> p(static_cast<size_t>(Sk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Sq; ++i) {
        const float* qi = pq + ((b * Sq + i) * H + h) * D;
        float mx = -INFINITY;
        for (int64_t j = 0; j < Sk; ++j) {
          const float* kj = pk + ((b * Sk + j) * H + h) * D;
          float s = 0;
          for (int64_t d = 0; d < D; ++d) s += qi[d] * kj[d];
          s *= scale;
          if (pm) s += pm[((b * H + h) * Sq + i) * Sk + j];
          p[j] = s;
          mx = std::max(mx, s);
        }
        double sum = 0;
        for (int64_t j = 0; j < Sk; ++j) sum += (p[j] = std::exp(p[j] - mx));
        float* oi = po + ((b * Sq + i) * H + h) * Dv;
        for (int64_t e = 0; e < Dv; ++e) oi[e] = 0;
        for (int64_t j = 0; j < Sk; ++j) {
          const float w = static_cast<float>(p[j] / sum);
          const float* vj = pv + ((b * Sk + j) * H + h) * Dv;
          for (int64_t e = 0; e < Dv; ++e) oi[e] += w * vj[e];
        }
      }
  c.set_output(0, out);
}

}  // namespace

void register_fused_ops(OpRegistry& r) {
  r.add({.name = "TsFusedMatMul",
         .attr_defaults = epilogue_defaults({{"transpose_a", false}, {"transpose_b", false}}),
         .infer = infer_fused_matmul, .compute = fused_matmul_kernel});
  register_conv_like(r, "TsFusedConv2D", "Conv2D");
  register_conv_like(r, "TsFusedDepthwiseConv2D", "DepthwiseConv2dNative");
  r.add({.name = "TsElementwise", .infer = infer_elementwise, .compute = elementwise_kernel,
         .rowwise = ops::rows_elementwise});
  r.add({.name = "TsLayerNorm", .attr_defaults = {{"epsilon", 0.001f}, {"T", DType::kFloat32}},
         .infer = infer_layer_norm, .compute = layer_norm_kernel});
  r.add({.name = "TsGelu", .attr_defaults = {{"approximate", false}, {"T", DType::kFloat32}},
         .infer = [](InferContext& c) {
           check_f32(c, 0, "x");
           ops::infer_same_as_input(c);
         },
         .compute = [](KernelContext& c) {
           c.set_output(0, map_f32(c.input(0), gelu, c.attr<bool>("approximate")));
         }});
  r.add({.name = "TsAttention",
         .attr_defaults = {{"scale", 1.0f}, {"has_mask", false}, {"T", DType::kFloat32}},
         .infer = infer_attention, .compute = attention_kernel});
}

}  // namespace tessera
