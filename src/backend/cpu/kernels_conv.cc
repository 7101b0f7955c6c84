// Conv2D, DepthwiseConv2dNative and their fused forms (TsFusedConv2D,
// TsFusedDepthwiseConv2D) on oneDNN's convolution, NHWC in and out (TF's layout, so no
// transposes around it). Filters go into oneDNN's blocked layout once (WeightCache); bias is
// the primitive's, residual a binary-add post-op, activation eltwise post-ops. Primitives are
// cached per input shape. NCHW graphs use the reference kernel. With bf16 precision
// (docs/bf16.md) non-depthwise direct convolutions take bf16 src and filter, f32 bias and dst
// (no Winograd then: oneDNN's is f32 only).
//
// 3x3 stride-1 convolutions may run oneDNN's Winograd algorithm (F(2x2,3x3)/F(4x4,3x3),
// avx512_core only), which does about half the multiplies of the direct algorithm: measured
// 1.7-2.9x less CPU time per conv on ResNet50's 3x3 shapes (docs/architecture.md). It only
// takes blocked (nChw16c) activations, so the kernel reorders NHWC in and out around it
// through per-thread scratch buffers. TESSERA_CONV_ALGO=direct|winograd|auto picks the rule.
#include <cstdlib>
#include <cstring>
#include <map>

#include "backend/cpu/kernel.h"
#include "backend/cpu/onednn.h"
#include "backend/cpu/threads.h"
#include "backend/cpu/vec.h"
#include "backend/cpu/weight_cache.h"
#include "ops/nn_families.h"

namespace tessera::cpu {

namespace {

using dnnl::memory;

class ConvKernel final : public CpuKernel {
 public:
  ConvKernel(const Node& node, const CompileEnv& env, bool depthwise, bool fused)
      : node_(node), depthwise_(depthwise), weights_(node.inputs[1].node->name), vec_(vec_table(env.isa)),
        bf16_(env.bf16 && !depthwise) {
    // On its SSE4.1 path oneDNN 2.6 gets residual post-ops wrong (a full-tensor binary add in
    // the gemm-based NHWC convolution gives wrong sums; a sum post-op in the depthwise kernel
    // with channels not a multiple of 8 crashes): there we add and activate ourselves.
    manual_epilogue_ = onednn::effective_isa() == "sse41";
    const auto& strides = node.attr<std::vector<int64_t>>("strides");
    std::vector<int64_t> dil = node.attr_or<std::vector<int64_t>>("dilations", {1, 1, 1, 1});
    TS_CHECK(strides.size() == 4 && dil.size() == 4, "strides and dilations need 4 entries");
    strides_ = {strides[1], strides[2]};
    dilations_ = {dil[1], dil[2]};
    padding_ = nn::parse_padding(node.attr<std::string>("padding"));
    if (padding_ == nn::Padding::kExplicit) explicit_ = node.attr<std::vector<int64_t>>("explicit_paddings");
    if (fused) {
      has_bias_ = node.attr_or<bool>("has_bias", false);
      has_residual_ = node.attr_or<bool>("has_residual", false);
      activation_ = node.attr_or<std::string>("activation", "");
      alpha_ = node.attr_or<float>("alpha", 0.2f);
    }
    // Filters are packed into oneDNN's blocked layout also when a training step rewrites them
    // every run (one reorder per run): its fast convolution kernels want blocked filters.
    stable_ = CompileEnv::constant_input(node, 1) != nullptr || CompileEnv::read_variable(node, 1) != nullptr;
    // Pack a constant filter now, for batch 1 at the graph's spatial size when known.
    const Tensor* w = CompileEnv::constant_input(node, 1);
    const PartialShape& x = node.inputs[0].node->outputs[node.inputs[0].index].shape;
    if (w && w->rank() == 4 && x.known_rank && x.rank() == 4 && x.dims[1] > 0 && x.dims[2] > 0 && x.dims[3] > 0) {
      Geometry g = geometry({1, x.dims[1], x.dims[2], x.dims[3]}, w->shape());
      Entry& e = entry(g);
      weights_.set_source(*w, g.w_plain);
      weights_.adopt(env.prepacked, e.pd.weights_desc());
      weights_.get(e.pd.weights_desc());
    }
  }

  void run(KernelRun& r) override {
    const Tensor& x = r.input(0);
    const Tensor& f = r.input(1);
    TS_CHECK(x.rank() == 4 && f.rank() == 4, "input and filter must be 4-dimensional");
    Geometry g = geometry(x.shape(), f.shape());
    Tensor out = r.allocate(0, DType::kFloat32, g.out_shape);
    if (out.num_elements() == 0) return r.set_output(0, out);
    if (x.num_elements() == 0) return run_reference(node_, r);
    Entry& e = entry(g);
    memory wmem;
    if (stable_) {
      weights_.set_source(f, g.w_plain);
      wmem = weights_.get(e.pd.weights_desc());
    } else if (e.pd.weights_desc() == g.w_plain) {
      wmem = onednn::wrap(g.w_plain, f.raw());
    } else {
      memory plain = onednn::wrap(g.w_plain, f.raw());
      wmem = memory(e.pd.weights_desc(), onednn::engine());
      dnnl::stream s(onednn::engine());
      dnnl::reorder(plain, wmem).execute(s, plain, wmem);
      s.wait();
    }
    memory xmem = e.bf16 ? onednn::wrap(e.pd.src_desc(), onednn::bf16_scratch(x, 0, r.threads()))
                         : onednn::wrap(g.x_md, x.raw());
    memory ymem = onednn::wrap(g.y_md, out.raw());
    dnnl::stream s(onednn::engine());
    memory xblk, yblk;
    if (e.blocked) {
      xblk = onednn::wrap(e.pd.src_desc(), onednn::thread_buffer(onednn::ThreadBuffer::kBlockedSrc, e.pd.src_desc().get_size()));
      yblk = onednn::wrap(e.pd.dst_desc(), onednn::thread_buffer(onednn::ThreadBuffer::kBlockedDst, e.pd.dst_desc().get_size()));
      e.to_blocked.execute(s, xmem, xblk);
    }
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, e.blocked ? xblk : xmem},
                                         {DNNL_ARG_WEIGHTS, wmem},
                                         {DNNL_ARG_DST, e.blocked ? yblk : ymem}};
    args[DNNL_ARG_SCRATCHPAD] = onednn::thread_scratchpad(e.pd.scratchpad_desc());
    size_t next = 2;
    const Tensor* residual = nullptr;
    if (has_bias_) {
      const Tensor& bias = r.input(next++);
      TS_CHECK(bias.num_elements() == g.cout, "bias has ", bias.num_elements(), " elements, expected ", g.cout);
      args[DNNL_ARG_BIAS] = onednn::wrap(onednn::plain_desc({g.cout}), bias.raw());
    }
    if (has_residual_) {
      const Tensor& res = r.input(next++);
      TS_CHECK(res.shape() == g.out_shape, "residual has shape ", shape_str(res.shape()), ", expected ",
               shape_str(g.out_shape));
      if (!manual_epilogue_)
        args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = onednn::wrap(g.y_md, res.raw());
      residual = &res;
    }
    e.prim.execute(s, args);
    if (e.blocked) e.from_blocked.execute(s, yblk, ymem);
    s.wait();
    if (manual_epilogue_ && (residual || !activation_.empty())) epilogue(out, residual, r.threads());
    r.set_output(0, out);
  }

  std::vector<PackedWeight> packed() const override { return weights_.packed(); }

 private:
  // out = act(out + residual) with our vector loops, where oneDNN's post-ops are unreliable.
  void epilogue(Tensor& out, const Tensor* residual, int threads) const {
    float* y = out.data<float>();
    const float* res = residual ? residual->data<float>() : nullptr;
    UnaryOp act = UnaryOp::kIdentity;
    if (!activation_.empty() && !unary_op_from_name(activation_, &act)) fail("unknown activation '", activation_, "'");
    parallel_for(out.num_elements(), 16384, threads, [&](int64_t lo, int64_t hi) {
      if (res) vec_.binary(BinaryOp::kAdd, y + lo, false, res + lo, false, y + lo, hi - lo);
      if (act != UnaryOp::kIdentity) vec_.unary(act, y + lo, y + lo, hi - lo, alpha_);
    });
  }


  struct Geometry {
    memory::dims key;  // n, h, w, c, kh, kw, fin, fout
    Shape out_shape;
    int64_t cout = 0, groups = 1;
    memory::dims pad_l, pad_r;
    memory::desc x_md, y_md, w_plain, w_any;
  };
  struct Entry {
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward prim;
    bool blocked = false;  // src/dst in oneDNN's blocked layout (Winograd): reorder around it
    dnnl::reorder to_blocked, from_blocked;
    bool bf16 = false;  // src and weights are bf16 (direct only)
  };


  // Winograd for this geometry? Only 3x3 stride-1 undilated dense convs with packed weights
  // and no residual (its post-op would need the residual blocked too).
  bool wants_winograd(const Geometry& g) const {
    if (algo_ == Algo::kDirect || depthwise_ || g.groups != 1 || has_residual_ || manual_epilogue_ || !stable_ ||
        bf16_)
      return false;
    if (g.key[4] != 3 || g.key[5] != 3 || strides_ != memory::dims{1, 1} || dilations_ != memory::dims{1, 1})
      return false;
    if (algo_ == Algo::kWinograd) return true;
    // auto: the measured shapes (docs/architecture.md) all won; tiny channel counts or
    // feature maps leave too little work per 4x4 tile transform to be worth the reorders.
    return g.key[3] >= 16 && g.key[7] >= 16 && g.out_shape[1] * g.out_shape[2] >= 36;
  }

  Geometry geometry(const Shape& xs, const Shape& fs) const {
    Geometry g;
    const int64_t n = xs[0], h = xs[1], w = xs[2], c = xs[3];
    const int64_t kh = fs[0], kw = fs[1], fin = fs[2], fout = fs[3];
    g.key = {n, h, w, c, kh, kw, fin, fout};
    int64_t per_group;
    if (depthwise_) {
      TS_CHECK(fin == c, "filter depth ", fin, " does not match input depth ", c);
      g.groups = c, g.cout = c * fout, per_group = fout;
    } else {
      TS_CHECK(fin > 0 && c % fin == 0, "input depth must be evenly divisible by filter depth: ", c, " vs ", fin);
      g.groups = c / fin, g.cout = fout;
      TS_CHECK(fout % g.groups == 0, "output depth ", fout, " must be a multiple of the groups ", g.groups);
      per_group = fout / g.groups;
    }
    nn::Window wh = nn::window(h, kh, strides_[0], dilations_[0], padding_,
                               explicit_.size() == 8 ? explicit_[2] : 0, explicit_.size() == 8 ? explicit_[3] : 0);
    nn::Window ww = nn::window(w, kw, strides_[1], dilations_[1], padding_,
                               explicit_.size() == 8 ? explicit_[4] : 0, explicit_.size() == 8 ? explicit_[5] : 0);
    g.out_shape = {n, wh.out, ww.out, g.cout};
    g.pad_l = {wh.pad_before, ww.pad_before};
    g.pad_r = {wh.pad_after, ww.pad_after};
    g.x_md = memory::desc({n, c, h, w}, memory::data_type::f32, memory::format_tag::nhwc);
    g.y_md = memory::desc({n, g.cout, wh.out, ww.out}, memory::data_type::f32, memory::format_tag::nhwc);
    const int64_t in_per_group = depthwise_ ? 1 : fin;
    if (g.groups == 1) {
      g.w_plain = memory::desc({fout, fin, kh, kw}, memory::data_type::f32, memory::format_tag::hwio);
      g.w_any = memory::desc({fout, fin, kh, kw}, memory::data_type::f32, memory::format_tag::any);
    } else {
      // TF's output channel is group * per_group + o: oneDNN's goihw order stored as h,w,i,g,o.
      memory::dims d{g.groups, per_group, in_per_group, kh, kw};
      g.w_plain = memory::desc(d, memory::data_type::f32, memory::format_tag::hwigo);
      g.w_any = memory::desc(d, memory::data_type::f32, memory::format_tag::any);
    }
    return g;
  }

  Entry& entry(const Geometry& g) {
    auto it = cache_.find(g.key);
    if (it != cache_.end()) return it->second;
    dnnl::post_ops ops;
    if (!manual_epilogue_) {
      if (has_residual_) ops.append_binary(dnnl::algorithm::binary_add, g.y_md);
      onednn::append_activation(ops, activation_, alpha_);
    }
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    onednn::use_own_scratchpad(attr);
    memory::desc bias = has_bias_ ? onednn::plain_desc({g.cout}) : memory::desc();
    memory::dims dil{dilations_[0] - 1, dilations_[1] - 1};
    if (wants_winograd(g)) {
      memory::desc x_any(g.x_md.dims(), memory::data_type::f32, memory::format_tag::any);
      memory::desc y_any(g.y_md.dims(), memory::data_type::f32, memory::format_tag::any);
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd,
                                        x_any, g.w_any, bias, y_any, strides_, dil, g.pad_l, g.pad_r);
      try {
        // Throws where oneDNN has no Winograd kernel (below avx512_core, unsupported shapes).
        dnnl::convolution_forward::primitive_desc pd(d, attr, onednn::engine());
        Entry e{pd, dnnl::convolution_forward(pd), true,
                dnnl::reorder(dnnl::reorder::primitive_desc(onednn::engine(), g.x_md, onednn::engine(), pd.src_desc())),
                dnnl::reorder(dnnl::reorder::primitive_desc(onednn::engine(), pd.dst_desc(), onednn::engine(), g.y_md))};
        return cache_.emplace(g.key, std::move(e)).first->second;
      } catch (const dnnl::error&) {
      }
    }
    auto make = [&](memory::data_type t) {
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                        onednn::retype(g.x_md, t), onednn::retype(stable_ ? g.w_any : g.w_plain, t),
                                        bias, g.y_md, strides_, dil, g.pad_l, g.pad_r);
      dnnl::convolution_forward::primitive_desc pd(d, attr, onednn::engine());
      Entry e{pd, dnnl::convolution_forward(pd)};
      e.bf16 = t == memory::data_type::bf16;
      return e;
    };
    if (bf16_) {
      try {
        return cache_.emplace(g.key, make(memory::data_type::bf16)).first->second;
      } catch (const dnnl::error&) {  // no bf16 implementation for this shape: f32
      }
    }
    return cache_.emplace(g.key, make(memory::data_type::f32)).first->second;
  }

  enum class Algo { kDirect, kWinograd, kAuto };
  static Algo algo_from_env() {
    const char* v = std::getenv("TESSERA_CONV_ALGO");
    std::string a = v ? v : "auto";
    if (a == "direct") return Algo::kDirect;
    if (a == "winograd") return Algo::kWinograd;
    if (a == "auto" || a.empty()) return Algo::kAuto;
    fail_code(ErrorCode::kInvalidArgument, "TESSERA_CONV_ALGO must be direct, winograd or auto, got '", a, "'");
  }

  const Node& node_;
  Algo algo_ = algo_from_env();
  bool depthwise_;
  memory::dims strides_, dilations_;
  nn::Padding padding_ = nn::Padding::kValid;
  std::vector<int64_t> explicit_;
  bool has_bias_ = false, has_residual_ = false, stable_ = false;
  std::string activation_;
  float alpha_ = 0.2f;
  WeightCache weights_;
  const VecTable& vec_;
  bool manual_epilogue_ = false;
  bool bf16_ = false;
  std::map<memory::dims, Entry> cache_;
};

bool supported(const Node& n) {
  for (size_t i = 0; i < n.inputs.size(); ++i)
    if (!CompileEnv::is_f32(n, i)) return false;
  if (n.attr_or<std::string>("data_format", "NHWC") != "NHWC") return false;
  const auto& s = n.attr<std::vector<int64_t>>("strides");
  return s.size() == 4 && s[0] == 1 && s[3] == 1;
}

}  // namespace

void register_conv_kernels() {
  auto add = [](const char* op, bool depthwise, bool fused) {
    register_kernel(op, [depthwise, fused](const Node& n, const CompileEnv& env) -> std::unique_ptr<CpuKernel> {
      if (!supported(n)) return nullptr;
      return std::make_unique<ConvKernel>(n, env, depthwise, fused);
    });
  };
  add("Conv2D", false, false);
  add("TsFusedConv2D", false, true);
  add("DepthwiseConv2dNative", true, false);
  add("TsFusedDepthwiseConv2D", true, true);
}

}  // namespace tessera::cpu
