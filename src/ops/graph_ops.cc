// Graph plumbing: constants, inputs, identities and no-ops.
#include "ir/grad.h"
#include "ops/op_helpers.h"

namespace tessera {
namespace {

using ops::infer_same_as_input;

void identity_kernel(KernelContext& c) { c.set_output(0, c.input(0)); }

void infer_const(InferContext& c) {
  const Tensor& value = c.attr<Tensor>("value");
  c.set_output(0, value.dtype(), PartialShape(value.shape()));
  c.node.known = {value};
}

void infer_placeholder(InferContext& c) {
  c.set_output(0, c.attr<DType>("dtype"), c.attr_or<PartialShape>("shape", PartialShape::unknown()));
}

// Forwards every input unchanged (IdentityN), one output per input.
void infer_identity_n(InferContext& c) {
  for (size_t i = 0; i < c.num_inputs(); ++i) c.set_output(i, c.input(i).dtype, c.input(i).shape);
}
void identity_n_kernel(KernelContext& c) {
  for (size_t i = 0; i < c.num_inputs(); ++i) c.set_output(i, c.input(i));
}

void infer_ensure_shape(InferContext& c) {
  const PartialShape& want = c.attr<PartialShape>("shape");
  c.set_output(0, c.input(0).dtype, want.known_rank ? want : c.input(0).shape);
}
void ensure_shape_kernel(KernelContext& c) {
  const PartialShape& want = c.attr<PartialShape>("shape");
  if (!want.matches(c.input(0).shape()))
    fail("shape ", shape_str(c.input(0).shape()), " is not compatible with ", want.str());
  c.set_output(0, c.input(0));
}

void check_numerics_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  dispatch(FloatTypes{}, x.dtype(), "CheckNumerics", [&]<typename T>() {
    const T* p = x.data<T>();
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      float v = static_cast<float>(p[i]);
      if (std::isnan(v) || std::isinf(v))
        fail(c.attr<std::string>("message"), " : Tensor had ", std::isnan(v) ? "NaN" : "Inf", " values");
    }
  });
  c.set_output(0, x);
}

}  // namespace

// Gradients: forwarding ops pass the gradient through; StopGradient/PreventGradient stop it.
GradList grad_forward(GradContext& c) { return {c.dy()}; }
GradList grad_stop(GradContext&) { return {std::nullopt}; }
GradList grad_identity_n(GradContext& c) {
  GradList out;
  for (size_t i = 0; i < c.node.inputs.size(); ++i) out.push_back(c.dy(static_cast<int>(i)));
  return out;
}

void register_graph_ops(OpRegistry& r) {
  r.add({.name = "Const", .infer = infer_const,
         .compute = [](KernelContext& c) { c.set_output(0, c.attr<Tensor>("value")); }});
  // Inputs are fed by the caller; the interpreter never runs these kernels for fed nodes.
  auto unfed = [](KernelContext& c) { fail("no value fed for this input"); };
  r.add({.name = "Placeholder", .attr_defaults = {{"shape", PartialShape::unknown()}},
         .infer = infer_placeholder, .compute = unfed});
  r.add({.name = "_Arg", .stateful = true, .infer = [](InferContext& c) {
           c.set_output(0, c.attr<DType>("T"), c.attr_or<PartialShape>("_shape", PartialShape::unknown()));
         }, .compute = unfed});
  r.add({.name = "PlaceholderWithDefault",
         .infer = [](InferContext& c) { c.set_output(0, c.attr<DType>("dtype"), c.attr<PartialShape>("shape")); },
         .compute = identity_kernel});
  for (const char* name : {"Identity", "StopGradient", "Snapshot"})
    add_with_grad(r, {.name = name, .infer = [](InferContext& c) { infer_same_as_input(c); }, .compute = identity_kernel},
                  std::string(name) == "StopGradient" ? GradFn(grad_stop) : GradFn(grad_forward));
  add_with_grad(r, {.name = "PreventGradient", .attr_defaults = {{"message", std::string()}},
         .infer = [](InferContext& c) { infer_same_as_input(c); }, .compute = identity_kernel}, grad_stop);
  add_with_grad(r, {.name = "IdentityN", .output_args = {{"output", "", "T"}}, .infer = infer_identity_n,
         .compute = identity_n_kernel}, grad_identity_n);
  r.add({.name = "NoOp", .infer = [](InferContext&) {}, .compute = [](KernelContext&) {}});
  add_with_grad(r, {.name = "EnsureShape", .infer = infer_ensure_shape, .compute = ensure_shape_kernel}, grad_forward);
  r.add({.name = "CheckNumerics", .infer = [](InferContext& c) { infer_same_as_input(c); },
         .compute = check_numerics_kernel});
  r.add({.name = "CheckNumericsV2", .infer = [](InferContext& c) { infer_same_as_input(c); },
         .compute = check_numerics_kernel});
}

}  // namespace tessera
