// The cpu executor. compile() fixes the node order and picks a kernel per node (a fast kernel
// from the registry, else the op's reference kernel). Buffer sizes depend on the batch, so the
// memory plan is made per input-shape signature: the first run with new shapes allocates
// from the heap and records each fast kernel's output size and which outputs alias inputs;
// the plan built from that record (one arena, offsets by liveness, in place where a kernel
// allows it) serves every later run with the same shapes.
//
// With inter_op > 1 steps run on a small pool of threads as soon as their dependencies (data,
// control, and a chain through every step that touches variables or calls functions) are done,
// and the memory plan uses those dependencies instead of the sequential order, so two steps
// that may run at the same time never share a buffer.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <queue>
#include <thread>
#include <variant>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "backend/cpu/kernel.h"
#include "backend/cpu/memory_plan.h"
#include "backend/cpu/onednn.h"
#include "backend/cpu/row_chunks.h"
#include "backend/cpu/threads.h"
#include "ir/interpreter.h"
#include "ops/op_helpers.h"

namespace tessera::cpu {

namespace {

struct Step {
  Node* node = nullptr;
  std::unique_ptr<CpuKernel> kernel;  // null: reference kernel
  std::vector<int> inputs;           // value slots
  int out_base = 0;                  // slot of output 0
  bool retains_inputs = false;       // may keep an input beyond the step (variables, lists)
  bool serial = false;               // touches variables or calls functions: keeps its order
  std::vector<int> deps;             // steps it waits for (all earlier)
  std::vector<int> succ;             // steps waiting for it
};

struct ShapePlan {
  std::vector<int64_t> offset;  // per slot: arena offset, -1 when not in the arena
  std::vector<int64_t> bytes;
  std::vector<int> alias_root;  // per slot: the slot whose buffer it shares, -1 if none
  std::shared_ptr<std::byte> arena;
  int64_t arena_bytes = 0;
  PlanStats stats;
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

// Steps whose inputs add up to fewer bytes run on one thread ($TESSERA_CPU_SMALL_OP_BYTES
// overrides; 0 turns it off). Measured: see cpu_executable.h.
constexpr int64_t kSmallOpBytes = 32 << 10;

bool calls_functions(const Node& n) {
  for (const auto& [name, v] : n.attrs)
    if (std::holds_alternative<FuncRef>(v) || std::holds_alternative<std::vector<FuncRef>>(v)) return true;
  return false;
}

class Executable final : public CpuExecutable {
 public:
  Executable(std::shared_ptr<const Graph> graph, const CpuOptions& options,
             const std::vector<PackedWeight>& prepacked)
      : graph_(std::move(graph)) {
    isa_ = resolve_isa(options.isa);
    threads_ = options.threads > 0 ? options.threads : default_threads();
    inter_op_ = resolve_inter_op(options.inter_op);
    intra_ = std::max(1, threads_ / inter_op_);
    // Kernels may create oneDNN primitives now (the conv kernels do, to pack weights), and a
    // primitive keeps the thread count of its creation: without this, --threads 1 still ran
    // those convolutions on every core.
    set_thread_count(intra_);
    onednn::init(resolve_isa(""));  // process-wide: TESSERA_ISA or the processor's (see onednn.h)
    const char* profile = std::getenv("TESSERA_CPU_PROFILE");
    profile_ = profile != nullptr;
    profile_nodes_ = profile && std::string(profile) == "node";  // one row per node, not per op
    plan_stats_env_ = std::getenv("TESSERA_CPU_PLAN_STATS") != nullptr;
    const char* ip = std::getenv("TESSERA_CPU_IN_PLACE");  // "0": plan without in-place (debugging)
    in_place_ = !(ip && std::string(ip) == "0");
    if (const char* e = std::getenv("TESSERA_CPU_SMALL_OP_BYTES")) small_op_bytes_ = std::atoll(e);
    const Graph& g = *graph_;
    std::vector<const Node*> fed(g.args.begin(), g.args.end());
    std::vector<Node*> order = g.schedule(g.results, g.control_results, fed);
    std::unordered_map<const Node*, int> base, step_of;
    int slots = 0;
    for (Node* a : g.args) {
      base[a] = slots;
      slots += std::max(1, a->num_outputs());
    }
    // Variables this graph writes (anything but a read that takes the handle: assigns,
    // scatters, optimizer updates); kernels must not treat reads of them as constant weights.
    CompileEnv::WrittenVariables written;
    for (const Node* n : order)
      for (const Value& v : n->inputs)
        if (n->op != "ReadVariableOp" && v.index < v.node->num_outputs() &&
            v.node->outputs[v.index].dtype == DType::kResource) {
          const Node* var = v.node;
          while (var->op == "Identity" && !var->inputs.empty()) var = var->inputs[0].node;
          if (var->op == "VarHandleOp") written.keys.insert(ops::variable_handle_key(*var));
          else written.through_argument = true;
        }
    CompileEnv env{isa_, &prepacked};
    env.written_variables = &written;
    check_precision(options.precision);
    if ((env.bf16 = options.precision == "bf16")) onednn::require_bf16(isa_);
    for (Node* n : order) {
      if (base.count(n)) continue;  // an arg
      Step s;
      s.node = n;
      s.out_base = slots;
      base[n] = slots;
      step_of[n] = static_cast<int>(steps_.size());
      slots += n->num_outputs();
      if (!n->def) fail_code(ErrorCode::kUnimplemented, n->label(), ": op is not supported");
      if (const KernelFactory* f = find_kernel(n->op))
        s.kernel = with_context(n->label(), [&] { return (*f)(*n, env); });
      s.retains_inputs = n->def->stateful;
      for (const ValueInfo& o : n->outputs) s.retains_inputs = s.retains_inputs || !plain_numeric(o.dtype);
      s.serial = n->def->stateful || s.retains_inputs || calls_functions(*n);
      steps_.push_back(std::move(s));
    }
    num_slots_ = slots;
    intra_ = std::max(1, threads_ / inter_op_);
    set_thread_count(intra_);
    auto slot_of = [&](const Value& v) {
      auto it = base.find(v.node);
      if (it == base.end()) fail_code(ErrorCode::kInternal, "value ", v.str(), " is not scheduled");
      return it->second + v.index;
    };
    writer_.assign(slots, -1);
    for (size_t i = 0; i < steps_.size(); ++i)
      for (int o = 0; o < steps_[i].node->num_outputs(); ++o) writer_[steps_[i].out_base + o] = static_cast<int>(i);
    last_use_.assign(slots, -1);
    readers_.assign(slots, {});
    int last_serial = -1;
    for (size_t i = 0; i < steps_.size(); ++i) {
      Step& s = steps_[i];
      for (const Value& in : s.node->inputs) {
        s.inputs.push_back(slot_of(in));
        last_use_[s.inputs.back()] = static_cast<int>(i);
        readers_[s.inputs.back()].push_back(static_cast<int>(i));
        if (writer_[s.inputs.back()] >= 0) s.deps.push_back(writer_[s.inputs.back()]);
      }
      for (Node* c : s.node->control_inputs)
        if (auto it = step_of.find(c); it != step_of.end()) s.deps.push_back(it->second);
      if (s.serial) {
        if (last_serial >= 0) s.deps.push_back(last_serial);
        last_serial = static_cast<int>(i);
      }
      std::sort(s.deps.begin(), s.deps.end());
      s.deps.erase(std::unique(s.deps.begin(), s.deps.end()), s.deps.end());
      for (int d : s.deps) {
        if (d >= static_cast<int>(i)) fail_code(ErrorCode::kInternal, s.node->label(), ": scheduled before its input");
        steps_[d].succ.push_back(static_cast<int>(i));
      }
    }
    for (Node* a : g.args) arg_slots_.push_back(slot_of(a->out(0)));
    is_result_.assign(slots, false);
    for (const Value& r : g.results) {
      result_slots_.push_back(slot_of(r));
      last_use_[result_slots_.back()] = static_cast<int>(steps_.size());
      is_result_[result_slots_.back()] = true;
    }
    std::vector<std::vector<int>> deps;
    std::vector<int> depth(steps_.size(), 1);  // steps on the longest dependency chain ending here
    for (size_t i = 0; i < steps_.size(); ++i) {
      deps.push_back(steps_[i].deps);
      for (int d : steps_[i].deps) depth[i] = std::max(depth[i], depth[d] + 1);
      critical_path_ = std::max(critical_path_, depth[i]);
    }
    order_ = inter_op_ > 1 ? StepOrder::from_deps(deps) : StepOrder::sequential(static_cast<int>(steps_.size()));
    if (inter_op_ > 1) pool_ = &WorkerPool::shared(inter_op_);
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
    auto it = plans_.find(key);
    const ShapePlan* plan = it == plans_.end() ? nullptr : it->second.get();
    Recording rec;
    if (!plan) {
      rec.bytes.assign(num_slots_, -1);
      rec.alias_root.assign(num_slots_, -1);
    }
    std::vector<Tensor> values(num_slots_);
    for (size_t i = 0; i < args.size(); ++i) values[arg_slots_[i]] = args[i];
    if (pool_) {
      execute_parallel(values, plan, plan ? nullptr : &rec, variables);
    } else {
      set_thread_count(threads_);
      execute(values, plan, plan ? nullptr : &rec, variables);
    }
    std::vector<Tensor> out;
    for (int s : result_slots_) {
      const Tensor& t = values[s];
      out.push_back(plan && plain_numeric(t.dtype()) && t.nbytes() > 0 && plan->contains(t.raw()) ? t.clone() : t);
    }
    if (!plan) {
      if (plans_.size() >= 16) plans_.clear();  // many shapes: keep memory bounded
      auto made = make_plan(rec);
      if (plan_stats_env_)
        std::fprintf(stderr,
                     "cpu plan %s: arena %lld bytes for %lld requested, %d in place, inter_op %d, %zu steps, "
                     "longest dependency chain %d\n",
                     shapes_str(key).c_str(), static_cast<long long>(made->stats.arena_bytes),
                     static_cast<long long>(made->stats.requested_bytes), made->stats.in_place, inter_op_,
                     steps_.size(), critical_path_);
      plans_[key] = std::move(made);
    }
    return out;
  }

  ~Executable() override {
    if (!profile_) return;
    // TESSERA_CPU_PROFILE=1: where planned runs spent their time, by op (fast or reference).
    // With inter_op > 1 the times of concurrent steps add up past the wall time.
    std::vector<std::pair<double, std::string>> rows;
    double total = 0;
    for (const auto& [op, secs] : profile_secs_) rows.push_back({secs, op}), total += secs;
    std::sort(rows.rbegin(), rows.rend());
    std::fprintf(stderr, "cpu profile (%s, %d threads, inter_op %d): %.1f ms total\n", isa_name(isa_).c_str(), threads_,
                 inter_op_, total * 1e3);
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
  int inter_op() const override { return inter_op_; }

  PlanStats plan_stats(const std::vector<Shape>& arg_shapes) const override {
    std::lock_guard lock(mu_);
    auto it = plans_.find(arg_shapes);
    return it == plans_.end() ? PlanStats{} : it->second->stats;
  }

 private:
  static std::string shapes_str(const std::vector<Shape>& shapes) {
    std::string out;
    for (const Shape& s : shapes) out += (out.empty() ? "" : ",") + shape_str(s);
    return out;
  }

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
      // Kernels write every element they allocate (arena memory is not zeroed either).
      return Tensor::uninitialized(dtype, shape);
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

  // Runs step i: gathers its inputs from `values`, runs its kernel, stores and checks its
  // outputs. `inputs` is scratch space owned by the calling thread.
  void run_step(size_t i, std::vector<Tensor>& values, const ShapePlan* plan, Recording* rec,
                ResourceStore* variables, std::vector<Tensor>& inputs, int threads) {
    const Graph& g = *graph_;
    const Step& s = steps_[i];
    Node& node = *s.node;
    inputs.clear();
    for (int slot : s.inputs) {
      if (!values[slot].valid())
        fail_code(ErrorCode::kInternal, node.label(), ": input slot ", slot, " was not computed");
      inputs.push_back(values[slot]);
    }
    // Tiny steps run on this thread alone: an OpenMP fork/join costs more than they do. The
    // size is of the inputs (weights included), known before the kernel runs, so the recording
    // run creates oneDNN primitives (whose thread count is fixed then) for the same count.
    if (threads > 1 && small_op_bytes_ > 0) {
      int64_t bytes = 0;
      for (const Tensor& t : inputs)
        if (plain_numeric(t.dtype())) bytes += static_cast<int64_t>(t.nbytes());
      if (bytes < small_op_bytes_) threads = 1;
    }
    set_thread_count(threads);
    const auto t0 = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    if (s.kernel) {
      Run r(inputs, values, s, plan, rec, threads);
      in_node_context(node, [&] { s.kernel->run(r); });
    } else {
      if (s.retains_inputs && plan)  // it may keep an input: never hand it arena memory
        for (Tensor& t : inputs)
          if (plain_numeric(t.dtype()) && t.nbytes() > 0 && plan->contains(t.raw())) t = t.clone();
      auto call = [variables, &g](const std::string& name, std::vector<Tensor> fargs) {
        const Graph* fn = g.library ? g.library->find(name) : nullptr;
        if (!fn) fail("function '", name, "' not found in the library");
        return call_function(*fn, std::move(fargs), variables);
      };
      KernelContext ctx{node, inputs, {}, variables, call};
      in_node_context(node, [&] { node.def->compute(ctx); });
      if (static_cast<int>(ctx.outputs.size()) != node.num_outputs())
        fail_code(ErrorCode::kInternal, node.label(), ": kernel produced ", ctx.outputs.size(),
                  " outputs, expected ", node.num_outputs());
      for (int o = 0; o < node.num_outputs(); ++o) values[s.out_base + o] = std::move(ctx.outputs[o]);
    }
    track_aliases(s, inputs, values, plan, rec);
    if (profile_ && plan) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::lock_guard lock(profile_mu_);
      std::string key = node.op + (s.kernel ? "" : " (reference)");
      if (profile_nodes_) {
        key += " " + node.name;
        if (node.num_outputs() > 0 && values[s.out_base].valid()) key += " " + shape_str(values[s.out_base].shape());
      }
      profile_secs_[key] += secs;
    }
    for (int o = 0; o < node.num_outputs(); ++o) {
      const Tensor& t = values[s.out_base + o];
      if (!t.valid()) fail_code(ErrorCode::kInternal, node.label(), ": kernel left output ", o, " unset");
      if (t.dtype() != node.outputs[o].dtype || !node.outputs[o].shape.matches(t.shape()))
        fail_code(ErrorCode::kInternal, node.label(), ": output ", o, " is ", dtype_name(t.dtype()),
                  shape_str(t.shape()), ", inferred ", dtype_name(node.outputs[o].dtype),
                  node.outputs[o].shape.str());
    }
  }

  void execute(std::vector<Tensor>& values, const ShapePlan* plan, Recording* rec, ResourceStore* variables) {
    std::vector<Tensor> inputs;
    for (size_t i = 0; i < steps_.size(); ++i) {
      run_step(i, values, plan, rec, variables, inputs, threads_);
      for (int slot : steps_[i].inputs)
        if (last_use_[slot] == static_cast<int>(i)) values[slot] = Tensor();
    }
  }

  // Runs steps on the pool as their dependencies finish, lowest step index first among the
  // ready ones. Each worker gives its steps threads_/inter_op_ intra-op threads, in the
  // recording run too, so oneDNN primitives (which fix their thread count when created) are
  // made for the count they later run with.
  void execute_parallel(std::vector<Tensor>& values, const ShapePlan* plan, Recording* rec,
                        ResourceStore* variables) {
    const int n = static_cast<int>(steps_.size());
    std::mutex mu;
    std::condition_variable cv;
    std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
    std::vector<int> waiting(n);
    for (int i = 0; i < n; ++i) {
      waiting[i] = static_cast<int>(steps_[i].deps.size());
      if (waiting[i] == 0) ready.push(i);
    }
    int remaining = n;
    std::exception_ptr error;
    // Readers left per slot; the last one to finish drops the value (results stay).
    std::vector<std::atomic<int>> reads(num_slots_);
    for (int s = 0; s < num_slots_; ++s) reads[s].store(static_cast<int>(readers_[s].size()) + (is_result_[s] ? 1 : 0));
    pool_->run([&](int) {
      set_thread_count(intra_);
      std::vector<Tensor> inputs;
      std::unique_lock lock(mu);
      for (;;) {
        cv.wait(lock, [&] { return !ready.empty() || remaining == 0 || error; });
        if (remaining == 0 || error) return;
        const int i = ready.top();
        ready.pop();
        lock.unlock();
        std::exception_ptr failed;
        try {
          run_step(static_cast<size_t>(i), values, plan, rec, variables, inputs, intra_);
          for (int slot : steps_[i].inputs)
            if (reads[slot].fetch_sub(1) == 1) values[slot] = Tensor();
        } catch (...) {
          failed = std::current_exception();
        }
        inputs.clear();
        lock.lock();
        if (failed) {
          if (!error) error = failed;
        } else {
          --remaining;
          for (int next : steps_[i].succ)
            if (--waiting[next] == 0) ready.push(next);
        }
        cv.notify_all();
      }
    });
    if (error) std::rethrow_exception(error);
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

  // Which earlier buffers step i's output 0 may overwrite: roots of the inputs its kernel can
  // run in place on, unless the step also reads that buffer through an input it cannot.
  std::vector<int> in_place_candidates(const Step& s, const Recording& rec) const {
    std::vector<int> out;
    if (!in_place_ || !s.kernel || s.node->num_outputs() < 1) return out;
    auto root_of = [&](int slot) { return rec.alias_root[slot] >= 0 ? rec.alias_root[slot] : slot; };
    for (size_t k = 0; k < s.inputs.size(); ++k) {
      if (!s.kernel->in_place(k)) continue;
      const int root = root_of(s.inputs[k]);
      bool ok = rec.bytes[root] > 0 && writer_[root] >= 0;
      for (size_t j = 0; ok && j < s.inputs.size(); ++j)
        ok = s.kernel->in_place(j) || root_of(s.inputs[j]) != root;
      if (ok && std::find(out.begin(), out.end(), root) == out.end()) out.push_back(root);
    }
    return out;
  }

  std::unique_ptr<ShapePlan> make_plan(const Recording& rec) {
    auto plan = std::make_unique<ShapePlan>();
    plan->bytes = rec.bytes;
    plan->alias_root = rec.alias_root;
    // One value per slot (slots are numbered in step order); readers and results of aliases
    // count for the buffer they alias.
    std::vector<PlanValue> values(num_slots_);
    for (int s = 0; s < num_slots_; ++s) {
      const int root = rec.alias_root[s] >= 0 ? rec.alias_root[s] : s;
      PlanValue& v = values[root];
      v.readers.insert(v.readers.end(), readers_[s].begin(), readers_[s].end());
      v.live_out = v.live_out || is_result_[s];
      if (root != s && writer_[s] >= 0) v.readers.push_back(writer_[s]);
    }
    // Values a step keeps (AssignVariableOp stores its input as the variable's new value) stay
    // out of the arena, so that step need not clone them: training steps assign every weight
    // and optimizer slot, which were one full copy of the model per step.
    std::vector<bool> kept(num_slots_, false);
    for (const Step& st : steps_)
      if (st.retains_inputs)
        for (int in : st.inputs) kept[rec.alias_root[in] >= 0 ? rec.alias_root[in] : in] = true;
    for (int s = 0; s < num_slots_; ++s) {
      PlanValue& v = values[s];
      if (writer_[s] < 0 || rec.bytes[s] <= 0 || kept[s]) continue;  // args, reference outputs, kept values
      v.bytes = rec.bytes[s];
      v.writer = writer_[s];
      const Step& step = steps_[writer_[s]];
      if (s == step.out_base && rec.alias_root[s] < 0) v.in_place = in_place_candidates(step, rec);
      if (rec.alias_root[s] >= 0) {  // allocated, then aliased an input: keep it out of in-place
        v.readers.insert(v.readers.end(), readers_[s].begin(), readers_[s].end());
        v.live_out = v.live_out || is_result_[s];
      }
    }
    ValuePlan vp = plan_values(values, order_);
    plan->offset = vp.offsets;
    plan->arena_bytes = vp.arena_bytes;
    plan->stats = {vp.arena_bytes, vp.total_requested, vp.in_place};
    if (vp.arena_bytes > 0) {
      auto* p = static_cast<std::byte*>(std::aligned_alloc(64, static_cast<size_t>((vp.arena_bytes + 63) / 64 * 64)));
      if (!p) fail_code(ErrorCode::kResourceExhausted, "cannot allocate a ", vp.arena_bytes, "-byte arena");
      plan->arena = std::shared_ptr<std::byte>(p, [](std::byte* q) { std::free(q); });
    }
    return plan;
  }

  std::shared_ptr<const Graph> graph_;
  Isa isa_ = Isa::kScalar;
  int threads_ = 1;
  int inter_op_ = 1;
  int intra_ = 1;  // intra-op threads per concurrent step
  int critical_path_ = 0;  // steps on the longest dependency chain (steps_.size() when a chain)
  bool in_place_ = true;
  int64_t small_op_bytes_ = kSmallOpBytes;  // steps reading fewer bytes run single-threaded
  bool plan_stats_env_ = false;
  std::vector<Step> steps_;
  int num_slots_ = 0;
  std::vector<int> writer_;                 // per slot: the step writing it, -1 for args
  std::vector<int> last_use_;               // per slot: last step reading it (steps_.size() for results)
  std::vector<std::vector<int>> readers_;   // per slot: the steps reading it (once per input)
  std::vector<bool> is_result_;
  std::vector<int> arg_slots_, result_slots_;
  StepOrder order_;
  WorkerPool* pool_ = nullptr;  // process-wide, shared by executables with the same inter_op
  bool profile_ = false;
  bool profile_nodes_ = false;
  std::mutex profile_mu_;
  std::map<std::string, double> profile_secs_;
  mutable std::mutex mu_;
  std::map<std::vector<Shape>, std::unique_ptr<ShapePlan>> plans_;
};

}  // namespace

int resolve_inter_op(int requested) {
  int n = kDefaultInterOp;
  if (requested > 0) n = requested;
  else if (const char* e = std::getenv("TESSERA_CPU_INTER_OP"); e && std::atoi(e) > 0) n = std::atoi(e);
  return std::min(n, kMaxInterOp);
}

std::unique_ptr<CpuExecutable> CpuExecutable::compile(std::shared_ptr<const Graph> graph, const CpuOptions& options,
                                                      const std::vector<PackedWeight>& prepacked) {
  TS_CHECK(graph != nullptr, "CpuExecutable::compile: no graph");
  PlanCompiler plan = [&](std::shared_ptr<const Graph> g) -> std::unique_ptr<CpuExecutable> {
    return std::make_unique<Executable>(std::move(g), options, prepacked);
  };
  if (auto chunked = compile_row_chunked(graph, options, plan)) return chunked;
  return plan(std::move(graph));
}

}  // namespace tessera::cpu
