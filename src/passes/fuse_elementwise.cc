// fuse_elementwise: a group of elementwise ops becomes one TsElementwise running a
// straight-line program (docs/fused_ops.md). Groups grow from a root (latest first) over their
// producers. A member whose value is also used outside the group is exported as one more
// output of the fused node (multi-output fusion: an Adam update's m', v' and new weight in one
// pass, or gelu's forward together with the values its gradient reads), provided it is float32
// and spans the group's whole iteration space. Bool values (comparisons, masks) stay inside
// programs; a bool producer that is also needed elsewhere is computed inside the group as a
// private copy and kept for its other users (dropout's mask feeds the forward and the
// backward select). Groups stay acyclic: no path may leave the group and come back in. A float
// producer whose export would close a cycle (in a training step: a forward value the backward
// group reads after the matmul in between) is recomputed inside the group instead, as long as
// that reads no more input streams; the forward group then need not write it out.
// Shape(member) is rewritten to the shapes of the member's inputs rather than exporting it.
// Scalar float constants become literals; other operands become inputs.
#include <algorithm>
#include <charconv>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "ops/op_helpers.h"
#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
namespace {

const std::set<std::string> kFloatOps = {
    "Neg",   "Abs",     "Exp",     "Log",     "Sqrt",    "Rsqrt",   "Square",  "Reciprocal",        "Tanh",
    "Sigmoid", "Relu",  "Relu6",   "Elu",     "Selu",    "Erf",     "Erfc",    "Softplus",          "Floor",
    "Ceil",  "AddV2",   "Sub",     "Mul",     "RealDiv", "Maximum", "Minimum", "Pow", "SquaredDifference",
    "LeakyRelu", "ZerosLike", "OnesLike"};  // and AddN (see fusible)
const std::set<std::string> kCompare = {"Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual"};
const std::set<std::string> kLogical = {"LogicalAnd", "LogicalOr", "LogicalNot"};

DType dtype_of(const Value& v) { return v.node->outputs[v.index].dtype; }
bool all_inputs(const Node& n, DType t) {
  for (const Value& v : n.inputs)
    if (dtype_of(v) != t) return false;
  return !n.inputs.empty();
}

bool fusible(const Node& n) {
  if (!n.def || !n.control_inputs.empty() || n.outputs.size() != 1) return false;
  const DType out = n.outputs[0].dtype;
  const std::string& op = n.op;
  if (kFloatOps.count(op)) return out == DType::kFloat32 && all_inputs(n, DType::kFloat32);
  if (kCompare.count(op)) {
    if (out != DType::kBool || !n.attr_or<bool>("incompatible_shape_error", true)) return false;
    const bool eq = op == "Equal" || op == "NotEqual";
    return all_inputs(n, DType::kFloat32) || (eq && all_inputs(n, DType::kBool));
  }
  if (kLogical.count(op)) return out == DType::kBool && all_inputs(n, DType::kBool);
  if (op == "AddN") return out == DType::kFloat32 && n.inputs.size() >= 2 && all_inputs(n, DType::kFloat32);
  if (op == "Cast") return out == DType::kFloat32 && all_inputs(n, DType::kBool);
  if (op == "SelectV2" || op == "Select") {
    if (out != DType::kFloat32 || n.inputs.size() != 3 || dtype_of(n.inputs[0]) != DType::kBool ||
        dtype_of(n.inputs[1]) != DType::kFloat32 || dtype_of(n.inputs[2]) != DType::kFloat32)
      return false;
    if (op == "SelectV2") return true;
    // Select (v1) broadcasts only a scalar condition; a vector one picks rows of a matrix.
    const PartialShape& c = shape_of(n.inputs[0]);
    const PartialShape& x = shape_of(n.inputs[1]);
    return c.known_rank && x.known_rank && (c.rank() == 0 || c.rank() == x.rank());
  }
  return false;
}

std::string literal(float v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

bool is_literal(const Value& v) {
  const Tensor* c = const_value(v);
  return c && c->rank() == 0 && c->dtype() == DType::kFloat32;
}

bool shape_use(const Node& user) { return user.op == "Shape"; }

// `s` spans `full` (the broadcast of the group's inputs of known rank): no dimension known
// to be smaller. Unknown dimensions (and inputs of unknown rank, such as a random tensor
// shaped at run time) are taken to agree; the cpu kernel checks at run time and falls back
// to the reference kernel if they do not.
bool covers(const PartialShape& s, const PartialShape& full) {
  if (!s.known_rank) return true;
  if (s.rank() < full.rank()) return false;
  const size_t lead = s.rank() - full.rank();
  for (size_t i = 0; i < full.dims.size(); ++i) {
    const int64_t a = s.dims[lead + i], b = full.dims[i];
    if (a == 1 && b != 1) return false;
    if (a >= 0 && b >= 0 && a != b) return false;
  }
  return true;
}

// The live graph as the pass sees it, rebuilt after each rewrite: positions in a
// topological order, users and control users, all indexed by node id (the graph keeps ids
// dense and stable until nodes are removed, which happens once, at the end).
struct View {
  std::vector<Node*> order;  // live nodes, producers first
  std::vector<int> pos;      // by id; -1: dead
  std::vector<std::vector<std::pair<Node*, int>>> users;
  std::vector<std::vector<Node*>> control_users;
  std::vector<char> control_src, result;

  explicit View(const Graph& g) {
    const size_t n = g.nodes().size();
    pos.assign(n, -1);
    users.assign(n, {});
    control_users.assign(n, {});
    control_src.assign(n, 0);
    result.assign(n, 0);
    // Iterative depth-first post-order from the results, control results and args.
    std::vector<char> state(n, 0);
    std::vector<std::pair<Node*, size_t>> stack;
    auto visit = [&](Node* root) {
      if (state[root->id]) return;
      state[root->id] = 1;
      stack.push_back({root, 0});
      while (!stack.empty()) {
        auto& [node, next] = stack.back();
        const size_t nd = node->inputs.size(), nc = node->control_inputs.size();
        if (next < nd + nc) {
          Node* dep = next < nd ? node->inputs[next].node : node->control_inputs[next - nd];
          ++next;
          if (!state[dep->id]) {
            state[dep->id] = 1;
            stack.push_back({dep, 0});
          }
        } else {
          pos[node->id] = static_cast<int>(order.size());
          order.push_back(node);
          stack.pop_back();
        }
      }
    };
    for (const Value& r : g.results) visit(r.node);
    for (Node* c : g.control_results) visit(c);
    for (Node* a : g.args) visit(a);
    for (Node* u : order) {
      for (size_t k = 0; k < u->inputs.size(); ++k) users[u->inputs[k].node->id].push_back({u, static_cast<int>(k)});
      for (Node* c : u->control_inputs) {
        control_users[c->id].push_back(u);
        control_src[c->id] = 1;
      }
    }
    for (const Value& r : g.results)
      if (r.index == 0) result[r.node->id] = 1;
    for (Node* c : g.control_results) control_src[c->id] = 1;
  }
  bool live(const Node* n) const { return pos[n->id] >= 0; }
  size_t position(const Node* n) const { return static_cast<size_t>(pos[n->id]); }
  const std::vector<std::pair<Node*, int>>& users_of(const Node* n) const { return users[n->id]; }
  bool control_source(const Node* n) const { return control_src[n->id]; }
  bool is_result(const Node* n) const { return result[n->id]; }
};

// What a candidate member set would become: bool members kept outside as well (copies),
// exported float members, external inputs. `ok` is false when an export does not span the
// group or the fused node would sit on a cycle.
struct Plan {
  bool ok = false;
  std::set<const Node*> kept;
  std::vector<Node*> exported;  // root first, then producers first
  std::vector<Value> inputs;
};

Plan analyse(const View& view, const std::vector<Node*>& members, Node* root,
             const std::set<const Node*>& recomputed) {
  Plan p;
  std::set<const Node*> in(members.begin(), members.end());
  // Bool members needed outside stay as nodes; their member inputs are then needed outside too.
  auto outside_use = [&](const Node* n) {
    if (view.is_result(n)) return true;
    for (const auto& [u, idx] : view.users_of(n))
      if (!in.count(u) || p.kept.count(u)) {
        if (!shape_use(*u) || n->outputs[0].dtype == DType::kBool) return true;
      }
    return false;
  };
  for (bool grew = true; grew;) {
    grew = false;
    for (Node* m : members)
      if ((m->outputs[0].dtype == DType::kBool || recomputed.count(m)) && !p.kept.count(m) && outside_use(m)) {
        p.kept.insert(m);
        grew = true;
      }
  }
  p.exported.push_back(root);
  for (Node* m : members)
    if (m != root && m->outputs[0].dtype == DType::kFloat32 && !p.kept.count(m) && outside_use(m))
      p.exported.push_back(m);
  PartialShape full(std::vector<int64_t>{});
  std::vector<const Node*> producers;
  for (Node* m : members)
    for (const Value& v : m->inputs) {
      if (in.count(v.node) || is_literal(v)) continue;
      if (std::find(p.inputs.begin(), p.inputs.end(), v) != p.inputs.end()) continue;
      p.inputs.push_back(v);
      producers.push_back(v.node);
      if (!shape_of(v).known_rank) continue;
      try {
        full = ops::broadcast(full, shape_of(v));
      } catch (const Error&) {
        return p;
      }
    }
  if (p.inputs.empty()) return p;
  for (Node* e : p.exported)
    if (!covers(e->outputs[0].shape, full)) return p;
  // A cycle: something reachable from the group's exports (or from a kept copy that reads
  // one) produces one of its inputs. Only nodes before the last member can do that.
  size_t last = 0;
  for (Node* m : members) last = std::max(last, view.position(m));
  std::set<const Node*> targets(producers.begin(), producers.end());
  std::vector<const Node*> stack;
  std::unordered_set<const Node*> seen;
  auto push_users = [&](const Node* n) {
    for (const auto& [u, idx] : view.users_of(n))
      if (!in.count(u) || p.kept.count(u)) stack.push_back(u);
    for (Node* u : view.control_users[n->id]) stack.push_back(u);
  };
  for (Node* e : p.exported) push_users(e);  // kept copies that read a member read an export
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second || view.position(n) >= last) continue;
    if (targets.count(n)) return p;
    if (in.count(n) && !p.kept.count(n)) continue;  // a member's other edges are inside the group
    push_users(n);
  }
  p.ok = true;
  return p;
}

// Appends member n's program entries (one per op; AddN, gradient accumulation, is a chain of
// AddV2) and records the entry holding its value.
void emit(const Node& n, const std::vector<Value>& inputs, std::unordered_map<const Node*, int>& entry_of,
          std::vector<std::string>& program) {
  auto operand = [&](const Value& v) {
    auto m = entry_of.find(v.node);
    if (m != entry_of.end()) return "%" + std::to_string(m->second);
    if (is_literal(v)) return literal(const_value(v)->data<float>()[0]);
    return "$" + std::to_string(std::find(inputs.begin(), inputs.end(), v) - inputs.begin());
  };
  if (n.op == "AddN") {
    std::string acc = operand(n.inputs[0]);
    for (size_t i = 1; i < n.inputs.size(); ++i) {
      program.push_back("AddV2 " + acc + " " + operand(n.inputs[i]));
      acc = "%" + std::to_string(program.size() - 1);
    }
  } else {
    std::string line = n.op == "Select" ? "SelectV2" : n.op;
    for (const Value& v : n.inputs) line += " " + operand(v);
    if (n.op == "LeakyRelu") line += " " + literal(n.attr_or<float>("alpha", 0.2f));
    program.push_back(line);
  }
  entry_of[&n] = static_cast<int>(program.size()) - 1;
}

// Shape(m) for a member m that is not exported: the broadcast of the shapes of the inputs it
// reads (its own shape, since every program op broadcasts its operands).
void rewrite_shape_use(Graph& g, Node* shape_node, const std::vector<Value>& deps) {
  const AttrMap attrs = {{"T", DType::kFloat32}, {"out_type", shape_node->attr_or<DType>("out_type", DType::kInt32)}};
  auto shape_of_dep = [&](const Value& d) {
    AttrMap a = attrs;
    a["T"] = dtype_of(d);
    return add_node(g, shape_node->name + "/of_input", "Shape", {d}, a)->out();
  };
  if (deps.size() == 1) {
    shape_node->inputs[0] = deps[0];
    shape_node->attrs["T"] = dtype_of(deps[0]);
    return;
  }
  Value s = shape_of_dep(deps[0]);
  for (size_t i = 1; i < deps.size(); ++i)
    s = add_node(g, shape_node->name + "/broadcast", "BroadcastArgs", {s, shape_of_dep(deps[i])},
                 {{"T", attrs.at("out_type")}})
            ->out();
  g.replace_all_uses(shape_node->out(), s);
}

// Builds the fused node for an accepted group and rewires its users; false if inference
// refuses it (the graph is then unchanged apart from a dead node).
bool rewrite(Graph& g, const View& view, std::vector<Node*> members, const Plan& plan) {
  Node* root = plan.exported[0];
  std::sort(members.begin(), members.end(),
            [&](Node* a, Node* b) { return view.position(a) < view.position(b); });
  std::vector<std::string> program;
  std::unordered_map<const Node*, int> entry_of;
  for (Node* n : members) emit(*n, plan.inputs, entry_of, program);
  AttrMap attrs = {{"program", program}, {"N", static_cast<int64_t>(plan.inputs.size())}, {"T", DType::kFloat32}};
  if (plan.exported.size() > 1 || entry_of.at(root) != static_cast<int>(program.size()) - 1) {
    std::vector<int64_t> outputs;
    for (Node* e : plan.exported) outputs.push_back(entry_of.at(e));
    attrs["outputs"] = outputs;
  }
  std::string name = root->name;
  g.rename(root, g.unique_name(name + "/unfused"));
  Node* fused = add_node(g, name, "TsElementwise", plan.inputs, attrs);
  for (size_t k = 0; k < plan.exported.size(); ++k) {
    PartialShape& fs = fused->outputs[k].shape;
    const PartialShape& ms = plan.exported[k]->outputs[0].shape;
    if (fs.known_rank && ms.known_rank && fs.rank() != ms.rank()) {
      g.rename(fused, g.unique_name(name + "/unused"));  // cannot prove the shapes agree; leave it
      g.rename(root, name);
      return false;
    }
    if (!fs.known_rank) fs = ms;
    for (size_t i = 0; i < fs.dims.size(); ++i)
      if (fs.dims[i] < 0 && ms.known_rank) fs.dims[i] = ms.dims[i];
  }
  // Inputs each member reads, directly or through other members (for Shape uses).
  std::unordered_map<const Node*, std::vector<Value>> deps;
  for (Node* n : members) {
    std::vector<Value>& d = deps[n];
    for (const Value& v : n->inputs) {
      if (deps.count(v.node) && v.node != n) {
        for (const Value& x : deps[v.node])
          if (std::find(d.begin(), d.end(), x) == d.end()) d.push_back(x);
      } else if (!is_literal(v) && std::find(d.begin(), d.end(), v) == d.end()) {
        d.push_back(v);
      }
    }
  }
  std::set<const Node*> exported(plan.exported.begin(), plan.exported.end());
  std::set<const Node*> in(members.begin(), members.end());
  for (Node* n : members) {
    if (exported.count(n) || plan.kept.count(n)) continue;
    for (const auto& [u, idx] : view.users_of(n))
      if (!in.count(u) && shape_use(*u)) rewrite_shape_use(g, u, deps[n]);
  }
  for (size_t k = 0; k < plan.exported.size(); ++k) g.replace_all_uses(plan.exported[k]->out(), fused->out(static_cast<int>(k)));
  return true;
}

}  // namespace

void fuse_elementwise(Graph& g, const PassContext&) {
  auto view = std::make_unique<View>(g);
  const std::vector<Node*> roots(view->order.rbegin(), view->order.rend());
  std::set<const Node*> taken;
  bool any = false;
  auto joinable = [&](const Node* n) { return fusible(*n) && !taken.count(n) && !view->control_source(n); };
  for (Node* root : roots) {
    if (!view->live(root) || !joinable(root) || root->outputs[0].dtype != DType::kFloat32) continue;
    if (view->users_of(root).empty() && !view->is_result(root)) continue;
    std::vector<Node*> members = {root};
    std::set<const Node*> recomputed;
    Plan plan = analyse(*view, members, root, recomputed);
    auto try_join = [&](Node* n) {
      if (std::find(members.begin(), members.end(), n) != members.end() || !joinable(n)) return false;
      members.push_back(n);
      Plan trial = analyse(*view, members, root, recomputed);
      if (!trial.ok && n->outputs[0].dtype == DType::kFloat32 && plan.ok) {
        // Exporting n would close a cycle (a forward value the backward pass reads: gelu's
        // erfc term). Recompute it here instead, while its inputs are no more streams than
        // n itself: the forward group then writes one output, not four.
        recomputed.insert(n);
        trial = analyse(*view, members, root, recomputed);
        if (!trial.ok || trial.inputs.size() > plan.inputs.size()) {
          recomputed.erase(n);
          trial.ok = false;
        }
      }
      if (!trial.ok) {
        members.pop_back();
        return false;
      }
      plan = std::move(trial);
      return true;
    };
    // Producers first, then float consumers of members (gelu's 0.5x feeds both its output and
    // its gradient's product: growing from either root alone would split them).
    for (bool grew = true; grew;) {
      grew = false;
      for (size_t i = 0; i < members.size(); ++i) {
        for (const Value& v : members[i]->inputs) grew = try_join(v.node) || grew;
        std::vector<Node*> consumers;
        for (const auto& [u, idx] : view->users_of(members[i]))
          if (u->outputs.size() == 1 && u->outputs[0].dtype == DType::kFloat32) consumers.push_back(u);
        for (Node* u : consumers) grew = try_join(u) || grew;
      }
    }
    // A recomputed consumer nothing in the group reads (the forward output, joined through
    // a shared operand) would be dead code in the program.
    for (bool pruned = !recomputed.empty(); pruned;) {
      pruned = false;
      for (size_t i = 0; i < members.size(); ++i) {
        if (!recomputed.count(members[i])) continue;
        bool read = false;
        for (const auto& [u, idx] : view->users_of(members[i]))
          read = read || (u != members[i] && std::find(members.begin(), members.end(), u) != members.end());
        if (read) continue;
        recomputed.erase(members[i]);
        members.erase(members.begin() + static_cast<std::ptrdiff_t>(i));
        pruned = true;
        break;
      }
      if (pruned) plan = analyse(*view, members, root, recomputed);
    }
    if (members.size() < 2 || !plan.ok) continue;
    if (!rewrite(g, *view, members, plan)) continue;
    for (Node* n : members)
      if (!plan.kept.count(n)) taken.insert(n);
    any = true;
    view = std::make_unique<View>(g);
  }
  if (any) remove_unreachable(g);
}

}  // namespace tessera::passes
