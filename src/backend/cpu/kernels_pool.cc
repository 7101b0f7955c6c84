// MaxPool and AvgPool (NHWC, 2-D windows) on oneDNN's pooling primitive. TF's AvgPool divides
// by the number of in-bounds elements (pooling_avg_exclude_padding); MaxPool ignores padding
// (also EXPLICIT padding, which fold_pad_into_conv makes from a Pad before it).
#include <map>

#include "backend/cpu/kernel.h"
#include "backend/cpu/onednn.h"
#include "ops/nn_families.h"

namespace tessera::cpu {

namespace {

using dnnl::memory;

class PoolKernel final : public CpuKernel {
 public:
  PoolKernel(const Node& node, bool max) : max_(max) {
    const auto& k = node.attr<std::vector<int64_t>>("ksize");
    const auto& s = node.attr<std::vector<int64_t>>("strides");
    kernel_ = {k[1], k[2]};
    strides_ = {s[1], s[2]};
    padding_ = nn::parse_padding(node.attr<std::string>("padding"));
    // EXPLICIT (MaxPool only; fold_pad_into_conv writes it): NHWC pairs, spatial entries.
    if (padding_ == nn::Padding::kExplicit) explicit_ = node.attr<std::vector<int64_t>>("explicit_paddings");
  }

  void run(KernelRun& r) override {
    const Tensor& x = r.input(0);
    TS_CHECK(x.rank() == 4, "input must be 4-dimensional, got ", shape_str(x.shape()));
    const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
    const bool ex = explicit_.size() == 8;
    nn::Window wh = nn::window(h, kernel_[0], strides_[0], 1, padding_, ex ? explicit_[2] : 0, ex ? explicit_[3] : 0);
    nn::Window ww = nn::window(w, kernel_[1], strides_[1], 1, padding_, ex ? explicit_[4] : 0, ex ? explicit_[5] : 0);
    Tensor out = r.allocate(0, DType::kFloat32, {n, wh.out, ww.out, c});
    if (out.num_elements() == 0) return r.set_output(0, out);
    memory::desc src({n, c, h, w}, memory::data_type::f32, memory::format_tag::nhwc);
    memory::desc dst({n, c, wh.out, ww.out}, memory::data_type::f32, memory::format_tag::nhwc);
    memory::dims key{n, h, w, c};
    auto it = cache_.find(key);
    if (it == cache_.end()) {
      dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference,
                                    max_ ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_exclude_padding,
                                    src, dst, strides_, kernel_, {wh.pad_before, ww.pad_before},
                                    {wh.pad_after, ww.pad_after});
      dnnl::pooling_forward::primitive_desc pd(d, onednn::engine());
      it = cache_.emplace(key, dnnl::pooling_forward(pd)).first;
    }
    dnnl::stream s(onednn::engine());
    it->second.execute(s, {{DNNL_ARG_SRC, onednn::wrap(src, x.raw())}, {DNNL_ARG_DST, onednn::wrap(dst, out.raw())}});
    s.wait();
    r.set_output(0, out);
  }

 private:
  bool max_;
  memory::dims kernel_, strides_;
  nn::Padding padding_;
  std::vector<int64_t> explicit_;
  std::map<memory::dims, dnnl::pooling_forward> cache_;
};

}  // namespace

void register_pool_kernels() {
  for (bool max : {true, false})
    register_kernel(max ? "MaxPool" : "AvgPool", [max](const Node& n, const CompileEnv&) -> std::unique_ptr<CpuKernel> {
      if (!CompileEnv::is_f32(n, 0) || n.attr_or<std::string>("data_format", "NHWC") != "NHWC") return nullptr;
      const auto& k = n.attr<std::vector<int64_t>>("ksize");
      const auto& s = n.attr<std::vector<int64_t>>("strides");
      if (k.size() != 4 || s.size() != 4 || k[0] != 1 || k[3] != 1 || s[0] != 1 || s[3] != 1) return nullptr;
      if (n.attr<std::string>("padding") == "EXPLICIT") {
        // oneDNN's max pooling ignores padded positions as TF does; average pooling has no
        // EXPLICIT form in TF. Padding must stay below the window (the op's own check).
        auto ep = n.attr_or<std::vector<int64_t>>("explicit_paddings", {});
        if (!max || ep.size() != 8 || ep[0] || ep[1] || ep[6] || ep[7]) return nullptr;
        for (int i = 2; i < 6; ++i)
          if (ep[i] < 0 || ep[i] >= k[i / 2]) return nullptr;
      }
      return std::make_unique<PoolKernel>(n, max);
    });
}

}  // namespace tessera::cpu
