#include "runtime/model.h"

#include "frontend/tf/model_import.h"
#include "frontend/tf/proto_convert.h"
#include "ir/interpreter.h"

namespace tessera {

std::shared_ptr<const Model> Model::load(const std::string& path, const LoadOptions& options) {
  auto model = std::shared_ptr<Model>(new Model());
  tf::ModelImport imported = tf::import_model(path, {options.tags, options.allow_unsupported, options.skip_variables});
  model->module_ = std::move(imported.module);
  model->unsupported_ = std::move(imported.unsupported);
  const Module& m = model->module_;
  // Inspection only: nothing will run, so nothing is restored.
  if (!model->unsupported_.empty() || options.skip_variables) return model;

  ResourceStore store;
  std::vector<Feed> assets;
  for (const auto& [value, file] : m.asset_paths) assets.push_back({value, Tensor::string_scalar(file)});
  with_context("restoring variables of '" + path + "'", [&] {
    if (m.restore) {
      std::vector<Feed> feeds = assets;
      feeds.push_back({m.restore->filename, Tensor::string_scalar(m.restore->prefix)});
      interpret(*m.graph, feeds, {}, {m.restore->target}, &store);
    }
    if (!m.init_targets.empty()) interpret(*m.graph, assets, {}, m.init_targets, &store);
  });
  model->variables_ = store.snapshot();
  return model;
}

Session::Session(std::shared_ptr<const Model> model) : model_(std::move(model)) {
  if (!model_->unsupported_ops().empty())
    fail_code(ErrorCode::kUnimplemented, "'", model_->path(), "' uses unsupported ops; it can be inspected but not run");
  variables_.restore(model_->variables());
}

namespace {

void check_input(const TensorSpec& spec, const Tensor& t, const std::string& sig) {
  if (t.dtype() != spec.dtype)
    fail("signature '", sig, "' input '", spec.key, "' expects ", dtype_name(spec.dtype), ", got ",
         dtype_name(t.dtype()));
  if (!spec.shape.matches(t.shape()))
    fail("signature '", sig, "' input '", spec.key, "' expects shape ", spec.shape.str(), ", got ",
         shape_str(t.shape()));
}

}  // namespace

TensorMap Session::run(const std::string& signature, const TensorMap& inputs,
                       const std::vector<std::string>& outputs) {
  const Signature& sig = model_->signature(signature);
  std::vector<Feed> feeds;
  for (const TensorSpec& spec : sig.inputs) {
    auto it = inputs.find(spec.key);
    if (it == inputs.end()) {
      std::string names;
      for (const auto& s : sig.inputs) names += (names.empty() ? "" : ", ") + s.key;
      fail("signature '", signature, "' needs input '", spec.key, "' (inputs: ", names, ")");
    }
    check_input(spec, it->second, signature);
    feeds.push_back({spec.value, it->second});
  }
  for (const auto& [key, t] : inputs)
    if (!sig.find_input(key)) fail("signature '", signature, "' has no input '", key, "'");

  std::vector<const TensorSpec*> wanted;
  if (outputs.empty()) {
    for (const auto& spec : sig.outputs) wanted.push_back(&spec);
  } else {
    for (const auto& key : outputs) {
      const TensorSpec* spec = sig.find_output(key);
      if (!spec) fail("signature '", signature, "' has no output '", key, "'");
      wanted.push_back(spec);
    }
  }
  std::vector<Value> fetches;
  for (const TensorSpec* spec : wanted) fetches.push_back(spec->value);
  std::vector<Tensor> results = interpret(*model_->module().graph, feeds, fetches, sig.targets, &variables_);
  TensorMap out;
  for (size_t i = 0; i < wanted.size(); ++i) out[wanted[i]->key] = std::move(results[i]);
  return out;
}

std::vector<Tensor> Session::run_tensors(const std::vector<std::pair<std::string, Tensor>>& feeds,
                                         const std::vector<std::string>& fetches,
                                         const std::vector<std::string>& targets) {
  const Graph& g = *model_->module().graph;
  auto value_of = [&](const std::string& name) -> Value {
    tf::TensorRef ref = tf::parse_tensor_ref(name);
    Node* n = g.find(ref.node);
    if (!n) fail_code(ErrorCode::kNotFound, "tensor '", name, "' is not in the graph");
    if (ref.index >= n->num_outputs()) fail_code(ErrorCode::kNotFound, "tensor '", name, "': ", n->label(), " has ", n->num_outputs(), " outputs");
    return {n, ref.index};
  };
  std::vector<Feed> f;
  for (const auto& [name, t] : feeds) {
    Value v = value_of(name);
    const ValueInfo& info = v.node->outputs[v.index];
    if (info.dtype != t.dtype())
      fail("feed '", name, "' expects ", dtype_name(info.dtype), ", got ", dtype_name(t.dtype()));
    if (!info.shape.matches(t.shape()))
      fail("feed '", name, "' expects shape ", info.shape.str(), ", got ", shape_str(t.shape()));
    f.push_back({v, t});
  }
  std::vector<Value> fv;
  for (const auto& name : fetches) fv.push_back(value_of(name));
  std::vector<Node*> tv;
  for (const auto& name : targets) tv.push_back(value_of(name).node);
  return interpret(g, f, fv, tv, &variables_);
}

}  // namespace tessera
