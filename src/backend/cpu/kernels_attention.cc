// TsAttention: softmax(q·kᵀ·scale + mask)·v per batch and head, with q/k/v in Keras'
// [B, S, H, D] layout read in place through strided oneDNN matmul descriptors (no transposes):
// one batched matmul for the scores (scale as an output scale), our vector softmax per row
// with the mask row added first, one batched matmul writing [B, Sq, H, Dv] directly.
#include <map>
#include <tuple>

#include "backend/cpu/kernel.h"
#include "backend/cpu/onednn.h"
#include "backend/cpu/threads.h"
#include "backend/cpu/vec.h"

namespace tessera::cpu {

namespace {

using dnnl::memory;

memory::desc strided(const memory::dims& dims, const memory::dims& strides) {
  return memory::desc(dims, memory::data_type::f32, strides);
}

class AttentionKernel final : public CpuKernel {
 public:
  AttentionKernel(const Node& node, Isa isa)
      : node_(node), scale_(node.attr_or<float>("scale", 1.f)), has_mask_(node.attr_or<bool>("has_mask", false)),
        vec_(vec_table(isa)) {}

  void run(KernelRun& r) override {
    const Tensor& q = r.input(0);
    const Tensor& k = r.input(1);
    const Tensor& v = r.input(2);
    if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4) return run_reference(node_, r);
    const int64_t B = q.dim(0), Sq = q.dim(1), H = q.dim(2), D = q.dim(3), Sk = k.dim(1), Dv = v.dim(3);
    if (k.dim(0) != B || v.dim(0) != B || k.dim(2) != H || v.dim(2) != H || k.dim(3) != D || v.dim(1) != Sk ||
        B * H * Sq * Sk == 0 || D == 0 || Dv == 0)
      return run_reference(node_, r);  // errors and empty cases: the reference says it best
    // Mask strides in [B, H, Sq, Sk] (0 where it broadcasts).
    int64_t ms[4] = {0, 0, 0, 0};
    const float* mask = nullptr;
    if (has_mask_) {
      const Tensor& m = r.input(3);
      if (m.rank() > 4) return run_reference(node_, r);
      const int64_t full[4] = {B, H, Sq, Sk};
      int64_t acc = 1;
      for (int64_t i = 0; i < m.rank(); ++i) {
        const int64_t md = m.dim(m.rank() - 1 - i), od = 3 - i;
        if (md != 1 && md != full[od]) return run_reference(node_, r);
        ms[od] = md == 1 ? 0 : acc;
        acc *= md;
      }
      mask = m.data<float>();
    }
    Tensor out = r.allocate(0, DType::kFloat32, {B, Sq, H, Dv});
    Entry& e = entry(B, Sq, H, D, Sk, Dv);
    std::vector<float> scores(static_cast<size_t>(B * H * Sq * Sk));
    dnnl::stream s(onednn::engine());
    e.scores.execute(s, {{DNNL_ARG_SRC, onednn::wrap(e.q_md, q.raw())},
                         {DNNL_ARG_WEIGHTS, onednn::wrap(e.kt_md, k.raw())},
                         {DNNL_ARG_DST, onednn::wrap(e.s_md, scores.data())},
                         {DNNL_ARG_SCRATCHPAD, onednn::thread_scratchpad(e.scores_pd.scratchpad_desc())}});
    s.wait();
    parallel_for(B * H * Sq, std::max<int64_t>(1, 4096 / Sk), r.threads(), [&](int64_t lo, int64_t hi) {
      for (int64_t row = lo; row < hi; ++row) {
        float* p = scores.data() + row * Sk;
        if (mask) {
          const int64_t i = row % Sq, h = row / Sq % H, b = row / (Sq * H);
          const float* mrow = mask + b * ms[0] + h * ms[1] + i * ms[2];
          vec_.binary(BinaryOp::kAdd, p, false, mrow, ms[3] == 0, p, Sk);
        }
        vec_.softmax(p, p, Sk, false);
      }
    });
    e.context.execute(s, {{DNNL_ARG_SRC, onednn::wrap(e.s_md, scores.data())},
                          {DNNL_ARG_WEIGHTS, onednn::wrap(e.v_md, v.raw())},
                          {DNNL_ARG_DST, onednn::wrap(e.o_md, out.raw())},
                          {DNNL_ARG_SCRATCHPAD, onednn::thread_scratchpad(e.context_pd.scratchpad_desc())}});
    s.wait();
    r.set_output(0, out);
  }

 private:
  struct Entry {
    memory::desc q_md, kt_md, s_md, v_md, o_md;
    dnnl::matmul::primitive_desc scores_pd, context_pd;
    dnnl::matmul scores, context;
  };

  Entry& entry(int64_t B, int64_t Sq, int64_t H, int64_t D, int64_t Sk, int64_t Dv) {
    auto key = std::make_tuple(B, Sq, H, D, Sk, Dv);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    Entry e;
    // Logical [B, H, rows, cols] views of the [B, S, H, D] tensors.
    e.q_md = strided({B, H, Sq, D}, {Sq * H * D, D, H * D, 1});
    e.kt_md = strided({B, H, D, Sk}, {Sk * H * D, D, 1, H * D});
    e.s_md = onednn::plain_desc({B, H, Sq, Sk});
    e.v_md = strided({B, H, Sk, Dv}, {Sk * H * Dv, Dv, H * Dv, 1});
    e.o_md = strided({B, H, Sq, Dv}, {Sq * H * Dv, Dv, H * Dv, 1});
    dnnl::primitive_attr attr, plain;
    attr.set_output_scales(0, {scale_});
    onednn::use_own_scratchpad(attr);
    onednn::use_own_scratchpad(plain);
    e.scores_pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(e.q_md, e.kt_md, e.s_md), attr, onednn::engine());
    e.context_pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(e.s_md, e.v_md, e.o_md), plain, onednn::engine());
    e.scores = dnnl::matmul(e.scores_pd);
    e.context = dnnl::matmul(e.context_pd);
    return cache_.emplace(key, std::move(e)).first->second;
  }

  const Node& node_;
  float scale_;
  bool has_mask_;
  const VecTable& vec_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>, Entry> cache_;
};

}  // namespace

void register_attention_kernels() {
  register_kernel("TsAttention", [](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
    for (size_t i = 0; i < n.inputs.size(); ++i)
      if (!CompileEnv::is_f32(n, i)) return nullptr;
    return std::make_unique<AttentionKernel>(n, env.isa);
  });
}

}  // namespace tessera::cpu
