#include "frontend/tf/graph_import.h"

#include <deque>
#include <set>
#include <unordered_map>

#include "frontend/tf/proto_convert.h"
#include "ir/op_registry.h"
#include "ir/verifier.h"
#include "tensorflow/core/framework/function.pb.h"

namespace tessera::tf {
namespace {

constexpr int kMaxInlineDepth = 64;

// A node between NodeDef and IR: inputs resolved to (global node name, flat output index).
struct RawInput {
  std::string node;
  int index = 0;
};
struct RawNode {
  std::string name;
  std::string op;
  std::string device;
  std::vector<RawInput> inputs;
  std::vector<std::string> control_inputs;
  AttrMap attrs;
  int depth = 0;  // inlining depth, to stop runaway recursion
};

// Attribute `key` of a node not yet in the IR (so the op registry has not checked it).
template <typename T>
const T& raw_attr(const RawNode& n, const std::string& key) {
  auto it = n.attrs.find(key);
  TS_CHECK(it != n.attrs.end(), "node '", n.name, "' (", n.op, ") has no attribute '", key, "'");
  const T* value = std::get_if<T>(&it->second);
  TS_CHECK(value, "node '", n.name, "' (", n.op, ") has attribute '", key, "' of the wrong kind");
  return *value;
}

bool is_call_op(const std::string& op) {
  return op == "PartitionedCall" || op == "StatefulPartitionedCall";
}

class Importer {
 public:
  Importer(const tensorflow::GraphDef& def, const ImportOptions& options)
      : def_(def), options_(options), library_(std::make_shared<FunctionLibrary>()) {
    for (const auto& f : def.library().function()) functions_[f.signature().name()] = &f;
  }

  ImportResult run(const std::vector<std::string>& roots) {
    std::vector<RawNode> raw = collect_graph_nodes(roots);
    auto graph = std::make_shared<Graph>(library_);
    build(*graph, std::move(raw));
    finish_unsupported();
    if (unsupported_.empty()) verify_graph(*graph);
    return {graph, unsupported_};
  }

 private:
  // ---- Graph level -------------------------------------------------------------------------

  std::vector<RawNode> collect_graph_nodes(const std::vector<std::string>& roots) {
    std::unordered_map<std::string, const tensorflow::NodeDef*> by_name;
    for (const auto& n : def_.node()) {
      if (!by_name.emplace(n.name(), &n).second) fail("duplicate node name '", n.name(), "'");
    }
    std::set<std::string> needed;
    std::deque<std::string> work;
    for (const auto& r : roots) {
      TensorRef ref = parse_tensor_ref(r);
      if (!by_name.count(ref.node)) fail_code(ErrorCode::kNotFound, "tensor '", r, "' names no node in the graph");
      work.push_back(ref.node);
    }
    while (!work.empty()) {
      std::string name = work.front();
      work.pop_front();
      if (!needed.insert(name).second) continue;
      auto it = by_name.find(name);
      if (it == by_name.end()) fail("node '", name, "' is referenced but not defined");
      for (const auto& in : it->second->input()) work.push_back(parse_tensor_ref(in).node);
    }
    std::vector<RawNode> raw;
    for (const auto& n : def_.node()) {
      if (!needed.count(n.name())) continue;
      RawNode r = with_context("node '" + n.name() + "' (" + n.op() + ")", [&] { return convert_node(n, {}); });
      if (def_.versions().producer() <= 21 && (r.op == "Placeholder" || r.op == "PlaceholderV2")) {
        auto it = r.attrs.find("shape");
        if (it != r.attrs.end() && std::holds_alternative<PartialShape>(it->second) &&
            std::get<PartialShape>(it->second).rank() == 0)
          it->second = PartialShape::unknown();  // before GraphDef version 22 this meant "any shape"
      }
      for (const auto& in : n.input()) {
        TensorRef ref = parse_tensor_ref(in);
        if (ref.control) r.control_inputs.push_back(ref.node);
        else r.inputs.push_back({ref.node, ref.index});
      }
      raw.push_back(std::move(r));
    }
    return raw;
  }

  RawNode convert_node(const tensorflow::NodeDef& n, const AttrMap& call_attrs) {
    RawNode r;
    r.name = n.name();
    r.op = n.op();
    r.device = n.device();
    for (const auto& [key, value] : n.attr()) {
      // "_"-prefixed attributes are TF runtime hints (_output_shapes, _class, ...), not semantics.
      if (!key.empty() && key[0] == '_') continue;
      if (value.value_case() == tensorflow::AttrValue::kPlaceholder) {
        auto it = call_attrs.find(value.placeholder());
        if (it == call_attrs.end())
          fail("attribute '", key, "' refers to function attribute '", value.placeholder(), "' which the call does not set");
        r.attrs[key] = it->second;
      } else {
        const tensorflow::AttrValue& proto = value;  // structured bindings cannot be captured (C++20 clang)
        r.attrs[key] = with_context("attribute '" + key + "'", [&] { return convert_attr(proto); });
      }
    }
    return r;
  }

  // ---- Function inlining -------------------------------------------------------------------

  const tensorflow::FunctionDef& function(const std::string& name) const {
    auto it = functions_.find(name);
    if (it == functions_.end()) fail_code(ErrorCode::kNotFound, "function '", name, "' is not in the graph's library");
    return *it->second;
  }

  // The function a node calls, or "" if it is not a call.
  std::string callee(const RawNode& n) const {
    if (is_call_op(n.op)) {
      auto it = n.attrs.find("f");
      TS_CHECK(it != n.attrs.end() && std::holds_alternative<FuncRef>(it->second), "call without attribute 'f'");
      return std::get<FuncRef>(it->second).name;
    }
    if (functions_.count(n.op)) return n.op;
    return "";
  }

  // Flat output index for "node:arg:k" inside a function body, where `producer` is that node.
  int flat_index(const RawNode& producer, const std::string& arg, int k) const {
    if (arg.empty()) return k;
    std::string fn = callee(producer);
    if (!fn.empty()) {
      if (is_call_op(producer.op)) return k;  // single list output "output"
      const auto& sig = function(fn).signature();
      for (int i = 0; i < sig.output_arg_size(); ++i)
        if (sig.output_arg(i).name() == arg) return i + k;
      fail("function '", fn, "' has no output '", arg, "'");
    }
    const OpDef* def = OpRegistry::global().find(producer.op);
    if (!def) return k;  // unknown op: reported as unsupported later
    Node probe;
    probe.name = producer.name;
    probe.op = producer.op;
    probe.attrs = producer.attrs;
    for (const auto& [key, value] : def->attr_defaults)
      if (!probe.attrs.count(key)) probe.attrs[key] = value;
    return def->flat_output_index(probe, arg, k);
  }

  // Converts a FunctionDef body into RawNodes named prefix + local name. `arg_inputs` gives
  // what each function argument is bound to; returns the RawInputs of the function's results
  // and the names of its control results.
  struct Expanded {
    std::vector<RawNode> nodes;
    std::vector<RawInput> results;
    std::vector<std::string> control_results;
  };
  Expanded expand_function(const tensorflow::FunctionDef& fn, const std::string& prefix,
                           const std::vector<RawInput>& arg_inputs, const AttrMap& call_attrs,
                           int depth) {
    const auto& sig = fn.signature();
    TS_CHECK(static_cast<int>(arg_inputs.size()) == sig.input_arg_size(), "function '", sig.name(), "' takes ",
             sig.input_arg_size(), " inputs, the call passes ", arg_inputs.size());
    std::unordered_map<std::string, RawInput> args;
    for (int i = 0; i < sig.input_arg_size(); ++i) args[sig.input_arg(i).name()] = arg_inputs[i];

    Expanded out;
    std::unordered_map<std::string, size_t> local;  // local name -> index in out.nodes
    for (const auto& n : fn.node_def()) {
      RawNode r = with_context("node '" + n.name() + "' (" + n.op() + ") in function '" + sig.name() + "'",
                               [&] { return convert_node(n, call_attrs); });
      r.name = prefix + n.name();
      r.depth = depth;
      local[n.name()] = out.nodes.size();
      out.nodes.push_back(std::move(r));
    }
    auto resolve = [&](const std::string& text) -> RawInput {
      TensorRef ref = parse_tensor_ref(text);
      if (ref.arg.empty() && args.count(ref.node)) {
        TS_CHECK(ref.index == 0, "function argument reference '", text, "' with an index");
        return args.at(ref.node);
      }
      auto it = local.find(ref.node);
      if (it == local.end()) fail("function '", sig.name(), "' refers to unknown tensor '", text, "'");
      return {prefix + ref.node, flat_index(out.nodes[it->second], ref.arg, ref.index)};
    };
    for (int i = 0; i < fn.node_def_size(); ++i) {
      RawNode& r = out.nodes[i];
      for (const auto& in : fn.node_def(i).input()) {
        TensorRef ref = parse_tensor_ref(in);
        if (ref.control) {
          if (args.count(ref.node)) r.control_inputs.push_back(args.at(ref.node).node);
          else if (local.count(ref.node)) r.control_inputs.push_back(prefix + ref.node);
          else fail("function '", sig.name(), "' has a control input on unknown node '", ref.node, "'");
        } else {
          r.inputs.push_back(with_context(r.name, [&] { return resolve(in); }));
        }
      }
    }
    for (const auto& arg : sig.output_arg()) {
      auto it = fn.ret().find(arg.name());
      TS_CHECK(it != fn.ret().end(), "function '", sig.name(), "' does not bind output '", arg.name(), "'");
      out.results.push_back(resolve(it->second));
    }
    for (const auto& cr : sig.control_output()) {
      auto it = fn.control_ret().find(cr);
      if (it != fn.control_ret().end()) out.control_results.push_back(prefix + it->second);
    }
    return out;
  }

  // Replaces every call in `nodes` (recursively) by the callee's body. The call node itself
  // becomes an IdentityN of the callee's results that also waits for its control results, so
  // every existing reference to it ("call:1", "^call") keeps its meaning.
  void inline_calls(std::vector<RawNode>& nodes) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      std::string fn = callee(nodes[i]);
      if (fn.empty()) continue;
      RawNode call = nodes[i];
      if (call.depth >= kMaxInlineDepth)
        fail("function calls nested deeper than ", kMaxInlineDepth, " at node '", call.name, "' (recursive function?)");
      AttrMap call_attrs = call.attrs;
      if (is_call_op(call.op)) {
        const FuncRef& f = raw_attr<FuncRef>(call, "f");
        if (f.attrs) call_attrs = *f.attrs;
      }
      Expanded body = with_context("inlining '" + fn + "' at node '" + call.name + "'", [&] {
        return expand_function(function(fn), call.name + "/", call.inputs, call_attrs, call.depth + 1);
      });
      if (!call.control_inputs.empty()) {
        RawNode deps{call.name + "/_call_deps", "NoOp", call.device, {}, call.control_inputs, {}, call.depth + 1};
        for (RawNode& b : body.nodes)
          if (b.inputs.empty() && b.control_inputs.empty()) b.control_inputs.push_back(deps.name);
        body.nodes.push_back(std::move(deps));
      }
      RawNode& replacement = nodes[i];
      replacement.op = "IdentityN";
      replacement.inputs = body.results;
      replacement.control_inputs = body.control_results;
      replacement.attrs.clear();
      for (RawNode& b : body.nodes) nodes.push_back(std::move(b));
      // New nodes are visited later in this loop, which inlines nested calls.
    }
  }

  // ---- TF1 reference variables -------------------------------------------------------------

  // VariableV2 "v" becomes VarHandleOp "v/_handle" plus ReadVariableOp "v"; Assign-family ops
  // on it become the resource forms, followed by a read so their ref output still has a value.
  void rewrite_ref_variables(std::vector<RawNode>& nodes) {
    std::set<std::string> variables;
    for (const RawNode& n : nodes)
      if (n.op == "VariableV2" || n.op == "Variable") variables.insert(n.name);
    if (variables.empty()) return;
    auto handle_of = [&](const RawNode& n) -> std::string {
      TS_CHECK(!n.inputs.empty() && variables.count(n.inputs[0].node), "node '", n.name, "' (", n.op,
               ") must take a variable as its first input");
      return n.inputs[0].node + "/_handle";
    };
    std::vector<RawNode> added;
    for (RawNode& n : nodes) {
      if (variables.count(n.name)) {
        auto shared_it = n.attrs.find("shared_name");
        const std::string* shared = shared_it == n.attrs.end() ? nullptr : std::get_if<std::string>(&shared_it->second);
        DType dtype = raw_attr<DType>(n, "dtype");
        RawNode handle{n.name + "/_handle", "VarHandleOp", n.device, {}, n.control_inputs, {}, n.depth};
        handle.attrs["dtype"] = dtype;
        handle.attrs["shape"] = raw_attr<PartialShape>(n, "shape");
        handle.attrs["shared_name"] = shared && !shared->empty() ? *shared : n.name;
        handle.attrs["container"] = n.attrs.count("container") ? n.attrs.at("container") : AttrValue(std::string());
        n = RawNode{n.name, "ReadVariableOp", n.device, {{handle.name, 0}}, {}, {{"dtype", dtype}}, n.depth};
        added.push_back(std::move(handle));
      } else if (n.op == "Assign" || n.op == "AssignAdd" || n.op == "AssignSub") {
        static const std::map<std::string, std::string> kResourceOp = {
            {"Assign", "AssignVariableOp"}, {"AssignAdd", "AssignAddVariableOp"}, {"AssignSub", "AssignSubVariableOp"}};
        std::string handle = handle_of(n);
        DType dtype = raw_attr<DType>(n, "T");
        TS_CHECK(n.inputs.size() >= 2, "node '", n.name, "' (", n.op, ") needs a value input");
        RawNode update{n.name + "/_update", kResourceOp.at(n.op), n.device, {{handle, 0}, n.inputs[1]},
                       n.control_inputs, {{"dtype", dtype}}, n.depth};
        n = RawNode{n.name, "ReadVariableOp", n.device, {{handle, 0}}, {update.name}, {{"dtype", dtype}}, n.depth};
        added.push_back(std::move(update));
      } else if (n.op == "IsVariableInitialized") {
        std::string handle = handle_of(n);
        n = RawNode{n.name, "VarIsInitializedOp", n.device, {{handle, 0}}, n.control_inputs, {}, n.depth};
      }
    }
    for (RawNode& a : added) nodes.push_back(std::move(a));
  }

  // ---- IR construction ---------------------------------------------------------------------

  void build(Graph& graph, std::vector<RawNode> raw) {
    inline_calls(raw);
    rewrite_ref_variables(raw);
    for (const RawNode& r : raw) {
      Node* n = graph.add(r.name, r.op, {}, r.attrs);
      n->device = r.device;
    }
    for (const RawNode& r : raw) {
      Node* n = graph.find(r.name);
      for (const RawInput& in : r.inputs) {
        Node* src = graph.find(in.node);
        if (!src) fail(n->label(), ": input '", in.node, ":", in.index, "' names no node");
        n->inputs.push_back({src, in.index});
      }
      for (const std::string& c : r.control_inputs) {
        Node* src = graph.find(c);
        if (!src) fail(n->label(), ": control input '^", c, "' names no node");
        n->control_inputs.push_back(src);
      }
    }
    infer_all(graph);
  }

  void infer_all(Graph& graph) {
    // Highest output index each node is read at: the output count of unsupported nodes.
    std::unordered_map<const Node*, int> max_index;
    for (const auto& n : graph.nodes())
      for (const Value& v : n->inputs) max_index[v.node] = std::max(max_index[v.node], v.index);
    std::set<const Node*> poisoned;  // unsupported, or downstream of one
    for (Node* n : graph.topo_order()) {
      bool blocked = !n->def;
      for (const Value& v : n->inputs) blocked = blocked || poisoned.count(v.node);
      if (!n->def) unsupported_[n->op].push_back(n->name);
      if (blocked) {
        poisoned.insert(n);
        int count = max_index.count(n) ? max_index[n] + 1 : 1;
        n->outputs.assign(count, ValueInfo{DType::kInvalid, PartialShape::unknown()});
        n->known.assign(count, Tensor());
        continue;
      }
      with_context(n->label(), [&] {
        import_functions_of(*n);
        for (const Value& v : n->inputs)
          if (v.index >= v.node->num_outputs())
            fail("input ", v.str(), " refers to an output the producer does not have");
      });
      infer_node(*n);
    }
  }

  // If/While/Case bodies: import each referenced function once into the shared library.
  void import_functions_of(const Node& n) {
    for (const auto& [key, value] : n.attrs) {
      if (const auto* f = std::get_if<FuncRef>(&value)) import_function(f->name);
      if (const auto* fs = std::get_if<std::vector<FuncRef>>(&value))
        for (const FuncRef& f : *fs) import_function(f.name);
    }
  }

  void import_function(const std::string& name) {
    if (library_->functions.count(name)) return;
    const tensorflow::FunctionDef& fn = function(name);
    const auto& sig = fn.signature();
    auto graph = std::make_shared<Graph>(FunctionLibrary::borrow(library_));
    graph->name = name;
    library_->functions[name] = graph;  // registered first: guards against recursion
    with_context("function '" + name + "'", [&] {
      std::vector<RawNode> raw;
      std::vector<RawInput> arg_inputs;
      for (int i = 0; i < sig.input_arg_size(); ++i) {
        const auto& a = sig.input_arg(i);
        RawNode arg{"_arg/" + a.name(), "_Arg", "", {}, {}, {}, 0};
        TS_CHECK(a.type() != 0, "argument '", a.name(), "' has a list or attribute-dependent type");
        arg.attrs["T"] = convert_dtype(a.type());
        arg.attrs["index"] = static_cast<int64_t>(i);
        auto aa = fn.arg_attr().find(i);
        if (aa != fn.arg_attr().end()) {
          auto s = aa->second.attr().find("_output_shapes");
          if (s != aa->second.attr().end() && s->second.list().shape_size() == 1)
            arg.attrs["_shape"] = convert_shape(s->second.list().shape(0));
        }
        arg_inputs.push_back({arg.name, 0});
        raw.push_back(std::move(arg));
      }
      Expanded body = expand_function(fn, "", arg_inputs, {}, 0);
      for (RawNode& b : body.nodes) raw.push_back(std::move(b));
      build(*graph, std::move(raw));
      for (int i = 0; i < sig.input_arg_size(); ++i) graph->args.push_back(graph->find("_arg/" + sig.input_arg(i).name()));
      for (int i = 0; i < sig.output_arg_size(); ++i) {
        const RawInput& r = body.results[i];
        graph->results.push_back({graph->find(r.node), r.index});
        graph->result_names.push_back(sig.output_arg(i).name());
      }
      for (const auto& c : body.control_results) graph->control_results.push_back(graph->find(c));
    });
  }

  void finish_unsupported() {
    if (unsupported_.empty() || options_.allow_unsupported) return;
    std::string msg = "unsupported ops:";
    for (const auto& [op, names] : unsupported_) {
      msg += " " + op + " (" + std::to_string(names.size()) + (names.size() == 1 ? " node: " : " nodes: ");
      for (size_t i = 0; i < names.size() && i < 5; ++i) msg += (i ? ", " : "") + names[i];
      if (names.size() > 5) msg += ", ...";
      msg += ");";
    }
    msg.pop_back();
    fail_code(ErrorCode::kUnimplemented, msg);
  }

  const tensorflow::GraphDef& def_;
  ImportOptions options_;
  std::shared_ptr<FunctionLibrary> library_;
  std::unordered_map<std::string, const tensorflow::FunctionDef*> functions_;
  std::map<std::string, std::vector<std::string>> unsupported_;
};

}  // namespace

ImportResult import_graph(const tensorflow::GraphDef& graph_def, const std::vector<std::string>& roots,
                          const ImportOptions& options) {
  return Importer(graph_def, options).run(roots);
}

std::vector<std::string> all_node_names(const tensorflow::GraphDef& graph_def) {
  std::vector<std::string> names;
  for (const auto& n : graph_def.node()) names.push_back(n.name());
  return names;
}

}  // namespace tessera::tf
