// Resource variables and checkpoint restore. TF1 reference variables (VariableV2/Assign) are
// rewritten into these by the importer, so the IR has one variable model.
#include <mutex>

#include "io/tensor_bundle.h"
#include "ops/array_util.h"
#include "ops/op_helpers.h"

namespace tessera {

std::string ops::variable_handle_key(const Node& node) {
  std::string shared = node.attr_or<std::string>("shared_name", "");
  return node.attr_or<std::string>("container", "") + "/" + (shared.empty() ? node.name : shared);
}

namespace {

const std::string& key_of(const KernelContext& c, size_t input) {
  const Tensor& h = c.input(input);
  TS_CHECK(h.dtype() == DType::kResource && h.num_elements() == 1, "expected a resource handle");
  const auto* handle = dynamic_cast<const ResourceHandle*>(h.variants()[0].get());
  TS_CHECK(handle, "uninitialised resource handle");
  return handle->key;
}

ResourceStore& store(KernelContext& c) {
  TS_CHECK(c.resources, "variables need a session (no resource store)");
  return *c.resources;
}

// The declared shape of the variable behind a handle, followed through Identity-like nodes.
PartialShape handle_shape(const Value& v) {
  const Node* n = v.node;
  while (n && (n->op == "Identity" || n->op == "IdentityN") && !n->inputs.empty())
    n = n->op == "Identity" ? n->inputs[0].node : n->inputs[v.index].node;
  if (n && n->op == "VarHandleOp") return n->attr<PartialShape>("shape");
  return PartialShape::unknown();
}

void update(KernelContext& c, int sign) {
  const std::string& key = key_of(c, 0);
  Tensor old = store(c).read(key);
  const Tensor& delta = c.input(1);
  TS_CHECK(old.shape() == delta.shape(), "update of variable '", key, "' of shape ",
           shape_str(old.shape()), " with shape ", shape_str(delta.shape()));
  Tensor next(old.dtype(), old.shape());
  dispatch(RealTypes{}, old.dtype(), "AssignAdd/Sub", [&]<typename T>() {
    const T* a = old.data<T>();
    const T* b = delta.data<T>();
    T* o = next.data<T>();
    for (int64_t i = 0; i < old.num_elements(); ++i)
      o[i] = static_cast<T>(sign > 0 ? static_cast<double>(a[i]) + static_cast<double>(b[i])
                                     : static_cast<double>(a[i]) - static_cast<double>(b[i]));
  });
  store(c).assign(key, next);
}

// Bundles opened by RestoreV2, cached per prefix for the duration of a restore.
std::shared_ptr<TensorBundleReader> open_bundle(const std::string& prefix) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<TensorBundleReader>> cache;
  std::lock_guard lock(mu);
  if (auto hit = cache[prefix].lock()) return hit;
  auto reader = std::make_shared<TensorBundleReader>(prefix);
  cache[prefix] = reader;
  return reader;
}

void restore_kernel(KernelContext& c) {
  const std::string& prefix = c.input(0).strings().at(0);
  const auto& names = c.input(1).strings();
  const auto& slices = c.input(2).strings();
  const auto& dtypes = c.attr<std::vector<DType>>("dtypes");
  TS_CHECK(names.size() == dtypes.size() && slices.size() == dtypes.size(),
           "RestoreV2: ", names.size(), " names, ", slices.size(), " slices, ", dtypes.size(), " dtypes");
  auto bundle = open_bundle(prefix);
  for (size_t i = 0; i < names.size(); ++i) {
    if (!slices[i].empty())
      fail_code(ErrorCode::kUnimplemented, "RestoreV2: sliced restore of '", names[i], "' is not supported");
    Tensor t = bundle->read(names[i]);
    if (t.dtype() != dtypes[i])
      fail("checkpoint tensor '", names[i], "' is ", dtype_name(t.dtype()), ", expected ", dtype_name(dtypes[i]));
    c.set_output(i, std::move(t));
  }
}

}  // namespace

void register_variable_ops(OpRegistry& r) {
  r.add({.name = "VarHandleOp",
         .attr_defaults = {{"container", std::string()}, {"shared_name", std::string()},
                           {"debug_name", std::string()}, {"allowed_devices", std::vector<std::string>{}}},
         .stateful = true,
         .infer = [](InferContext& c) { c.set_output(0, DType::kResource, PartialShape(std::vector<int64_t>{})); },
         .compute = [](KernelContext& c) {
           Tensor h(DType::kResource, {});
           h.variants()[0] = std::make_shared<ResourceHandle>(ops::variable_handle_key(c.node));
           c.set_output(0, h);
         }});
  r.add({.name = "ReadVariableOp", .stateful = true,
         .infer = [](InferContext& c) { c.set_output(0, c.attr<DType>("dtype"), handle_shape(c.node.inputs.at(0))); },
         .compute = [](KernelContext& c) {
           Tensor v = store(c).read(key_of(c, 0));
           TS_CHECK(v.dtype() == c.attr<DType>("dtype"), "variable '", key_of(c, 0), "' holds ",
                    dtype_name(v.dtype()), ", read as ", dtype_name(c.attr<DType>("dtype")));
           c.set_output(0, v);
         }});
  r.add({.name = "AssignVariableOp", .attr_defaults = {{"validate_shape", false}}, .stateful = true,
         .infer = [](InferContext&) {},
         .compute = [](KernelContext& c) { store(c).assign(key_of(c, 0), c.input(1)); }});
  r.add({.name = "AssignAddVariableOp", .stateful = true, .infer = [](InferContext&) {},
         .compute = [](KernelContext& c) { update(c, +1); }});
  r.add({.name = "AssignSubVariableOp", .stateful = true, .infer = [](InferContext&) {},
         .compute = [](KernelContext& c) { update(c, -1); }});
  r.add({.name = "VarIsInitializedOp", .stateful = true,
         .infer = [](InferContext& c) { c.set_output(0, DType::kBool, PartialShape(std::vector<int64_t>{})); },
         .compute = [](KernelContext& c) {
           c.set_output(0, Tensor::scalar<bool>(store(c).contains(key_of(c, 0))));
         }});
  r.add({.name = "DestroyResourceOp", .attr_defaults = {{"ignore_lookup_error", true}}, .stateful = true,
         .infer = [](InferContext&) {},
         .compute = [](KernelContext&) {}});
  // Embedding lookups read rows of a variable directly (Keras Embedding layers).
  r.add({.name = "ResourceGather", .attr_defaults = {{"batch_dims", int64_t{0}}, {"validate_indices", true}},
         .stateful = true,
         .infer = [](InferContext& c) {
           PartialShape params = handle_shape(c.node.inputs.at(0));
           const PartialShape& idx = c.input(1).shape;
           int64_t batch_dims = c.attr<int64_t>("batch_dims");
           if (!params.known_rank || !idx.known_rank) {
             c.set_output(0, c.attr<DType>("dtype"), PartialShape::unknown());
             return;
           }
           std::vector<int64_t> dims(params.dims.begin(), params.dims.begin() + batch_dims);
           dims.insert(dims.end(), idx.dims.begin() + batch_dims, idx.dims.end());
           dims.insert(dims.end(), params.dims.begin() + batch_dims + 1, params.dims.end());
           c.set_output(0, c.attr<DType>("dtype"), PartialShape(dims));
         },
         .compute = [](KernelContext& c) {
           Tensor params = store(c).read(key_of(c, 0));
           int64_t batch_dims = c.attr<int64_t>("batch_dims");
           c.set_output(0, ops::array::gather(params, c.input(1), batch_dims, batch_dims));
         }});
  r.add({.name = "RestoreV2", .output_args = {{"tensors", "", "dtypes"}}, .stateful = true,
         .infer = [](InferContext& c) {
           const auto& dtypes = c.attr<std::vector<DType>>("dtypes");
           for (size_t i = 0; i < dtypes.size(); ++i) c.set_output(i, dtypes[i], PartialShape::unknown());
         },
         .compute = restore_kernel});
}

}  // namespace tessera
