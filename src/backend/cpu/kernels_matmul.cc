// MatMul, TsFusedMatMul and BatchMatMulV2 on oneDNN's matmul primitive. Bias is the
// primitive's bias; residual and activation are post-ops (binary add, eltwise), so
// act(a·b + bias + residual) is one pass over the output. A weight that is a constant or a
// variable read is packed into the layout the primitive prefers (WeightCache).
//
// bf16 precision (docs/bf16.md): src and weights are bf16 (constant weights packed to bf16 at
// compile time, activations converted per run), accumulation and dst f32, so bias, residual
// and everything downstream stay f32. A shape oneDNN has no bf16 primitive for runs in f32.
#include <map>
#include <optional>
#include <tuple>

#include <omp.h>

#include <cstdlib>

#include "backend/cpu/kernel.h"
#include "backend/cpu/onednn.h"
#include "backend/cpu/threads.h"
#include "backend/cpu/weight_cache.h"

namespace tessera::cpu {

namespace {

using dnnl::memory;

// Weights worth packing once into oneDNN's preferred layout: constants and variables nothing
// in the graph writes. A training step's weights change every run, and repacking them each
// time costs more than oneDNN's own handling of plain-layout weights.
bool stable_weight(const Node& node, size_t i, const CompileEnv& env) {
  return CompileEnv::constant_input(node, i) || env.unchanging_variable(node, i);
}

// a [M,K] (or [K,M] when transposed) times b [K,N] (or [N,K]), plus bias/residual/act.
class MatMulKernel final : public CpuKernel {
 public:
  MatMulKernel(const Node& node, const CompileEnv& env, bool fused)
      : node_(node), weights_(node.inputs[1].node->name), stable_(stable_weight(node, 1, env)), bf16_(env.bf16) {
    trans_a_ = node.attr_or<bool>("transpose_a", false);
    trans_b_ = node.attr_or<bool>("transpose_b", false);
    if (fused) {
      has_bias_ = node.attr_or<bool>("has_bias", false);
      has_residual_ = node.attr_or<bool>("has_residual", false);
      activation_ = node.attr_or<std::string>("activation", "");
      alpha_ = node.attr_or<float>("alpha", 0.2f);
    }
    if (const Tensor* w = CompileEnv::constant_input(node, 1)) {
      // Pack now for batch 1 (most shapes keep that layout); other batches repack once.
      const PartialShape& a = node.inputs[0].node->outputs[node.inputs[0].index].shape;
      if (w->rank() == 2 && a.known_rank && a.rank() >= 2) {
        int64_t m = 1;
        for (int64_t i = 0; i + 1 < a.rank(); ++i) m *= a.dims[i] > 0 ? a.dims[i] : 1;
        if (trans_a_) m = a.dims[1] > 0 ? a.dims[1] : 1;
        Entry& e = entry(m, w->dim(trans_b_ ? 1 : 0), w->dim(trans_b_ ? 0 : 1));
        weights_.set_source(*w, b_md(w->dim(trans_b_ ? 1 : 0), w->dim(trans_b_ ? 0 : 1)));
        weights_.adopt(env.prepacked, e.pd.weights_desc());
        weights_.get(e.pd.weights_desc());
      }
    }
  }

  void run(KernelRun& r) override {
    const Tensor& a = r.input(0);
    const Tensor& b = r.input(1);
    TS_CHECK(a.rank() >= 2 && b.rank() == 2, "matmul kernel: unsupported ranks");
    int64_t m, k;
    Shape out_shape;
    if (trans_a_) {
      TS_CHECK(a.rank() == 2, "transpose_a needs a rank-2 operand");
      k = a.dim(0), m = a.dim(1);
    } else {
      k = a.dim(a.rank() - 1);
      m = a.num_elements() / std::max<int64_t>(k, 1);
    }
    const int64_t kb = b.dim(trans_b_ ? 1 : 0), n = b.dim(trans_b_ ? 0 : 1);
    if (k != kb) fail("Matrix size-incompatible: In[0] ", shape_str(a.shape()), ", In[1] ", shape_str(b.shape()));
    if (trans_a_) out_shape = {m, n};
    else {
      out_shape.assign(a.shape().begin(), a.shape().end() - 1);
      out_shape.push_back(n);
    }
    Tensor out = r.allocate(0, DType::kFloat32, out_shape);
    if (m == 0 || n == 0) return r.set_output(0, out);
    if (k == 0) return run_reference(node_, r);  // empty contraction: rare, oneDNN rejects it
    if (split_rows_ && !bf16_ && r.threads() > 1 && m >= kMinSplitRows * r.threads())
      return run_rows(r, a, b, out, m, k, n);
    Entry& e = entry(m, k, n);
    memory wmem;
    if (stable_) {
      weights_.set_source(b, b_md(k, n));
      wmem = weights_.get(e.pd.weights_desc());
    } else if (e.bf16) {
      wmem = onednn::wrap(e.pd.weights_desc(), onednn::bf16_scratch(b, 1, r.threads()));
    } else {
      wmem = onednn::wrap(b_md(k, n), b.raw());
    }
    memory src = e.bf16 ? onednn::wrap(e.pd.src_desc(), onednn::bf16_scratch(a, 0, r.threads()))
                        : onednn::wrap(a_md(m, k), a.raw());
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, src},
        {DNNL_ARG_WEIGHTS, wmem},
        {DNNL_ARG_DST, onednn::wrap(e.pd.dst_desc(), out.raw())}};
    size_t next = 2;
    if (has_bias_) {
      const Tensor& bias = r.input(next++);
      TS_CHECK(bias.num_elements() == n, "bias has ", bias.num_elements(), " elements, expected ", n);
      args[DNNL_ARG_BIAS] = onednn::wrap(onednn::plain_desc({1, n}), bias.raw());
    }
    if (has_residual_) {
      const Tensor& res = r.input(next++);
      TS_CHECK(res.num_elements() == m * n, "residual has shape ", shape_str(res.shape()), ", expected ",
               shape_str(out_shape));
      args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = onednn::wrap(onednn::plain_desc({m, n}), res.raw());
    }
    args[DNNL_ARG_SCRATCHPAD] = onednn::thread_scratchpad(e.pd.scratchpad_desc());
    dnnl::stream s(onednn::engine());
    e.prim.execute(s, args);
    s.wait();
    r.set_output(0, out);
  }

  std::vector<PackedWeight> packed() const override { return weights_.packed(); }

 private:
  struct Entry {
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul prim;
    bool bf16 = false;  // src and weights are bf16
  };

  // TESSERA_MATMUL_SPLIT=1: the result's rows split into one block per thread, each a
  // single-threaded oneDNN matmul run by parallel_for's pool instead of oneDNN's OpenMP team
  // (whose barrier waits for every thread). Measured only on the shared dev box with its
  // second core busy (seed MLP train step b256, 2 threads, load ~6.5: 6.1-6.4K -> 7.6-8.2K
  // samples/s; 1 thread 18K); off by default until it is measured on a quiet machine, where
  // oneDNN's own blocking across threads may well be better.
  static constexpr int64_t kMinSplitRows = 64;
  bool split_rows_ = [] {
    const char* v = std::getenv("TESSERA_MATMUL_SPLIT");
    return v && std::string(v) == "1";
  }();

  void run_rows(KernelRun& r, const Tensor& a, const Tensor& b, Tensor& out, int64_t m, int64_t k, int64_t n) {
    const int parts = r.threads();
    struct Block {
      int64_t row0, rows;
      Entry* e;
      memory w;
    };
    std::vector<Block> blocks;
    for (int p = 0; p < parts; ++p) {
      const int64_t r0 = m * p / parts, r1 = m * (p + 1) / parts;
      Entry& e = entry(r1 - r0, k, n, true, trans_a_ ? m : 0);
      memory w;  // weights in the layout this block's primitive wants (the cache is not thread-safe)
      if (stable_) {
        weights_.set_source(b, b_md(k, n));
        w = weights_.get(e.pd.weights_desc());
      } else {
        w = onednn::wrap(b_md(k, n), b.raw());
      }
      blocks.push_back({r0, r1 - r0, &e, w});
    }
    const float* pa = a.data<float>();
    float* py = out.data<float>();
    const size_t bias_at = 2, res_at = has_bias_ ? 3 : 2;
    const float* bias = has_bias_ ? r.input(bias_at).data<float>() : nullptr;
    const float* res = has_residual_ ? r.input(res_at).data<float>() : nullptr;
    if (bias)
      TS_CHECK(r.input(bias_at).num_elements() == n, "bias has ", r.input(bias_at).num_elements(),
               " elements, expected ", n);
    if (res) TS_CHECK(r.input(res_at).num_elements() == m * n, "residual has the wrong size");
    parallel_for(parts, 1, r.threads(), [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; ++p) {
        const Block& blk = blocks[static_cast<size_t>(p)];
        const Entry& e = *blk.e;
        // a: rows row0.. of [m,k]; transposed, columns row0.. of the stored [k,m].
        const float* ap = trans_a_ ? pa + blk.row0 : pa + blk.row0 * k;
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC, onednn::wrap(e.pd.src_desc(), ap)},
                                             {DNNL_ARG_WEIGHTS, blk.w},
                                             {DNNL_ARG_DST, onednn::wrap(e.pd.dst_desc(), py + blk.row0 * n)}};
        if (bias) args[DNNL_ARG_BIAS] = onednn::wrap(onednn::plain_desc({1, n}), bias);
        if (res)
          args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] =
              onednn::wrap(onednn::plain_desc({blk.rows, n}), res + blk.row0 * n);
        args[DNNL_ARG_SCRATCHPAD] = onednn::thread_scratchpad(e.pd.scratchpad_desc());
        dnnl::stream s(onednn::engine());
        e.prim.execute(s, args);
        s.wait();
      }
    });
    r.set_output(0, out);
  }

  memory::desc a_md(int64_t m, int64_t k, int64_t lda = 0) const {
    return trans_a_ ? memory::desc({m, k}, memory::data_type::f32, memory::dims{1, lda > 0 ? lda : m})
                    : onednn::plain_desc({m, k});
  }
  memory::desc b_md(int64_t k, int64_t n) const {
    return trans_b_ ? memory::desc({k, n}, memory::data_type::f32, memory::dims{1, k})
                    : onednn::plain_desc({k, n});
  }

  // single: a primitive for one thread (created with OpenMP's thread count at 1, which oneDNN
  // fixes at creation), run on row blocks by our own pool (see run_rows). `lda`: the stored
  // row pitch of a transposed `a` when the rows are a block of a larger matrix (0: m).
  Entry& entry(int64_t m, int64_t k, int64_t n, bool single = false, int64_t lda = 0) {
    auto key = std::make_tuple(m, k, n, single, lda);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    struct OmpThreads {  // restores the caller's OpenMP thread count
      int saved = omp_get_max_threads();
      explicit OmpThreads(bool one) {
        if (one) omp_set_num_threads(1);
      }
      ~OmpThreads() { omp_set_num_threads(saved); }
    } omp_threads(single);
    dnnl::post_ops ops;
    if (has_residual_) ops.append_binary(dnnl::algorithm::binary_add, onednn::plain_desc({m, n}));
    onednn::append_activation(ops, activation_, alpha_);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    onednn::use_own_scratchpad(attr);
    memory::desc bias = has_bias_ ? onednn::plain_desc({1, n}) : memory::desc();
    auto make = [&](memory::data_type t) {
      memory::desc w = stable_ ? memory::desc({k, n}, t, memory::format_tag::any) : onednn::retype(b_md(k, n), t);
      dnnl::matmul::desc d(onednn::retype(a_md(m, k, lda), t), w, bias, onednn::plain_desc({m, n}));
      dnnl::matmul::primitive_desc pd(d, attr, onednn::engine());
      return Entry{pd, dnnl::matmul(pd), t == memory::data_type::bf16};
    };
    if (bf16_) {
      try {
        return cache_.emplace(key, make(memory::data_type::bf16)).first->second;
      } catch (const dnnl::error&) {  // no bf16 implementation for this case: f32 below
      }
    }
    return cache_.emplace(key, make(memory::data_type::f32)).first->second;
  }

  const Node& node_;
  bool trans_a_ = false, trans_b_ = false, has_bias_ = false, has_residual_ = false;
  std::string activation_;
  float alpha_ = 0.2f;
  WeightCache weights_;
  bool stable_ = false;
  bool bf16_ = false;
  std::map<std::tuple<int64_t, int64_t, int64_t, bool, int64_t>, Entry> cache_;
};

// BatchMatMulV2 where batch dims are equal or one side's batch is all ones (broadcast),
// collapsed to one batch dim for oneDNN. Other broadcasts use the reference kernel.
class BatchMatMulKernel final : public CpuKernel {
 public:
  BatchMatMulKernel(const Node& node, const CompileEnv& env)
      : node_(node), adj_x_(node.attr_or<bool>("adj_x", false)), adj_y_(node.attr_or<bool>("adj_y", false)),
        bf16_(env.bf16) {}

  void run(KernelRun& r) override {
    const Tensor& x = r.input(0);
    const Tensor& y = r.input(1);
    if (x.rank() < 2 || y.rank() < 2) return reference(r);
    Shape bx(x.shape().begin(), x.shape().end() - 2), by(y.shape().begin(), y.shape().end() - 2);
    const int64_t nbx = num_elements(bx), nby = num_elements(by);
    Shape batch;
    if (bx == by) batch = bx;
    else if (nby == 1 && bx.size() >= by.size()) batch = bx;
    else if (nbx == 1 && by.size() >= bx.size()) batch = by;
    else return reference(r);
    const int64_t m = x.dim(x.rank() - (adj_x_ ? 1 : 2)), k = x.dim(x.rank() - (adj_x_ ? 2 : 1));
    const int64_t k2 = y.dim(y.rank() - (adj_y_ ? 1 : 2)), n = y.dim(y.rank() - (adj_y_ ? 2 : 1));
    if (k != k2 || k == 0) return reference(r);
    Shape out_shape = batch;
    out_shape.push_back(m);
    out_shape.push_back(n);
    Tensor out = r.allocate(0, DType::kFloat32, out_shape);
    const int64_t nb = num_elements(batch);
    if (nb == 0 || m == 0 || n == 0) return r.set_output(0, out);
    auto key = std::make_tuple(nbx, nby, m, k, n);
    auto it = cache_.find(key);
    if (it == cache_.end()) {
      auto make = [&](memory::data_type t) {
        dnnl::matmul::desc d(onednn::retype(md(nbx, m, k, adj_x_), t), onednn::retype(md(nby, k, n, adj_y_), t),
                             onednn::plain_desc({nb, m, n}));
        dnnl::primitive_attr attr;
        onednn::use_own_scratchpad(attr);
        dnnl::matmul::primitive_desc pd(d, attr, onednn::engine());
        return Entry{pd, dnnl::matmul(pd), t == memory::data_type::bf16};
      };
      std::optional<Entry> made;
      if (bf16_) {
        try {
          made = make(memory::data_type::bf16);
        } catch (const dnnl::error&) {  // no bf16 implementation: f32
        }
      }
      if (!made) made = make(memory::data_type::f32);
      it = cache_.emplace(key, *made).first;
    }
    const Entry& e = it->second;
    const void* xp = e.bf16 ? onednn::bf16_scratch(x, 0, r.threads()) : x.raw();
    const void* yp = e.bf16 ? onednn::bf16_scratch(y, 1, r.threads()) : y.raw();
    dnnl::stream s(onednn::engine());
    e.prim.execute(s, {{DNNL_ARG_SRC, onednn::wrap(e.pd.src_desc(), xp)},
                       {DNNL_ARG_WEIGHTS, onednn::wrap(e.pd.weights_desc(), yp)},
                       {DNNL_ARG_DST, onednn::wrap(onednn::plain_desc({nb, m, n}), out.raw())},
                       {DNNL_ARG_SCRATCHPAD, onednn::thread_scratchpad(e.pd.scratchpad_desc())}});
    s.wait();
    r.set_output(0, out);
  }

 private:
  // [batch, rows, cols] logical; stored transposed when adj.
  static memory::desc md(int64_t b, int64_t rows, int64_t cols, bool adj) {
    if (!adj) return onednn::plain_desc({b, rows, cols});
    return memory::desc({b, rows, cols}, memory::data_type::f32, memory::dims{rows * cols, 1, rows});
  }
  void reference(KernelRun& r) { run_reference(node_, r); }
  struct Entry {
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul prim;
    bool bf16 = false;
  };
  const Node& node_;
  bool adj_x_, adj_y_, bf16_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>, Entry> cache_;
};

bool all_f32(const Node& node) {
  for (size_t i = 0; i < node.inputs.size(); ++i)
    if (!CompileEnv::is_f32(node, i)) return false;
  return node.num_outputs() == 1 && node.outputs[0].dtype == DType::kFloat32;
}

}  // namespace

void register_matmul_kernels() {
  register_kernel("MatMul", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    if (!all_f32(n)) return nullptr;
    return std::make_unique<MatMulKernel>(n, env, false);
  });
  register_kernel("TsFusedMatMul", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    if (!all_f32(n)) return nullptr;
    return std::make_unique<MatMulKernel>(n, env, true);
  });
  for (const char* op : {"BatchMatMulV2", "BatchMatMulV3", "BatchMatMul"})
    register_kernel(op, [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
      if (!all_f32(n)) return nullptr;
      return std::make_unique<BatchMatMulKernel>(n, env);
    });
}

}  // namespace tessera::cpu
