#include "runtime/compiler.h"

#include <set>

#include "passes/pass.h"
#include "ir/op_registry.h"
#include "passes/signature_graph.h"

namespace tessera {

std::vector<std::string> CompileOptions::pass_list() const {
  return passes ? *passes : passes::default_pipeline();
}

std::optional<std::vector<std::string>> parse_pass_list(const std::string& text) {
  if (text.empty() || text == "default") return std::nullopt;
  std::vector<std::string> names;
  if (text == "none") return names;
  for (size_t pos = 0; pos <= text.size();) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    if (comma > pos) names.push_back(text.substr(pos, comma - pos));
    pos = comma + 1;
  }
  for (const auto& n : names) passes::find_pass(n);  // unknown names fail early, listing the known ones
  return names;
}

Signature bind_signature(const Signature& sig, const Graph& fn) {
  TS_CHECK(fn.args.size() == sig.inputs.size() && fn.results.size() == sig.outputs.size(), "signature '", sig.key,
           "': graph has ", fn.args.size(), " args and ", fn.results.size(), " results, signature ",
           sig.inputs.size(), " inputs and ", sig.outputs.size(), " outputs");
  Signature out = sig;
  out.targets.clear();  // now the graph's control results
  for (size_t i = 0; i < out.inputs.size(); ++i) out.inputs[i].value = fn.args[i]->out(0);
  for (size_t i = 0; i < out.outputs.size(); ++i) out.outputs[i].value = fn.results[i];
  return out;
}

namespace {

CompiledSignature optimise(const Module& module, const std::string& key, const std::vector<PartialShape>* shapes,
                           const ResourceStore* variables, const CompileOptions& options) {
  const Signature& sig = module.signature(key);
  return with_context("compiling signature '" + key + "' of '" + module.source + "'", [&] {
    std::shared_ptr<Graph> fn = signature_graph(module, sig);
    fn->name = key;  // names the graph in IR dumps and in the artifact
    if (shapes) reinfer_for_arg_shapes(*fn, *shapes);
    passes::PassContext ctx;
    ctx.variables = variables;
    // Variables other signatures write must stay variables in this one.
    std::set<std::string> written = passes::written_variables(module);
    ctx.written_variables = &written;
    ctx.verify = options.verify;
    ctx.after_pass = options.after_pass;
    passes::run_passes(*fn, options.pass_list(), ctx);
    CompiledSignature out;
    out.signature = bind_signature(sig, *fn);
    out.graph = fn;
    return out;
  });
}

CompiledSignature with_executable(CompiledSignature out, const std::string& key, const CompileOptions& options) {
  out.executable = with_context("compiling signature '" + key + "' for target " + options.target,
                                [&] { return make_executable(options.target, out.graph, options.cpu_options()); });
  return out;
}

}  // namespace

CompiledSignature optimise_signature(const Module& module, const std::string& key, const ResourceStore* variables,
                                     const CompileOptions& options) {
  return optimise(module, key, nullptr, variables, options);
}

CompiledSignature compile_signature(const Module& module, const std::string& key, const ResourceStore* variables,
                                    const CompileOptions& options) {
  return with_executable(optimise(module, key, nullptr, variables, options), key, options);
}

CompiledSignature compile_signature_for_shapes(const Module& module, const std::string& key,
                                               const std::vector<PartialShape>& shapes,
                                               const ResourceStore* variables, const CompileOptions& options) {
  return with_executable(optimise(module, key, &shapes, variables, options), key, options);
}

}  // namespace tessera
