// The gradients of Conv2D on oneDNN: Conv2DBackpropInput (also what Conv2DTranspose runs) on
// convolution backward-data, Conv2DBackpropFilter on convolution backward-weights. NHWC
// activations in and out (TF's layout, no transposes); filters HWIO, or HWIGO viewed as
// grouped when the filter depth divides the input depth (the grouped form autodiff emits for
// depthwise convolutions). oneDNN picks its own filter layout; plain HWIO is reordered into it
// (backward data) or out of it (backward weights) through per-thread buffers. Primitives are
// cached per shape. NCHW graphs and other dtypes use the reference kernels.
#include <map>

#include "backend/cpu/kernel.h"
#include "backend/cpu/onednn.h"
#include "ops/nn_families.h"

namespace tessera::cpu {

namespace {

using dnnl::memory;

// Shapes and descriptors of one convolution, from the input, filter and output shapes.
struct ConvGeometry {
  memory::dims key;
  memory::desc x_md, y_md, w_plain, w_any;
  memory::dims pad_l, pad_r;
  Shape y_shape;
};

class ConvGradKernel final : public CpuKernel {
 public:
  ConvGradKernel(const Node& node, bool data) : node_(node), data_(data) {
    const auto& s = node.attr<std::vector<int64_t>>("strides");
    std::vector<int64_t> d = node.attr_or<std::vector<int64_t>>("dilations", {1, 1, 1, 1});
    strides_ = {s[1], s[2]};
    dil_ = {d[1] - 1, d[2] - 1};  // oneDNN counts dilation from 0
    dilations_ = {d[1], d[2]};
    padding_ = nn::parse_padding(node.attr<std::string>("padding"));
    if (padding_ == nn::Padding::kExplicit) explicit_ = node.attr<std::vector<int64_t>>("explicit_paddings");
  }

  void run(KernelRun& r) override {
    // data: (input_sizes, filter, dy) -> dx;  weights: (x, filter_sizes, dy) -> dfilter
    const Tensor& dy = r.input(2);
    Shape xs, fs;
    if (data_) {
      fs = r.input(1).shape();
      std::vector<int64_t> sizes = r.input(0).to_int_vector();
      if (sizes.size() == 2) sizes = {dy.rank() == 4 ? dy.dim(0) : 0, sizes[0], sizes[1], fs.size() == 4 ? fs[2] : 0};
      xs = Shape(sizes.begin(), sizes.end());
    } else {
      xs = r.input(0).shape();
      std::vector<int64_t> sizes = r.input(1).to_int_vector();
      fs = Shape(sizes.begin(), sizes.end());
    }
    if (xs.size() != 4 || fs.size() != 4 || dy.rank() != 4 || fs[2] <= 0 || xs[3] % fs[2] != 0 ||
        fs[3] % (xs[3] / fs[2]) != 0)
      return run_reference(node_, r);  // the reference kernel reports what is wrong
    ConvGeometry g = geometry(xs, fs);
    if (g.y_shape != dy.shape() || num_elements(xs) == 0 || num_elements(fs) == 0 || dy.num_elements() == 0)
      return run_reference(node_, r);
    Entry& e = entry(g);
    dnnl::stream s(onednn::engine());
    if (data_) {
      Tensor dx = r.allocate(0, DType::kFloat32, xs);
      const Tensor& f = r.input(1);
      memory w = onednn::wrap(g.w_plain, f.raw());
      if (e.weights_md != g.w_plain) {
        memory packed = onednn::wrap(e.weights_md, onednn::thread_buffer(onednn::ThreadBuffer::kBlockedSrc,
                                                                          e.weights_md.get_size()));
        dnnl::reorder(w, packed).execute(s, w, packed);
        w = packed;
      }
      e.prim.execute(s, {{DNNL_ARG_DIFF_DST, onednn::wrap(g.y_md, dy.raw())},
                         {DNNL_ARG_WEIGHTS, w},
                         {DNNL_ARG_DIFF_SRC, onednn::wrap(g.x_md, dx.raw())},
                         {DNNL_ARG_SCRATCHPAD, onednn::thread_scratchpad(e.scratchpad_md)}});
      s.wait();
      return r.set_output(0, dx);
    }
    Tensor df = r.allocate(0, DType::kFloat32, fs);
    const Tensor& x = r.input(0);
    memory plain = onednn::wrap(g.w_plain, df.raw());
    memory dw = e.weights_md == g.w_plain
                    ? plain
                    : onednn::wrap(e.weights_md, onednn::thread_buffer(onednn::ThreadBuffer::kBlockedDst,
                                                                       e.weights_md.get_size()));
    e.prim.execute(s, {{DNNL_ARG_SRC, onednn::wrap(g.x_md, x.raw())},
                       {DNNL_ARG_DIFF_DST, onednn::wrap(g.y_md, dy.raw())},
                       {DNNL_ARG_DIFF_WEIGHTS, dw},
                       {DNNL_ARG_SCRATCHPAD, onednn::thread_scratchpad(e.scratchpad_md)}});
    if (e.weights_md != g.w_plain) dnnl::reorder(dw, plain).execute(s, dw, plain);
    s.wait();
    r.set_output(0, df);
  }

 private:
  struct Entry {
    dnnl::primitive prim;
    memory::desc weights_md, scratchpad_md;
  };

  ConvGeometry geometry(const Shape& xs, const Shape& fs) const {
    ConvGeometry g;
    const int64_t n = xs[0], h = xs[1], w = xs[2], c = xs[3], kh = fs[0], kw = fs[1], fin = fs[2], fout = fs[3];
    g.key = {n, h, w, c, kh, kw, fin, fout};
    const bool ex = explicit_.size() == 8;
    nn::Window wh = nn::window(h, kh, strides_[0], dilations_[0], padding_, ex ? explicit_[2] : 0, ex ? explicit_[3] : 0);
    nn::Window ww = nn::window(w, kw, strides_[1], dilations_[1], padding_, ex ? explicit_[4] : 0, ex ? explicit_[5] : 0);
    g.pad_l = {wh.pad_before, ww.pad_before};
    g.pad_r = {wh.pad_after, ww.pad_after};
    g.y_shape = {n, wh.out, ww.out, fout};
    g.x_md = memory::desc({n, c, h, w}, memory::data_type::f32, memory::format_tag::nhwc);
    g.y_md = memory::desc({n, fout, wh.out, ww.out}, memory::data_type::f32, memory::format_tag::nhwc);
    const int64_t groups = c / fin;
    if (groups == 1) {
      g.w_plain = memory::desc({fout, fin, kh, kw}, memory::data_type::f32, memory::format_tag::hwio);
      g.w_any = memory::desc({fout, fin, kh, kw}, memory::data_type::f32, memory::format_tag::any);
    } else {
      // TF's output channel is group * per_group + o: oneDNN's goihw stored as h,w,i,g,o.
      memory::dims d{groups, fout / groups, fin, kh, kw};
      g.w_plain = memory::desc(d, memory::data_type::f32, memory::format_tag::hwigo);
      g.w_any = memory::desc(d, memory::data_type::f32, memory::format_tag::any);
    }
    return g;
  }

  Entry& entry(const ConvGeometry& g) {
    auto it = cache_.find(g.key);
    if (it != cache_.end()) return it->second;
    auto& eng = onednn::engine();
    dnnl::primitive_attr attr;
    onednn::use_own_scratchpad(attr);
    // The forward primitive is only a hint for the backward ones (its layouts and algorithm).
    dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                       g.x_md, g.w_any, g.y_md, strides_, dil_, g.pad_l, g.pad_r);
    dnnl::convolution_forward::primitive_desc fpd(fd, eng);
    Entry e;
    if (data_) {
      dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, g.x_md, g.w_any, g.y_md, strides_,
                                              dil_, g.pad_l, g.pad_r);
      dnnl::convolution_backward_data::primitive_desc pd(d, attr, eng, fpd);
      e = {dnnl::convolution_backward_data(pd), pd.weights_desc(), pd.scratchpad_desc()};
    } else {
      dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, g.x_md, g.w_any, g.y_md,
                                                 strides_, dil_, g.pad_l, g.pad_r);
      dnnl::convolution_backward_weights::primitive_desc pd(d, attr, eng, fpd);
      e = {dnnl::convolution_backward_weights(pd), pd.diff_weights_desc(), pd.scratchpad_desc()};
    }
    return cache_.emplace(g.key, std::move(e)).first->second;
  }

  const Node& node_;
  bool data_;
  memory::dims strides_, dil_, dilations_;
  nn::Padding padding_ = nn::Padding::kValid;
  std::vector<int64_t> explicit_;
  std::map<memory::dims, Entry> cache_;
};

bool supported(const Node& n) {
  if (n.attr_or<std::string>("data_format", "NHWC") != "NHWC") return false;
  if (!CompileEnv::is_f32(n, n.op == "Conv2DBackpropInput" ? 1 : 0) || !CompileEnv::is_f32(n, 2)) return false;
  const auto& s = n.attr<std::vector<int64_t>>("strides");
  auto d = n.attr_or<std::vector<int64_t>>("dilations", {1, 1, 1, 1});
  if (s.size() != 4 || s[0] != 1 || s[3] != 1 || d.size() != 4 || d[0] != 1 || d[3] != 1) return false;
  if (n.attr<std::string>("padding") == "EXPLICIT") {
    auto ep = n.attr_or<std::vector<int64_t>>("explicit_paddings", {});
    if (ep.size() != 8 || ep[0] || ep[1] || ep[6] || ep[7]) return false;
  }
  return true;
}

}  // namespace

void register_conv_grad_kernels() {
  for (bool data : {true, false})
    register_kernel(data ? "Conv2DBackpropInput" : "Conv2DBackpropFilter",
                    [data](const Node& n, const CompileEnv&) -> std::unique_ptr<CpuKernel> {
                      if (!supported(n)) return nullptr;
                      return std::make_unique<ConvGradKernel>(n, data);
                    });
}

}  // namespace tessera::cpu
