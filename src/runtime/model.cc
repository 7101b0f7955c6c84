#include "runtime/model.h"

#include "frontend/tf/model_import.h"
#include "frontend/tf/proto_convert.h"
#include "ir/interpreter.h"
#include "backend/cpu/isa.h"
#include "runtime/compile_cache.h"
#include "runtime/version.h"
#include "support/file.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdio>

namespace tessera {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

CompileOptions compile_options_from(const LoadOptions& o, const std::string& target) {
  CompileOptions c;
  c.target = target;
  c.passes = o.passes;
  c.threads = o.threads;
  c.inter_op = o.inter_op;
  c.concurrent_runs = o.concurrent_runs;
  c.isa = o.isa;
  c.precision = o.precision.empty() ? "fp32" : o.precision;
  cpu::check_precision(c.precision);
  c.after_pass = o.after_pass;
  return c;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

std::shared_ptr<Model> Model::from_artifact(Artifact artifact, const std::string& path, const LoadOptions& options) {
  auto model = std::shared_ptr<Model>(new Model());
  model->tags_ = options.tags;
  const ArtifactInfo& info = artifact.info;
  model->target_ = options.target.empty() ? info.target : options.target;
  model->compiled_ = true;
  model->compile_options_ = compile_options_from(options, model->target_);
  model->compile_options_.passes = info.passes;
  // The artifact's precision unless overridden; packed layouts name their element type, so
  // an override repacks from the original constants.
  if (options.precision.empty()) model->compile_options_.precision = info.precision;
  model->module_.source = path;
  model->module_.format = "tsr (" + info.target + (info.isa.empty() ? "" : ", " + info.isa) +
                          (info.precision == "fp32" ? "" : ", " + info.precision) + ")";
  model->variables_ = std::move(artifact.variables);
  cpu::CpuOptions cpu_options = model->compile_options_.cpu_options();
  std::string isa = model->target_ == "cpu" ? cpu::isa_name(cpu::resolve_isa(options.isa)) : "";
  if (info.target == "cpu" && info.isa != "avx512" && info.isa != "avx2" && info.isa != "scalar")
    fail_code(ErrorCode::kFailedPrecondition, "'", path, "' was built for ISA '", info.isa,
              "', which this Tessera does not know (expected avx512, avx2 or scalar)");
  // Packed weights are reused only when made for this ISA and oneDNN; otherwise the backend
  // repacks from the original constants, which the graph keeps.
  bool reuse_packed = info.isa == isa && info.onednn_version == onednn_version_string();
  for (auto& [key, cs] : artifact.signatures) {
    std::vector<cpu::PackedWeight> prepacked;
    if (reuse_packed) prepacked = artifact.packed[key];
    const auto& graph = cs.graph;  // named copies: clang lambdas cannot capture bindings
    const std::string mapping_label = "'" + path + "' rdu mapping of '" + key + "'";
    auto stored = artifact.rdu_mappings.find(key);
    bool use_stored = model->target_ == "rdu" && stored != artifact.rdu_mappings.end();
    cs.executable = with_context("'" + path + "': signature '" + key + "'", [&] {
      if (use_stored) return make_rdu_executable(graph, stored->second, mapping_label);
      return make_executable(model->target_, graph, cpu_options, prepacked);
    });
    model->module_.signatures[key] = cs.signature;
    auto slot = std::make_unique<Slot>();
    slot->compiled = std::move(cs);
    std::call_once(slot->once, [] {});
    model->slots_[key] = std::move(slot);
  }
  model->artifact_info_ = info;
  model->rdu_mappings_ = std::move(artifact.rdu_mappings);
  return model;
}

std::shared_ptr<const Model> Model::load(const std::string& path, const LoadOptions& options) {
  if (is_artifact_file(path)) return from_artifact(read_artifact(path), path, options);
  // A file named .tsr without the magic gets the artifact loader's "not a .tsr" error.
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".tsr") == 0 && !is_directory(path) && file_exists(path))
    read_artifact(path);

  std::string target = options.target.empty() ? "reference" : options.target;
  if (target != "cpu" && target != "reference" && target != "rdu")
    fail_code(ErrorCode::kInvalidArgument, "unknown target '", target, "' (expected cpu, rdu or reference)");
  bool compiled = target == "cpu" || target == "rdu" || options.passes.has_value();
  bool inspect_only = options.allow_unsupported || options.skip_variables;
  std::string cache_file;
  std::error_code exists_ec;
  bool path_exists = std::filesystem::exists(path, exists_ec);  // else import reports it
  if (compiled && target == "cpu" && options.use_cache && !inspect_only && !options.after_pass && path_exists) {
    CompileOptions c = compile_options_from(options, target);
    std::string options_text = str_cat("target=", target, ";passes=", join(c.pass_list()),
                                       ";isa=", cpu::isa_name(cpu::resolve_isa(options.isa)),
                                       ";precision=", c.precision,
                                       ";tags=", join(options.tags), ";onednn=", onednn_version_string(),
                                       options.training_signature.value_or(false) ? ";training_signature" : "");
    cache_file = compile_cache_path(compile_cache_key(path, options_text));
    if (is_artifact_file(cache_file)) {
      try {
        auto model = from_artifact(read_artifact(cache_file), path, options);
        model->cache_hit_ = true;
        touch_compile_cache_entry(cache_file);
        return model;
      } catch (const Error& e) {  // a damaged cache entry is rebuilt, not fatal
        std::fprintf(stderr, "tessera: ignoring compile cache entry '%s': %s\n", cache_file.c_str(), e.what());
      }
    }
  }

  auto model = std::shared_ptr<Model>(new Model());
  model->tags_ = options.tags;
  tf::ModelImport imported = tf::import_model(path, {options.tags, options.allow_unsupported, options.skip_variables,
                                                         options.training_signature.value_or(!compiled)});
  model->module_ = std::move(imported.module);
  model->unsupported_ = std::move(imported.unsupported);
  model->target_ = target;
  model->compiled_ = compiled;
  model->compile_options_ = compile_options_from(options, target);
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

  if (!cache_file.empty()) {
    // Fill the cache; a signature that fails to compile is reported when it is run instead.
    try {
      std::map<std::string, CompiledSignature> all = model->compile_all();
      ArtifactInfo info;
      info.target = target;
      info.isa = cpu::isa_name(cpu::resolve_isa(options.isa));
      info.precision = model->compile_options_.precision;
      info.onednn_version = onednn_version_string();
      info.tessera_version = kTesseraVersion;
      info.source = path;
      info.passes = model->compile_options_.pass_list();
      write_artifact(cache_file, info, all, model->variables_);
      prune_compile_cache(cache_file);
    } catch (const Error& e) {
      std::fprintf(stderr, "tessera: not caching the compiled '%s': %s\n", path.c_str(), e.what());
    }
  }
  return model;
}

const CompiledSignature& Model::compiled_signature(const std::string& key) const {
  Slot* slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = slots_.find(key);
    if (it == slots_.end()) {
      signature(key);  // unknown keys fail here, listing the known ones
      it = slots_.emplace(key, std::make_unique<Slot>()).first;
    }
    slot = it->second.get();
  }
  // call_once: concurrent first runs compile once; a failed compile is retried next time.
  std::call_once(slot->once, [&] {
    auto t0 = std::chrono::steady_clock::now();
    ResourceStore store;
    store.restore(variables_);
    slot->compiled = compile_signature(module_, key, &store, compile_options_);
    std::lock_guard<std::mutex> lock(mu_);
    compile_seconds_ += seconds_since(t0);
  });
  return slot->compiled;
}

std::map<std::string, CompiledSignature> Model::compile_all() const {
  std::map<std::string, CompiledSignature> out;
  for (const auto& [key, sig] : signatures()) out[key] = compiled_signature(key);
  return out;
}

const Model& Model::shape_source() const {
  if (module_.graph) return *this;
  if (!cache_hit_)
    fail_code(ErrorCode::kInvalidArgument, "'", path(),
              "' is a compiled artifact: its signatures run at the shapes they were compiled for "
              "(serve the SavedModel to feed other shapes)");
  // A compile-cache hit: its source SavedModel is imported once (graph and restored variables;
  // the cached artifact keeps only the variables its frozen graphs still read).
  std::call_once(source_once_, [&] {
    LoadOptions o;
    o.tags = tags_;
    o.target = "reference";
    source_ = Model::load(path(), o);
  });
  return *source_;
}

namespace {

// The shape a graph itself fixes for a fed tensor: a placeholder's declared shape (also one with
// a default, as TF2 signatures with defaults have). Any other fed tensor (TF1 signatures often
// name an Identity's output) is replaced whole, as TF does.
void check_placeholder_shape(const std::string& sig, const TensorSpec& spec, const Shape& shape) {
  const Node* n = spec.value.node;
  if (!n || (n->op != "Placeholder" && n->op != "PlaceholderWithDefault")) return;
  const PartialShape& declared = n->outputs.at(spec.value.index).shape;
  if (!declared.matches(shape))
    fail("signature '", sig, "' input '", spec.key, "' expects shape ", declared.str(), " (the shape of ", n->op, " '",
         n->name, "'), got ", shape_str(shape));
}

}  // namespace

std::shared_ptr<const CompiledSignature> Model::compiled_for_shapes(const std::string& key,
                                                                    const std::map<std::string, Shape>& shapes) const {
  const Model& source = shape_source();
  const Signature& sig = source.signature(key);
  std::vector<PartialShape> relaxed;
  std::string id = key;
  for (const TensorSpec& spec : sig.inputs) {
    auto it = shapes.find(spec.key);
    TS_CHECK(it != shapes.end(), "signature '", key, "': no shape given for input '", spec.key, "'");
    check_placeholder_shape(key, spec, it->second);
    PartialShape p(std::vector<int64_t>(it->second.begin(), it->second.end()));
    if (!p.dims.empty()) p.dims[0] = -1;  // any batch size shares the entry
    id += "|" + p.str();
    relaxed.push_back(std::move(p));
  }
  std::shared_ptr<Variant> v;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find_if(variants_.begin(), variants_.end(), [&](const auto& e) { return e.first == id; });
    if (it != variants_.end()) {
      variants_.splice(variants_.begin(), variants_, it);
    } else {
      variants_.emplace_front(id, std::make_shared<Variant>());
      if (variants_.size() > kMaxShapeVariants) variants_.pop_back();  // holders keep theirs alive
    }
    v = variants_.front().second;
  }
  std::call_once(v->once, [&] {
    try {
      auto t0 = std::chrono::steady_clock::now();
      ResourceStore store;
      store.restore(source.variables());
      CompileOptions options = compile_options_;
      if (!compiled_) options.passes = std::vector<std::string>{};  // the interpreter runs the imported graph as is
      std::string shapes_text;
      for (const auto& p : relaxed) shapes_text += (shapes_text.empty() ? "" : ", ") + p.str();
      v->compiled = std::make_shared<const CompiledSignature>(
          with_context("signature '" + key + "' for input shapes " + shapes_text + " (declared shapes differ)",
                       [&] { return compile_signature_for_shapes(source.module(), key, relaxed, &store, options); }));
      std::lock_guard<std::mutex> lock(mu_);
      compile_seconds_ += seconds_since(t0);
    } catch (const Error& e) {
      v->error = e;
    }
  });
  if (v->error) throw *v->error;
  return v->compiled;
}

double Model::compile_seconds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return compile_seconds_;
}

Session::Session(std::shared_ptr<const Model> model) : model_(std::move(model)) {
  if (!model_->unsupported_ops().empty())
    fail_code(ErrorCode::kUnimplemented, "'", model_->path(), "' uses unsupported ops; it can be inspected but not run");
  variables_.restore(model_->variables());
}

DType input_dtype(const TensorSpec& spec) {
  return spec.value.node ? spec.value.node->outputs.at(spec.value.index).dtype : spec.dtype;
}

namespace {

TensorMap run_compiled(const CompiledSignature& cs, const std::string& signature, const TensorMap& inputs,
                       const std::vector<const TensorSpec*>& wanted, ResourceStore* variables) {
  std::vector<Tensor> args;
  for (const TensorSpec& spec : cs.signature.inputs) args.push_back(inputs.at(spec.key));
  std::vector<Tensor> results = cs.executable->run(args, variables);
  TS_CHECK(results.size() == cs.signature.outputs.size(), "signature '", signature, "': executable returned ",
           results.size(), " results, expected ", cs.signature.outputs.size());
  TensorMap out;
  for (const TensorSpec* spec : wanted)
    for (size_t i = 0; i < cs.signature.outputs.size(); ++i)
      if (cs.signature.outputs[i].key == spec->key) out[spec->key] = results[i];
  return out;
}

}  // namespace

TensorMap Session::run(const std::string& signature, const TensorMap& inputs,
                       const std::vector<std::string>& outputs) {
  const Signature& sig = model_->signature(signature);
  std::vector<Feed> feeds;
  bool declared_shapes = true;  // false: some input's shape is not the SignatureDef's
  for (const TensorSpec& spec : sig.inputs) {
    auto it = inputs.find(spec.key);
    if (it == inputs.end()) {
      std::string names;
      for (const auto& s : sig.inputs) names += (names.empty() ? "" : ", ") + s.key;
      fail("signature '", signature, "' needs input '", spec.key, "' (inputs: ", names, ")");
    }
    const Tensor& t = it->second;
    if (t.dtype() != input_dtype(spec))
      fail("signature '", signature, "' input '", spec.key, "' expects ", dtype_name(input_dtype(spec)), ", got ",
           dtype_name(t.dtype()));
    // The SignatureDef's shape and the one the graph inferred for the fed tensor (or the arg).
    const PartialShape& inferred = spec.value.node ? spec.value.node->outputs.at(spec.value.index).shape : spec.shape;
    declared_shapes = declared_shapes && spec.shape.matches(t.shape()) && inferred.matches(t.shape());
    feeds.push_back({spec.value, t});
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
  if (!declared_shapes) {
    // Like TF: other shapes are fine if the graph takes them (compiled once per shape set).
    std::map<std::string, Shape> shapes;
    for (const auto& [key, t] : inputs) shapes[key] = t.shape();
    auto cs = model_->compiled_for_shapes(signature, shapes);
    return run_compiled(*cs, signature, inputs, wanted, &variables_);
  }
  if (model_->compiled())
    return run_compiled(model_->compiled_signature(signature), signature, inputs, wanted, &variables_);
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
  if (!model_->module().graph)
    fail_code(ErrorCode::kFailedPrecondition, "'", model_->path(),
              "' is a compiled artifact: graph tensors cannot be fetched by name; run a signature");
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
