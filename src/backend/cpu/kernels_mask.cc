// The masks of piecewise-activation gradients: autodiff writes ReLU's gradient (and ReLU6's,
// ELU's, LeakyReLU's) as g * Cast(Greater(x, 0)), so training graphs run a float comparison to
// bool and a bool-to-float cast per activation, full tensor size. These kernels do both in
// one pass each, in parallel: comparisons of float32 against a same-shaped tensor or one value,
// Cast from bool to float32 (other casts use the reference kernel), and SelectV2 on a bool
// mask (dropout's keep-or-zero).
#include <cstdint>
#include <cstring>

#include "backend/cpu/kernel.h"
#include "backend/cpu/threads.h"

namespace tessera::cpu {

namespace {

enum class Cmp { kGreater, kGreaterEqual, kLess, kLessEqual };

class CompareKernel final : public CpuKernel {
 public:
  CompareKernel(const Node& node, Cmp cmp) : node_(node), cmp_(cmp) {}

  void run(KernelRun& r) override {
    const Tensor& a = r.input(0);
    const Tensor& b = r.input(1);
    const bool b_scalar = b.num_elements() == 1 && b.rank() <= a.rank();
    const bool a_scalar = a.num_elements() == 1 && a.rank() <= b.rank();
    if (!(a.shape() == b.shape() || b_scalar || a_scalar)) return run_reference(node_, r);
    const Tensor& big = b_scalar ? a : b;
    Tensor out = r.allocate(0, DType::kBool, big.shape());
    const float* pa = a.data<float>();
    const float* pb = b.data<float>();
    bool* py = out.data<bool>();
    const int64_t sa = a_scalar && !b_scalar ? 0 : 1, sb = b_scalar ? 0 : 1;
    parallel_for(big.num_elements(), 16384, r.threads(), [&](int64_t lo, int64_t hi) {
      switch (cmp_) {
        case Cmp::kGreater: for (int64_t i = lo; i < hi; ++i) py[i] = pa[i * sa] > pb[i * sb]; break;
        case Cmp::kGreaterEqual: for (int64_t i = lo; i < hi; ++i) py[i] = pa[i * sa] >= pb[i * sb]; break;
        case Cmp::kLess: for (int64_t i = lo; i < hi; ++i) py[i] = pa[i * sa] < pb[i * sb]; break;
        case Cmp::kLessEqual: for (int64_t i = lo; i < hi; ++i) py[i] = pa[i * sa] <= pb[i * sb]; break;
      }
    });
    r.set_output(0, out);
  }

 private:
  const Node& node_;
  Cmp cmp_;
};

class BoolToFloatKernel final : public CpuKernel {
 public:
  void run(KernelRun& r) override {
    const Tensor& x = r.input(0);
    Tensor out = r.allocate(0, DType::kFloat32, x.shape());
    // Bytes 0/1 converted arithmetically: a branch on a ReLU mask mispredicts half the time.
    const uint8_t* px = static_cast<const uint8_t*>(x.raw());
    float* py = out.data<float>();
    parallel_for(x.num_elements(), 16384, r.threads(), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) py[i] = static_cast<float>(px[i]);
    });
    r.set_output(0, out);
  }
};

// SelectV2(cond, t, e) over float32 where each operand has the result's shape or is one value
// (dropout: keep ? x * scale : 0); other broadcasts use the reference kernel.
class SelectKernel final : public CpuKernel {
 public:
  explicit SelectKernel(const Node& node) : node_(node) {}

  void run(KernelRun& r) override {
    const Tensor& c = r.input(0);
    const Tensor& t = r.input(1);
    const Tensor& e = r.input(2);
    const Tensor* big = &c;
    for (const Tensor* x : {&t, &e})
      if (x->num_elements() > big->num_elements()) big = x;
    for (const Tensor* x : {&c, &t, &e})
      if (!(x->shape() == big->shape() || (x->num_elements() == 1 && x->rank() <= big->rank())))
        return run_reference(node_, r);
    Tensor out = r.allocate(0, DType::kFloat32, big->shape());
    const bool* pc = c.data<bool>();
    const uint32_t* pt = static_cast<const uint32_t*>(t.raw());
    const uint32_t* pe = static_cast<const uint32_t*>(e.raw());
    uint32_t* py = static_cast<uint32_t*>(out.mutable_raw());
    const bool sc = c.num_elements() == 1 && out.num_elements() != 1, st = t.num_elements() == 1 && out.num_elements() != 1,
               se = e.num_elements() == 1 && out.num_elements() != 1;
    parallel_for(out.num_elements(), 16384, r.threads(), [&](int64_t lo, int64_t hi) {
      // Random masks (dropout) defeat branch prediction: blend the bits instead, with the
      // broadcast pattern as template arguments so each loop vectorises.
      auto loop = [&]<bool C, bool T, bool E>() {
        for (int64_t i = lo; i < hi; ++i) {
          const uint32_t m = 0u - static_cast<uint32_t>(pc[C ? 0 : i]);
          py[i] = (pt[T ? 0 : i] & m) | (pe[E ? 0 : i] & ~m);
        }
      };
      if (sc) {  // one condition: all of t or all of e
        const uint32_t* src = pc[0] ? pt : pe;
        const bool one = pc[0] ? st : se;
        for (int64_t i = lo; i < hi; ++i) py[i] = src[one ? 0 : i];
        return;
      }
      if (st && se) return loop.template operator()<false, true, true>();
      if (st) return loop.template operator()<false, true, false>();
      if (se) return loop.template operator()<false, false, true>();
      loop.template operator()<false, false, false>();
    });
    r.set_output(0, out);
  }

 private:
  const Node& node_;
};

bool output_is(const Node& n, DType t) { return n.num_outputs() == 1 && n.outputs[0].dtype == t; }

}  // namespace

void register_mask_kernels() {
  const std::pair<const char*, Cmp> cmps[] = {{"Greater", Cmp::kGreater},
                                              {"GreaterEqual", Cmp::kGreaterEqual},
                                              {"Less", Cmp::kLess},
                                              {"LessEqual", Cmp::kLessEqual}};
  for (const auto& [name, cmp] : cmps) {
    Cmp c = cmp;
    register_kernel(name, [c](const Node& n, const CompileEnv&) -> std::unique_ptr<CpuKernel> {
      if (!CompileEnv::is_f32(n, 0) || !CompileEnv::is_f32(n, 1) || !output_is(n, DType::kBool)) return nullptr;
      return std::make_unique<CompareKernel>(n, c);
    });
  }
  register_kernel("SelectV2", [](const Node& n, const CompileEnv&) -> std::unique_ptr<CpuKernel> {
    const Value& c = n.inputs.at(0);
    if (c.node->outputs.at(c.index).dtype != DType::kBool || !CompileEnv::is_f32(n, 1) || !CompileEnv::is_f32(n, 2) ||
        !output_is(n, DType::kFloat32))
      return nullptr;
    return std::make_unique<SelectKernel>(n);
  });
  register_kernel("Cast", [](const Node& n, const CompileEnv&) -> std::unique_ptr<CpuKernel> {
    const Value& in = n.inputs.at(0);
    if (in.node->outputs.at(in.index).dtype != DType::kBool || !output_is(n, DType::kFloat32)) return nullptr;
    return std::make_unique<BoolToFloatKernel>();
  });
}

}  // namespace tessera::cpu
