// fold_constants: a node whose data inputs are all Consts is evaluated with its reference
// kernel and replaced by Consts. Never folded: stateful ops, ops calling library functions,
// nodes ordered after side effects, and results larger than kMaxFoldBytes (folding would only
// bloat the graph).
#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
namespace {

constexpr size_t kMaxFoldBytes = size_t{64} << 20;

// Every output's value is known from inference (e.g. Shape of a static shape).
bool all_known(const Node& n) {
  if (n.known.size() != n.outputs.size()) return false;
  for (const Tensor& t : n.known)
    if (!t.valid()) return false;
  return true;
}

bool foldable(const Node& n, const std::unordered_set<const Node*>& effectful) {
  if (!n.def || !n.def->compute || n.def->stateful || n.op == "Const") return false;
  if (n.num_outputs() == 0 || n.inputs.empty()) return false;  // nothing to fold, or a source op
  if (has_side_effects(n, true)) return false;
  for (const Node* c : n.control_inputs)
    if (effectful.count(c)) return false;
  // Variant (tensor list) and resource values are objects, not data a Const can hold.
  for (const ValueInfo& o : n.outputs)
    if (!is_pod(o.dtype) && o.dtype != DType::kString) return false;
  if (all_known(n)) return true;
  for (const Value& v : n.inputs)
    if (!is_const(v)) return false;
  return true;
}

}  // namespace

void fold_constants(Graph& g, const PassContext&) {
  std::unordered_set<const Node*> effectful = effectful_closure(g);
  for (Node* n : g.topo_order()) {
    if (!foldable(*n, effectful)) continue;
    if (all_known(*n)) {
      std::vector<Tensor> known = n->known;
      if (n->num_outputs() == 1) {
        make_const(*n, known[0]);
      } else {
        for (int i = 0; i < n->num_outputs(); ++i)
          g.replace_all_uses(n->out(i), add_const(g, n->name + "/folded_" + std::to_string(i), known[i])->out());
      }
      continue;
    }
    std::vector<Tensor> inputs;
    for (const Value& v : n->inputs) inputs.push_back(*const_value(v));
    KernelContext kc{*n, inputs, {}};
    kc.call = [](const std::string& fn, std::vector<Tensor>) -> std::vector<Tensor> {
      fail("function '", fn, "' cannot be called while folding");
    };
    try {
      n->def->compute(kc);
    } catch (const Error&) {
      continue;  // the error surfaces at run time, if this path ever runs
    }
    if (static_cast<int>(kc.outputs.size()) != n->num_outputs()) continue;
    size_t bytes = 0;
    bool ok = true;
    for (int i = 0; i < n->num_outputs(); ++i) {
      const Tensor& t = kc.outputs[i];
      ok = ok && t.valid() && t.dtype() == n->outputs[i].dtype && n->outputs[i].shape.matches(t.shape());
      if (ok) bytes += t.dtype() == DType::kString ? 0 : t.nbytes();
    }
    if (!ok || bytes > kMaxFoldBytes) continue;
    if (n->num_outputs() == 1) {
      make_const(*n, kc.outputs[0]);
      continue;
    }
    for (int i = 0; i < n->num_outputs(); ++i) {
      Node* c = add_const(g, n->name + "/folded_" + std::to_string(i), kc.outputs[i]);
      g.replace_all_uses(n->out(i), c->out());
    }
  }
}

}  // namespace tessera::passes
