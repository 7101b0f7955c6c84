// Elementwise ops on our vector loops: every unary and binary float op, BiasAdd, TsGelu and
// TsElementwise are one kernel that runs a small straight-line program (a single instruction
// for a plain op). The output is walked in rows of its innermost collapsed dimension; in a row
// each operand is contiguous or one broadcast value, so bias-like and scalar operands need no
// copies. A row is processed in blocks of kBlock floats: each instruction runs over the whole
// block (one vector loop per instruction, never a per-element interpreter).
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "backend/cpu/kernel.h"
#include "backend/cpu/threads.h"
#include "backend/cpu/vec.h"
#include "ops/op_helpers.h"

namespace tessera::cpu {

namespace {

constexpr int64_t kBlock = 512;

struct Operand {
  enum Kind { kInput, kTemp, kLiteral } kind = kInput;
  int index = 0;
  float literal = 0;
};

struct Instr {
  bool unary = true;
  UnaryOp uop = UnaryOp::kIdentity;
  BinaryOp bop = BinaryOp::kAdd;
  float alpha = 0.2f;  // LeakyRelu slope
  Operand a, b;
};

Operand parse_operand(const std::string& s, int num_inputs, int num_prior) {
  TS_CHECK(!s.empty(), "empty operand");
  Operand o;
  if (s[0] == '$' || s[0] == '%') {
    char* end = nullptr;
    long i = std::strtol(s.c_str() + 1, &end, 10);
    TS_CHECK(end && *end == 0 && s.size() > 1, "bad operand '", s, "'");
    o.kind = s[0] == '$' ? Operand::kInput : Operand::kTemp;
    o.index = static_cast<int>(i);
    TS_CHECK(i >= 0 && i < (s[0] == '$' ? num_inputs : num_prior), "operand '", s, "' out of range");
    return o;
  }
  char* end = nullptr;
  o.kind = Operand::kLiteral;
  o.literal = std::strtof(s.c_str(), &end);
  TS_CHECK(end && *end == 0, "bad operand '", s, "'");
  return o;
}

// Parses TsElementwise's `program` (docs/fused_ops.md); errors name the entry.
std::vector<Instr> parse_program(const std::vector<std::string>& program, int num_inputs) {
  std::vector<Instr> out;
  for (const std::string& line : program) {
    std::vector<std::string> tok;
    size_t p = 0;
    while (p < line.size()) {
      size_t q = line.find(' ', p);
      if (q == std::string::npos) q = line.size();
      if (q > p) tok.push_back(line.substr(p, q - p));
      p = q + 1;
    }
    TS_CHECK(!tok.empty(), "empty program entry");
    Instr in;
    const int prior = static_cast<int>(out.size());
    if (tok[0] == "LeakyRelu" && tok.size() == 3) {
      in.unary = true;
      in.uop = UnaryOp::kLeakyRelu;
      in.a = parse_operand(tok[1], num_inputs, prior);
      Operand al = parse_operand(tok[2], num_inputs, prior);
      TS_CHECK(al.kind == Operand::kLiteral, "LeakyRelu alpha must be a literal in '", line, "'");
      in.alpha = al.literal;
    } else if (unary_op_from_name(tok[0], &in.uop) && tok.size() == 2) {
      in.a = parse_operand(tok[1], num_inputs, prior);
    } else if (binary_op_from_name(tok[0], &in.bop) && tok.size() == 3) {
      in.unary = false;
      in.a = parse_operand(tok[1], num_inputs, prior);
      in.b = parse_operand(tok[2], num_inputs, prior);
    } else {
      fail("unsupported program entry '", line, "'");
    }
    out.push_back(in);
  }
  TS_CHECK(!out.empty(), "empty program");
  return out;
}

// The output iteration space collapsed to [outer..., inner] with per-operand strides (0 where
// an operand broadcasts). Adjacent dims merge when every operand is contiguous across them.
struct RowSpace {
  Shape out_shape;
  std::vector<int64_t> dims;                 // collapsed, outermost first
  std::vector<std::vector<int64_t>> stride;  // [operand][dim]
  int64_t inner = 1, rows = 0;

  RowSpace(const std::vector<Shape>& shapes, Shape out) : out_shape(std::move(out)) {
    const size_t r = out_shape.size();
    std::vector<std::vector<int64_t>> st(shapes.size(), std::vector<int64_t>(r, 0));
    for (size_t k = 0; k < shapes.size(); ++k) {
      const Shape& s = shapes[k];
      int64_t acc = 1;
      for (size_t i = 0; i < s.size(); ++i) {
        const size_t d = s.size() - 1 - i, od = r - 1 - i;
        st[k][od] = s[d] == 1 && out_shape[od] != 1 ? 0 : acc;
        acc *= s[d];
      }
    }
    stride.assign(shapes.size(), {});
    for (size_t d = 0; d < r; ++d) {
      if (out_shape[d] == 1) continue;  // size-1 dims carry nothing
      bool merge = !dims.empty();
      for (size_t k = 0; merge && k < shapes.size(); ++k)
        merge = stride[k].back() == st[k][d] * out_shape[d];
      if (merge) {
        dims.back() *= out_shape[d];
        for (size_t k = 0; k < shapes.size(); ++k) stride[k].back() = st[k][d];
      } else {
        dims.push_back(out_shape[d]);
        for (size_t k = 0; k < shapes.size(); ++k) stride[k].push_back(st[k][d]);
      }
    }
    if (dims.empty()) {
      dims.push_back(1);
      for (auto& s : stride) s.push_back(0);
    }
    inner = dims.back();
    rows = inner == 0 ? 0 : num_elements(out_shape) / inner;
  }
  // Element offset of operand k at the start of row `row`.
  int64_t offset(size_t k, int64_t row) const {
    int64_t off = 0;
    for (size_t d = dims.size() - 1; d-- > 0;) {
      off += (row % dims[d]) * stride[k][d];
      row /= dims[d];
    }
    return off;
  }
  bool contiguous(size_t k) const { return stride[k].back() != 0; }
};

class ElementwiseKernel final : public CpuKernel {
 public:
  // `target_shape`: the last input is a shape the result broadcasts to (BroadcastTo), not an operand.
  ElementwiseKernel(std::vector<Instr> program, Isa isa, bool target_shape = false)
      : program_(std::move(program)), vec_(vec_table(isa)), target_shape_(target_shape) {}

  void run(KernelRun& r) override {
    std::vector<Tensor> operands;
    const std::vector<Tensor>& all = r.inputs();
    if (target_shape_) operands.assign(all.begin(), all.end() - 1);
    const std::vector<Tensor>& in = target_shape_ ? operands : all;
    std::vector<Shape> shapes;
    Shape out_shape;
    for (const Tensor& t : in) {
      shapes.push_back(t.shape());
      out_shape = shapes.size() == 1 ? t.shape() : ops::broadcast(out_shape, t.shape());
    }
    if (target_shape_) {
      std::vector<int64_t> dims = all.back().to_int_vector();
      out_shape = ops::broadcast(out_shape, Shape(dims.begin(), dims.end()));
      TS_CHECK(out_shape == Shape(dims.begin(), dims.end()), "cannot broadcast ", shape_str(shapes[0]), " to ",
               shape_str(Shape(dims.begin(), dims.end())));
    }
    Tensor out = r.allocate(0, DType::kFloat32, out_shape);
    RowSpace space(shapes, out_shape);
    std::vector<const float*> ptr;
    for (const Tensor& t : in) ptr.push_back(t.data<float>());
    std::vector<std::vector<float>> tiles;
    widen_rows(space, ptr, tiles);
    float* y = out.data<float>();
    // Work items: (row, block of the row), so one long row still spreads over threads.
    const int64_t blocks_per_row = (space.inner + kBlock - 1) / kBlock;
    const int64_t items = space.rows * blocks_per_row;
    const int64_t grain = std::max<int64_t>(1, 16384 / kBlock);
    parallel_for(items, grain, r.threads(), [&](int64_t begin, int64_t end) {
      std::vector<float> temps(program_.size() * kBlock);
      std::vector<const float*> op_ptr(in.size());
      for (int64_t item = begin; item < end; ++item) {
        const int64_t row = item / blocks_per_row, blk = item % blocks_per_row;
        const int64_t start = blk * kBlock, len = std::min(kBlock, space.inner - start);
        for (size_t k = 0; k < in.size(); ++k)
          op_ptr[k] = ptr[k] + space.offset(k, row) + (space.contiguous(k) ? start : 0);
        run_block(op_ptr, space, temps.data(), y + row * space.inner + start, len);
      }
    });
    r.set_output(0, out);
  }
  // Short rows (a per-channel operand over NHWC: rows of C floats) cost a call per
  // instruction per row. When every operand either runs on through the next-outer dim
  // (contiguous), repeats along it (a per-channel vector) or is one value, m rows become one:
  // repeating operands are tiled m times into `tiles`. Training graphs (BatchNorm statistics
  // and their gradients, per-channel scales) are full of these.
  static void widen_rows(RowSpace& space, std::vector<const float*>& ptr, std::vector<std::vector<float>>& tiles) {
    const size_t nd = space.dims.size();
    if (nd < 2 || space.inner >= kBlock || space.inner == 0) return;
    const int64_t outer = space.dims[nd - 2];
    std::vector<int> kind(ptr.size());  // 0 scalar, 1 contiguous through rows, 2 repeated per row
    for (size_t k = 0; k < ptr.size(); ++k) {
      const int64_t si = space.stride[k][nd - 1], so = space.stride[k][nd - 2];
      if (si == 0 && so == 0) kind[k] = 0;
      else if (si == 1 && so == space.inner) kind[k] = 1;
      else if (si == 1 && so == 0) kind[k] = 2;
      else return;
      // A repeated operand is tiled once from its start: it must not move with outer dims
      // either (a [N,1,1,C] operand over [N,H,W,C] differs per image).
      for (size_t d = 0; kind[k] == 2 && d + 2 < nd; ++d)
        if (space.stride[k][d] != 0) return;
    }
    int64_t m = 1;
    for (int64_t c = std::min<int64_t>(outer, 4 * kBlock / space.inner); c > 1; --c)
      if (outer % c == 0) {
        m = c;
        break;
      }
    if (m == 1) return;
    for (size_t k = 0; k < ptr.size(); ++k) {
      if (kind[k] == 1) space.stride[k][nd - 2] = space.inner * m;
      if (kind[k] != 2) continue;
      std::vector<float> t(static_cast<size_t>(space.inner * m));
      for (int64_t i = 0; i < m; ++i) std::copy(ptr[k], ptr[k] + space.inner, t.begin() + i * space.inner);
      tiles.push_back(std::move(t));
      ptr[k] = tiles.back().data();
    }
    space.dims[nd - 2] /= m;
    space.dims[nd - 1] *= m;
    space.inner *= m;
    space.rows /= m;
  }

  // A same-sized input is walked exactly like the output, block by block, and a block's
  // instructions read it before the last one writes the block.
  bool in_place(size_t i) const override { return !target_shape_ || i == 0; }

 private:
  void run_block(const std::vector<const float*>& op_ptr, const RowSpace& space, float* temps, float* y,
                 int64_t len) const {
    auto resolve = [&](const Operand& o, bool* scalar) -> const float* {
      switch (o.kind) {
        case Operand::kInput: *scalar = !space.contiguous(o.index); return op_ptr[o.index];
        case Operand::kTemp: *scalar = false; return temps + o.index * kBlock;
        case Operand::kLiteral: *scalar = true; return &o.literal;
      }
      return nullptr;
    };
    const size_t last = program_.size() - 1;
    for (size_t i = 0; i < program_.size(); ++i) {
      const Instr& in = program_[i];
      float* dst = i == last ? y : temps + i * kBlock;
      bool sa = false, sb = false;
      const float* a = resolve(in.a, &sa);
      if (in.unary) {
        if (sa) {  // a broadcast value: compute once, then fill
          float v;
          vec_.unary(in.uop, a, &v, 1, in.alpha);
          std::fill(dst, dst + len, v);
        } else {
          vec_.unary(in.uop, a, dst, len, in.alpha);
        }
      } else {
        const float* b = resolve(in.b, &sb);
        vec_.binary(in.bop, a, sa, b, sb, dst, len);
      }
    }
  }

  std::vector<Instr> program_;
  const VecTable& vec_;
  bool target_shape_ = false;
};

bool all_f32(const Node& n) {
  for (size_t i = 0; i < n.inputs.size(); ++i)
    if (!CompileEnv::is_f32(n, i)) return false;
  return n.num_outputs() == 1 && n.outputs[0].dtype == DType::kFloat32 && !n.inputs.empty();
}

std::unique_ptr<CpuKernel> make(const Node& n, const CompileEnv& env, std::vector<std::string> program) {
  if (!all_f32(n)) return nullptr;
  return std::make_unique<ElementwiseKernel>(parse_program(program, static_cast<int>(n.inputs.size())), env.isa);
}

}  // namespace

void register_elementwise_kernels() {
  for (const char* op : {"Neg", "Abs", "Exp", "Log", "Sqrt", "Rsqrt", "Square", "Reciprocal", "Tanh",
                         "Sigmoid", "Relu", "Relu6", "Elu", "Selu", "Erf", "Softplus", "Floor", "Ceil"}) {
    std::string name = op;
    register_kernel(op, [name](const Node& n, const CompileEnv& env) {
      return make(n, env, {name + " $0"});
    });
  }
  // Exact gelu's forward in training graphs keeps Erfc unfused (its gradient reads it).
  register_kernel("Erfc", [](const Node& n, const CompileEnv& env) { return make(n, env, {"Erf $0", "Sub 1 %0"}); });
  register_kernel("LeakyRelu", [](const Node& n, const CompileEnv& env) {
    char alpha[32];
    std::snprintf(alpha, sizeof alpha, "%.9g", static_cast<double>(n.attr_or<float>("alpha", 0.2f)));
    return make(n, env, {std::string("LeakyRelu $0 ") + alpha});
  });
  for (const char* op : {"AddV2", "Add", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Pow", "SquaredDifference"}) {
    std::string name = op;
    register_kernel(op, [name](const Node& n, const CompileEnv& env) {
      return make(n, env, {name + " $0 $1"});
    });
  }
  register_kernel("BiasAdd", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    if (n.attr_or<std::string>("data_format", "NHWC") != "NHWC") return nullptr;  // bias on axis 1
    return make(n, env, {"AddV2 $0 $1"});
  });
  register_kernel("TsGelu", [](const Node& n, const CompileEnv& env) {
    return make(n, env, {n.attr_or<bool>("approximate", false) ? "GeluTanh $0" : "GeluExact $0"});
  });
  // BroadcastTo: the gradients of reductions (Mean, Sum) spread back over the input's shape,
  // full size in training graphs; written by the vector loops into planned memory.
  register_kernel("BroadcastTo", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    if (!CompileEnv::is_f32(n, 0) || n.num_outputs() != 1 || n.outputs[0].dtype != DType::kFloat32) return nullptr;
    return std::make_unique<ElementwiseKernel>(parse_program({"Mul $0 1"}, 1), env.isa, true);
  });
  // AddN: gradient accumulation in training graphs (a value used twice), same-shaped inputs.
  register_kernel("AddN", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    if (n.inputs.size() < 2) return nullptr;
    std::vector<std::string> program = {"AddV2 $0 $1"};
    for (size_t i = 2; i < n.inputs.size(); ++i)
      program.push_back("AddV2 %" + std::to_string(i - 2) + " $" + std::to_string(i));
    return make(n, env, program);
  });
  register_kernel("TsElementwise", [](const Node& n, const CompileEnv& env) {
    return make(n, env, n.attr<std::vector<std::string>>("program"));
  });
}

}  // namespace tessera::cpu
