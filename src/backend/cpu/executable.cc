// The cpu executor. compile() fixes the node order and picks a kernel per node (a fast kernel
// from the registry, else the op's reference kernel). Buffer sizes depend on the batch, so the
// memory plan is made per input-shape signature: the first run with new shapes allocates
// from the heap and records each fast kernel's output size and which outputs alias inputs;
// the plan built from that record (one arena, offsets by liveness) serves every later run
// with the same shapes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include "backend/cpu/kernel.h"
#include "backend/cpu/memory_plan.h"
#include "backend/cpu/onednn.h"
#include "backend/cpu/threads.h"
#include "ir/interpreter.h"

namespace tessera::cpu {

namespace {

struct Step {
  Node* node = nullptr;
  std::unique_ptr<CpuKernel> kernel;  // null: reference kernel
  std::vector<int> inputs;           // value slots
  int out_base = 0;                  // slot of output 0
  bool retains_inputs = false;       // may keep an input beyond the step (variables, lists)
};

struct ShapePlan {
  std::vector<int64_t> offset;  // per slot: arena offset, -1 when not in the arena
  std::vector<int64_t> bytes;
  std::vector<int> alias_root;  // per slot: the slot whose buffer it shares, -1 if none
  std::shared_ptr<std::byte> arena;
  int64_t arena_bytes = 0;
  bool contains(const void* p) const {
    auto* b = static_cast<const std::byte*>(p);
    return arena && b >= arena.get() && b < arena.get() + arena_bytes;
  }
};

// What the first run with a new shape signature learns.
struct Recording {
  std::vector<int64_t> bytes;   // per slot: bytes handed out by allocate(), -1 if none
  std::vector<int> alias_root;  // per slot
};

bool buffers_overlap(const Tensor& a, const Tensor& b) {
  if (!a.valid() || !b.valid() || a.nbytes() == 0 || b.nbytes() == 0) return false;
  if (a.dtype() == DType::kString || a.dtype() == DType::kVariant || a.dtype() == DType::kResource) return false;
  if (b.dtype() == DType::kString || b.dtype() == DType::kVariant || b.dtype() == DType::kResource) return false;
  auto* pa = static_cast<const std::byte*>(a.raw());
  auto* pb = static_cast<const std::byte*>(b.raw());
  return pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

// Runs body; errors get the node's label in front. (Not with_context: that would build the
// label string for every node of every run.)
template <typename F>
void in_node_context(const Node& node, F&& body) {
  try {
    body();
  } catch (const Error& e) {
    throw e.with_context(node.label());
  } catch (const dnnl::error& e) {
    fail_code(ErrorCode::kInternal, node.label(), ": oneDNN: ", e.what());
  }
}

bool plain_numeric(DType t) { return t != DType::kString && t != DType::kVariant && t != DType::kResource; }

class Executable final : public CpuExecutable {
 public:
  Executable(std::shared_ptr<const Graph> graph, const CpuOptions& options,
             const std::vector<PackedWeight>& prepacked)
      : graph_(std::move(graph)) {
    isa_ = resolve_isa(options.isa);
    threads_ = options.threads > 0 ? options.threads : default_threads();
    onednn::init(resolve_isa(""));  // process-wide: TESSERA_ISA or the processor's (see onednn.h)
    profile_ = std::getenv("TESSERA_CPU_PROFILE") != nullptr;
    const Graph& g = *graph_;
    std::vector<const Node*> fed(g.args.begin(), g.args.end());
    std::vector<Node*> order = g.schedule(g.results, g.control_results, fed);
    std::unordered_map<const Node*, int> base;
    int slots = 0;
    for (Node* a : g.args) {
      base[a] = slots;
      slots += std::max(1, a->num_outputs());
    }
    CompileEnv env{isa_, &prepacked};
    check_precision(options.precision);
    if ((env.bf16 = options.precision == "bf16")) onednn::require_bf16(isa_);
    for (Node* n : order) {
      if (base.count(n)) continue;  // an arg
      Step s;
      s.node = n;
      s.out_base = slots;
      base[n] = slots;
      slots += n->num_outputs();
      if (!n->def) fail_code(ErrorCode::kUnimplemented, n->label(), ": op is not supported");
      if (const KernelFactory* f = find_kernel(n->op))
        s.kernel = with_context(n->label(), [&] { return (*f)(*n, env); });
      s.retains_inputs = n->def->stateful;
      for (const ValueInfo& o : n->outputs) s.retains_inputs = s.retains_inputs || !plain_numeric(o.dtype);
      steps_.push_back(std::move(s));
    }
    num_slots_ = slots;
    auto slot_of = [&](const Value& v) {
      auto it = base.find(v.node);
      if (it == base.end()) fail_code(ErrorCode::kInternal, "value ", v.str(), " is not scheduled");
      return it->second + v.index;
    };
    last_use_.assign(slots, -1);
    for (size_t i = 0; i < steps_.size(); ++i)
      for (const Value& in : steps_[i].node->inputs) {
        steps_[i].inputs.push_back(slot_of(in));
        last_use_[steps_[i].inputs.back()] = static_cast<int>(i);
      }
    for (Node* a : g.args) arg_slots_.push_back(slot_of(a->out(0)));
    for (const Value& r : g.results) {
      result_slots_.push_back(slot_of(r));
      last_use_[result_slots_.back()] = static_cast<int>(steps_.size());
    }
  }

  std::vector<Tensor> run(const std::vector<Tensor>& args, ResourceStore* variables) override {
    const Graph& g = *graph_;
    if (args.size() != g.args.size())
      fail_code(ErrorCode::kInvalidArgument, "expected ", g.args.size(), " arguments, got ", args.size());
    std::vector<Shape> key;
    for (size_t i = 0; i < args.size(); ++i) {
      const ValueInfo& info = g.args[i]->outputs.at(0);
      if (args[i].dtype() != info.dtype || !info.shape.matches(args[i].shape()))
        fail_code(ErrorCode::kInvalidArgument, "argument ", i, " ('", g.args[i]->name, "') is ",
                  dtype_name(args[i].dtype()), shape_str(args[i].shape()), ", expected ",
                  dtype_name(info.dtype), info.shape.str());
      key.push_back(args[i].shape());
    }
    std::lock_guard lock(mu_);  // one run at a time: the arena is shared
    set_thread_count(threads_);
    auto it = plans_.find(key);
    const ShapePlan* plan = it == plans_.end() ? nullptr : it->second.get();
    Recording rec;
    if (!plan) {
      rec.bytes.assign(num_slots_, -1);
      rec.alias_root.assign(num_slots_, -1);
    }
    std::vector<Tensor> values(num_slots_);
    for (size_t i = 0; i < args.size(); ++i) values[arg_slots_[i]] = args[i];
    execute(values, plan, plan ? nullptr : &rec, variables);
    std::vector<Tensor> out;
    for (int s : result_slots_) {
      const Tensor& t = values[s];
      out.push_back(plan && plain_numeric(t.dtype()) && t.nbytes() > 0 && plan->contains(t.raw()) ? t.clone() : t);
    }
    if (!plan) {
      if (plans_.size() >= 16) plans_.clear();  // many shapes: keep memory bounded
      plans_[key] = make_plan(rec);
    }
    return out;
  }

  ~Executable() override {
    if (!profile_) return;
    // TESSERA_CPU_PROFILE=1: where planned runs spent their time, by op (fast or reference).
    std::vector<std::pair<double, std::string>> rows;
    double total = 0;
    for (const auto& [op, secs] : profile_secs_) rows.push_back({secs, op}), total += secs;
    std::sort(rows.rbegin(), rows.rend());
    std::fprintf(stderr, "cpu profile (%s, %d threads): %.1f ms total\n", isa_name(isa_).c_str(), threads_, total * 1e3);
    for (const auto& [secs, op] : rows)
      std::fprintf(stderr, "  %-40s %9.2f ms %5.1f%%\n", op.c_str(), secs * 1e3, 100 * secs / total);
  }

  std::map<std::string, double> op_seconds() const override {
    std::lock_guard lock(mu_);
    return profile_secs_;
  }

  std::vector<PackedWeight> packed_weights() const override {
    std::vector<PackedWeight> all;
    for (const Step& s : steps_)
      if (s.kernel)
        for (PackedWeight& w : s.kernel->packed()) all.push_back(std::move(w));
    return all;
  }

  std::string isa() const override { return isa_name(isa_); }

 private:
  class Run final : public KernelRun {
   public:
    Run(const std::vector<Tensor>& in, std::vector<Tensor>& values, const Step& step,
        const ShapePlan* plan, Recording* rec, int threads)
        : in_(in), values_(values), step_(step), plan_(plan), rec_(rec), threads_(threads) {}
    const std::vector<Tensor>& inputs() const override { return in_; }
    Tensor allocate(int output, DType dtype, const Shape& shape) override {
      const int slot = step_.out_base + output;
      const int64_t bytes = num_elements(shape) * static_cast<int64_t>(dtype_size(dtype));
      if (rec_) rec_->bytes[slot] = bytes;
      if (plan_ && plan_->offset[slot] >= 0 && plan_->bytes[slot] == bytes && bytes > 0)
        return Tensor::borrow(dtype, shape, plan_->arena.get() + plan_->offset[slot], plan_->arena);
      return Tensor(dtype, shape);
    }
    void set_output(int output, Tensor t) override { values_[step_.out_base + output] = std::move(t); }
    int threads() const override { return threads_; }

   private:
    const std::vector<Tensor>& in_;
    std::vector<Tensor>& values_;
    const Step& step_;
    const ShapePlan* plan_;
    Recording* rec_;
    int threads_;
  };

  void execute(std::vector<Tensor>& values, const ShapePlan* plan, Recording* rec, ResourceStore* variables) {
    const Graph& g = *graph_;
    auto call = [variables, &g](const std::string& name, std::vector<Tensor> fargs) {
      const Graph* fn = g.library ? g.library->find(name) : nullptr;
      if (!fn) fail("function '", name, "' not found in the library");
      return call_function(*fn, std::move(fargs), variables);
    };
    std::vector<Tensor> inputs;
    for (size_t i = 0; i < steps_.size(); ++i) {
      const Step& s = steps_[i];
      Node& node = *s.node;
      inputs.clear();
      for (int slot : s.inputs) {
        if (!values[slot].valid())
          fail_code(ErrorCode::kInternal, node.label(), ": input slot ", slot, " was not computed");
        inputs.push_back(values[slot]);
      }
      const auto t0 = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
      if (s.kernel) {
        Run r(inputs, values, s, plan, rec, threads_);
        in_node_context(node, [&] { s.kernel->run(r); });
      } else {
        if (s.retains_inputs && plan)  // it may keep an input: never hand it arena memory
          for (Tensor& t : inputs)
            if (plain_numeric(t.dtype()) && t.nbytes() > 0 && plan->contains(t.raw())) t = t.clone();
        KernelContext ctx{node, inputs, {}, variables, call};
        in_node_context(node, [&] { node.def->compute(ctx); });
        if (static_cast<int>(ctx.outputs.size()) != node.num_outputs())
          fail_code(ErrorCode::kInternal, node.label(), ": kernel produced ", ctx.outputs.size(),
                    " outputs, expected ", node.num_outputs());
        for (int o = 0; o < node.num_outputs(); ++o) values[s.out_base + o] = std::move(ctx.outputs[o]);
      }
      track_aliases(s, inputs, values, plan, rec);
      if (profile_ && plan)
        profile_secs_[node.op + (s.kernel ? "" : " (reference)")] +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (int o = 0; o < node.num_outputs(); ++o) {
        const Tensor& t = values[s.out_base + o];
        if (!t.valid()) fail_code(ErrorCode::kInternal, node.label(), ": kernel left output ", o, " unset");
        if (t.dtype() != node.outputs[o].dtype || !node.outputs[o].shape.matches(t.shape()))
          fail_code(ErrorCode::kInternal, node.label(), ": output ", o, " is ", dtype_name(t.dtype()),
                    shape_str(t.shape()), ", inferred ", dtype_name(node.outputs[o].dtype),
                    node.outputs[o].shape.str());
      }
      for (int slot : s.inputs)
        if (last_use_[slot] == static_cast<int>(i)) values[slot] = Tensor();
    }
  }

  // Outputs that share storage with an input (Reshape, Identity, a pass-through kernel): the
  // recording run notes them so the buffer lives as long as its last alias; a planned run
  // copies any arena-backed output the plan did not foresee, so nothing outlives its slot.
  void track_aliases(const Step& s, const std::vector<Tensor>& inputs, std::vector<Tensor>& values,
                     const ShapePlan* plan, Recording* rec) const {
    for (int o = 0; o < s.node->num_outputs(); ++o) {
      const int slot = s.out_base + o;
      Tensor& t = values[slot];
      if (rec) {
        for (size_t k = 0; k < inputs.size(); ++k)
          if (buffers_overlap(t, inputs[k])) {
            const int root = rec->alias_root[s.inputs[k]];
            rec->alias_root[slot] = root >= 0 ? root : s.inputs[k];
          }
      } else if (plan && t.valid() && plain_numeric(t.dtype()) && t.nbytes() > 0 && plan->contains(t.raw())) {
        const bool own = plan->offset[slot] >= 0 && t.raw() == plan->arena.get() + plan->offset[slot];
        if (!own && plan->alias_root[slot] < 0) t = t.clone();
      }
    }
  }

  std::unique_ptr<ShapePlan> make_plan(const Recording& rec) {
    auto plan = std::make_unique<ShapePlan>();
    plan->offset.assign(num_slots_, -1);
    plan->bytes = rec.bytes;
    plan->alias_root = rec.alias_root;
    // A buffer lives from its writer to the last reader of it or of any alias of it.
    std::vector<int> first(num_slots_, -1), last(num_slots_, -1);
    for (size_t i = 0; i < steps_.size(); ++i)
      for (int o = 0; o < steps_[i].node->num_outputs(); ++o) first[steps_[i].out_base + o] = static_cast<int>(i);
    for (int s = 0; s < num_slots_; ++s) {
      const int root = rec.alias_root[s] >= 0 ? rec.alias_root[s] : s;
      last[root] = std::max({last[root], last_use_[s], first[s]});
    }
    std::vector<BufferRequest> req;
    std::vector<int> req_slot;
    for (int s = 0; s < num_slots_; ++s)
      if (rec.bytes[s] > 0 && first[s] >= 0) {
        req.push_back({rec.bytes[s], first[s], std::max(first[s], last[s])});
        req_slot.push_back(s);
      }
    MemoryPlan mp = plan_memory(req);
    for (size_t k = 0; k < req.size(); ++k) plan->offset[req_slot[k]] = mp.offsets[k];
    plan->arena_bytes = mp.arena_bytes;
    if (mp.arena_bytes > 0) {
      auto* p = static_cast<std::byte*>(std::aligned_alloc(64, static_cast<size_t>((mp.arena_bytes + 63) / 64 * 64)));
      if (!p) fail_code(ErrorCode::kResourceExhausted, "cannot allocate a ", mp.arena_bytes, "-byte arena");
      plan->arena = std::shared_ptr<std::byte>(p, [](std::byte* q) { std::free(q); });
    }
    return plan;
  }

  std::shared_ptr<const Graph> graph_;
  Isa isa_ = Isa::kScalar;
  int threads_ = 1;
  std::vector<Step> steps_;
  int num_slots_ = 0;
  std::vector<int> last_use_;  // per slot: last step reading it (steps_.size() for results)
  std::vector<int> arg_slots_, result_slots_;
  bool profile_ = false;
  std::map<std::string, double> profile_secs_;
  mutable std::mutex mu_;
  std::map<std::vector<Shape>, std::unique_ptr<ShapePlan>> plans_;
};

}  // namespace

std::unique_ptr<CpuExecutable> CpuExecutable::compile(std::shared_ptr<const Graph> graph, const CpuOptions& options,
                                                      const std::vector<PackedWeight>& prepacked) {
  TS_CHECK(graph != nullptr, "CpuExecutable::compile: no graph");
  return std::make_unique<Executable>(std::move(graph), options, prepacked);
}

}  // namespace tessera::cpu
