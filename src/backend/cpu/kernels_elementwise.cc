// Elementwise ops on our vector loops: every unary and binary float op, BiasAdd, TsGelu and
// TsElementwise are one kernel that runs a small straight-line program (a single instruction
// for a plain op). The output is walked in rows of its innermost collapsed dimension; in a row
// each operand is contiguous or one broadcast value, so bias-like and scalar operands need no
// copies. A row is processed in blocks (up to kBlock floats, fewer for long programs): each instruction runs over the whole
// block (one vector loop per instruction, never a per-element interpreter). A program may
// export several entries (TsElementwise's `outputs`): each is written straight into its
// output's block, so m', v' and the new weight of an Adam update leave in one pass. Bool
// values (comparisons, masks) live in the block as 0/1 floats; bool inputs are widened to
// that form block by block.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "backend/cpu/elementwise_jit.h"
#include "backend/cpu/elementwise_program.h"
#include "backend/cpu/kernel.h"
#include "backend/cpu/threads.h"
#include "backend/cpu/vec.h"
#include "ops/op_helpers.h"

namespace tessera::cpu {

namespace {

// The longest block (floats), also the row length widen_rows aims for. Kernels with many
// input and output streams use shorter blocks: their buffers tend to share a page offset
// (large allocations are page-aligned), so each stream's block lands in the same L1 sets
// (32 KiB, 8-way on the dev box's EPYC) and temporaries push them past the ways. Measured in
// the MLP train step at 1 thread, the 8-stream Adam update took 180-203 ms per 100 steps with
// 512-float blocks, 162 with 256, 138-142 with 128 and 167-171 with 64 (three separate
// kernels: 122-137).
constexpr int64_t kBlock = 512;
// Floats per work item when the program runs as machine code (no temporaries in memory, so
// only the per-call set-up argues for long blocks and only load balance for short ones).
constexpr int64_t kJitBlock = 2048;

// TESSERA_ELEMENTWISE_JIT=0 keeps every program on the block interpreter (for comparisons).
bool elementwise_jit_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("TESSERA_ELEMENTWISE_JIT");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
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
  // `outputs`: the exported entries (default: the last). `is_bool[i]`: input i is a bool
  // tensor (one entry per operand input). `target_shape`: the last input is a shape the result broadcasts to (BroadcastTo),
  // not an operand. `node`: for the reference fallback (an output narrower than the others).
  ElementwiseKernel(std::vector<Instr> program, Isa isa, std::vector<int> outputs = {},
                    std::vector<char> is_bool = {}, bool target_shape = false, const Node* node = nullptr)
      : program_(std::move(program)), vec_(vec_table(isa)), outputs_(std::move(outputs)),
        is_bool_(std::move(is_bool)), target_shape_(target_shape), node_(node),
        use_jit_(isa == Isa::kAvx512 && elementwise_jit_enabled()) {
    if (outputs_.empty()) outputs_ = {static_cast<int>(program_.size()) - 1};
    out_of_.assign(program_.size(), -1);
    for (size_t k = outputs_.size(); k-- > 0;) out_of_[outputs_[k]] = static_cast<int>(k);
    // Which inputs each entry reads (directly or through earlier entries): an output's shape
    // is what those inputs broadcast to.
    const size_t n_in = is_bool_.size();
    deps_.assign(program_.size(), std::vector<char>(n_in, 0));
    last_read_.assign(n_in, -1);
    std::vector<int> last_use(program_.size(), -1);
    for (size_t i = 0; i < program_.size(); ++i)
      for (const Operand* o : operands_of(program_[i])) {
        if (o->kind == Operand::kInput && static_cast<size_t>(o->index) < n_in) {
          deps_[i][o->index] = 1;
          last_read_[o->index] = static_cast<int>(i);
        }
        if (o->kind == Operand::kTemp) {
          for (size_t j = 0; j < n_in; ++j) deps_[i][j] |= deps_[o->index][j];
          last_use[o->index] = static_cast<int>(i);
        }
      }
    // Temporaries share slots by liveness: a slot is free once its entry's last reader has
    // run, and that reader may write into it (every loop reads an element before writing it).
    slot_.assign(program_.size(), -1);
    std::vector<int> free;
    std::vector<char> freed(program_.size(), 0);
    for (size_t i = 0; i < program_.size(); ++i) {
      for (const Operand* o : operands_of(program_[i]))
        if (o->kind == Operand::kTemp && last_use[o->index] == static_cast<int>(i) && slot_[o->index] >= 0 &&
            !freed[o->index]) {
          free.push_back(slot_[o->index]);
          freed[o->index] = 1;
        }
      if (out_of_[i] >= 0) continue;  // written into its output
      if (free.empty()) {
        slot_[i] = slots_++;
      } else {
        slot_[i] = free.back();
        free.pop_back();
      }
      if (last_use[i] < 0) free.push_back(slot_[i]);  // never read
    }
    const int64_t streams = static_cast<int64_t>(n_in + outputs_.size());
    block_ = streams >= 6 ? 128 : streams >= 4 ? 256 : kBlock;
  }

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
    } else if (node_ && !outputs_full(shapes, out_shape)) {
      return run_reference(*node_, r);  // an output narrower than the iteration space
    }
    std::vector<float*> ys;
    for (size_t k = 0; k < outputs_.size(); ++k) {
      Tensor out = r.allocate(static_cast<int>(k), DType::kFloat32, out_shape);
      ys.push_back(out.data<float>());
      r.set_output(static_cast<int>(k), out);
    }
    RowSpace space(shapes, out_shape);
    std::vector<const std::byte*> ptr;
    std::vector<int64_t> esize;
    for (size_t k = 0; k < in.size(); ++k) {
      ptr.push_back(static_cast<const std::byte*>(in[k].raw()));
      esize.push_back(is_bool(k) ? 1 : 4);
    }
    std::vector<std::vector<std::byte>> tiles;
    widen_rows(space, ptr, esize, tiles);
    std::vector<char> scalar(in.size());
    for (size_t k = 0; k < in.size(); ++k) scalar[k] = !space.contiguous(k);
    const ElementwiseJit* jit = jit_for(scalar);
    // Work items: (row, block of the row), so one long row still spreads over threads.
    const int64_t block = jit ? kJitBlock : block_;
    const int64_t blocks_per_row = (space.inner + block - 1) / block;
    const int64_t items = space.rows * blocks_per_row;
    const int64_t grain = std::max<int64_t>(1, 16384 / block);
    // Per work item: the interpreter's temporaries (none for machine code, which keeps them
    // in registers) and room to widen bool inputs.
    const int64_t temp_slots = jit ? 0 : slots_;
    const bool any_bool = std::find(is_bool_.begin(), is_bool_.end(), 1) != is_bool_.end();
    const int64_t temp_floats = (temp_slots + (any_bool ? static_cast<int64_t>(in.size()) : 0)) * block;
    parallel_for(items, grain, r.threads(), [&](int64_t begin, int64_t end) {
      std::vector<float> temps(static_cast<size_t>(temp_floats));
      float* widened = temps.data() + temp_slots * block;  // bool inputs as 0/1 floats
      std::vector<const float*> op_ptr(in.size());
      std::vector<float*> dst(program_.size());
      std::vector<float*> out_ptr(outputs_.size());
      for (int64_t item = begin; item < end; ++item) {
        const int64_t row = item / blocks_per_row, blk = item % blocks_per_row;
        const int64_t start = blk * block, len = std::min(block, space.inner - start);
        for (size_t k = 0; k < in.size(); ++k) {
          const int64_t off = space.offset(k, row) + (space.contiguous(k) ? start : 0);
          if (!is_bool(k)) {
            op_ptr[k] = reinterpret_cast<const float*>(ptr[k]) + off;
            continue;
          }
          const uint8_t* b = reinterpret_cast<const uint8_t*>(ptr[k]) + off;
          float* w = widened + k * block;
          const int64_t n = space.contiguous(k) ? len : 1;
          for (int64_t j = 0; j < n; ++j) w[j] = static_cast<float>(b[j] != 0);
          op_ptr[k] = w;
        }
        if (jit) {
          for (size_t k = 0; k < outputs_.size(); ++k) out_ptr[k] = ys[k] + row * space.inner + start;
          jit->fn()(op_ptr.data(), out_ptr.data(), len);
          continue;
        }
        for (size_t i = 0; i < program_.size(); ++i)
          dst[i] = out_of_[i] >= 0 ? ys[out_of_[i]] + row * space.inner + start : temps.data() + slot_[i] * block;
        interpret_block(program_, vec_, op_ptr.data(), scalar.data(), dst.data(), len);
        for (size_t k = 0; k < outputs_.size(); ++k)  // an entry exported twice
          if (out_of_[outputs_[k]] != static_cast<int>(k))
            std::memcpy(ys[k] + row * space.inner + start, dst[outputs_[k]], sizeof(float) * len);
      }
    });
  }
  // Short rows (a per-channel operand over NHWC: rows of C floats) cost a call per
  // instruction per row. When every operand either runs on through the next-outer dim
  // (contiguous), repeats along it (a per-channel vector) or is one value, m rows become one:
  // repeating operands are tiled m times into `tiles`. Training graphs (BatchNorm statistics
  // and their gradients, per-channel scales) are full of these.
  static void widen_rows(RowSpace& space, std::vector<const std::byte*>& ptr, const std::vector<int64_t>& esize,
                         std::vector<std::vector<std::byte>>& tiles) {
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
      const int64_t row_bytes = space.inner * esize[k];
      std::vector<std::byte> t(static_cast<size_t>(row_bytes * m));
      for (int64_t i = 0; i < m; ++i) std::copy(ptr[k], ptr[k] + row_bytes, t.begin() + i * row_bytes);
      tiles.push_back(std::move(t));
      ptr[k] = tiles.back().data();
    }
    space.dims[nd - 2] /= m;
    space.dims[nd - 1] *= m;
    space.inner *= m;
    space.rows /= m;
  }

  // A same-sized float input is walked exactly like the outputs, block by block; output 0 may
  // overwrite it when no instruction after the one writing output 0 reads it.
  bool in_place(size_t i) const override {
    if (target_shape_) return i == 0;
    if (is_bool(i) || i >= last_read_.size()) return false;
    return last_read_[i] <= outputs_[0];
  }

 private:
  // The program as machine code for this run's broadcast pattern (which operands are one
  // value per row), generated on first use; nullptr: the block interpreter runs it.
  const ElementwiseJit* jit_for(const std::vector<char>& scalar) {
    if (!use_jit_ || scalar.size() > 64) return nullptr;
    uint64_t key = 0;
    for (size_t k = 0; k < scalar.size(); ++k) key |= static_cast<uint64_t>(scalar[k]) << k;
    std::lock_guard<std::mutex> lock(jit_mutex_);
    auto it = jits_.find(key);
    if (it == jits_.end()) it = jits_.emplace(key, ElementwiseJit::compile(program_, outputs_, scalar)).first;
    return it->second.get();
  }

  bool is_bool(size_t k) const { return k < is_bool_.size() && is_bool_[k]; }

  // Every output has the full iteration shape (what its own inputs broadcast to)?
  bool outputs_full(const std::vector<Shape>& shapes, const Shape& full) const {
    for (int e : outputs_) {
      Shape s;
      bool first = true;
      for (size_t k = 0; k < shapes.size() && k < deps_[e].size(); ++k)
        if (deps_[e][k]) {
          s = first ? shapes[k] : ops::broadcast(s, shapes[k]);
          first = false;
        }
      if (s != full) return false;
    }
    return true;
  }

  std::vector<Instr> program_;
  const VecTable& vec_;
  std::vector<int> outputs_;            // exported entries, in output order
  std::vector<int> out_of_;             // entry -> first output exporting it, or -1
  std::vector<char> is_bool_;           // per input
  std::vector<std::vector<char>> deps_;  // [entry][input]
  std::vector<int> last_read_;          // per input: last instruction reading it
  std::vector<int> slot_;               // per entry: its temporary slot, -1 if exported
  int64_t slots_ = 0;
  int64_t block_ = kBlock;              // floats per block
  bool target_shape_ = false;
  const Node* node_ = nullptr;
  bool use_jit_ = false;
  std::mutex jit_mutex_;
  std::map<uint64_t, std::unique_ptr<ElementwiseJit>> jits_;  // by scalar-operand mask
};

bool all_f32(const Node& n) {
  for (size_t i = 0; i < n.inputs.size(); ++i)
    if (!CompileEnv::is_f32(n, i)) return false;
  return n.num_outputs() == 1 && n.outputs[0].dtype == DType::kFloat32 && !n.inputs.empty();
}

std::unique_ptr<CpuKernel> make(const Node& n, const CompileEnv& env, std::vector<std::string> program) {
  if (!all_f32(n)) return nullptr;
  return std::make_unique<ElementwiseKernel>(parse_program(program, static_cast<int>(n.inputs.size())), env.isa,
                                             std::vector<int>{}, std::vector<char>(n.inputs.size(), 0));
}

// TsElementwise: float32 or bool inputs, float32 outputs, several allowed.
std::unique_ptr<CpuKernel> make_program(const Node& n, const CompileEnv& env) {
  if (n.inputs.empty() || n.num_outputs() < 1) return nullptr;
  std::vector<char> is_bool;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const ValueInfo& v = n.inputs[i].node->outputs.at(n.inputs[i].index);
    if (v.dtype == DType::kBool) is_bool.push_back(1);
    else if (CompileEnv::is_f32(n, i)) is_bool.push_back(0);
    else return nullptr;
  }
  for (const ValueInfo& o : n.outputs)
    if (o.dtype != DType::kFloat32) return nullptr;
  std::vector<int> outputs;
  for (int64_t e : n.attr_or<std::vector<int64_t>>("outputs", std::vector<int64_t>{}))
    outputs.push_back(static_cast<int>(e));
  auto program = n.attr<std::vector<std::string>>("program");
  return std::make_unique<ElementwiseKernel>(parse_program(program, static_cast<int>(n.inputs.size())), env.isa,
                                             std::move(outputs), std::move(is_bool), false, &n);
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
  // Exact gelu (Keras 3: 0.5·x·erfc(-x/√2)) when not fused; accurate in the tail (vec_impl.h).
  register_kernel("Erfc", [](const Node& n, const CompileEnv& env) { return make(n, env, {"Erfc $0"}); });
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
    return std::make_unique<ElementwiseKernel>(parse_program({"Mul $0 1"}, 1), env.isa, std::vector<int>{},
                                               std::vector<char>{0}, true);
  });
  // AddN: gradient accumulation in training graphs (a value used twice), same-shaped inputs.
  register_kernel("AddN", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    if (n.inputs.size() < 2) return nullptr;
    std::vector<std::string> program = {"AddV2 $0 $1"};
    for (size_t i = 2; i < n.inputs.size(); ++i)
      program.push_back("AddV2 %" + std::to_string(i - 2) + " $" + std::to_string(i));
    return make(n, env, program);
  });
  register_kernel("TsElementwise", make_program);
}

}  // namespace tessera::cpu
