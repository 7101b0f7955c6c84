// Trainer: owns the variables (a ResourceStore seeded from the model's restored values, plus
// the optimizer slots) and runs the compiled step programs of step_builder.h over them.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <thread>

#include "backend/cpu/threads.h"
#include "backend/rdu/train_step.h"
#include "train/dataset.h"
#include "train/losses.h"
#include "train/optimizers.h"
#include "train/schedules.h"
#include "train/step_builder.h"
#include "support/cpus.h"

namespace tessera::train {
namespace {

struct Compiled {
  StepProgram program;
  std::shared_ptr<Executable> exe;
};

// Rows [begin, end) of dimension 0.
Tensor slice_rows(const Tensor& t, int64_t begin, int64_t end) {
  TS_CHECK(t.rank() >= 1, "a batch tensor needs a batch dimension");
  if (begin == 0 && end == t.dim(0)) return t;
  TS_CHECK(t.dtype() != DType::kString && t.dtype() != DType::kResource && t.dtype() != DType::kVariant,
           "batches of ", dtype_name(t.dtype()), " tensors cannot be split between replicas");
  Shape s = t.shape();
  s[0] = end - begin;
  Tensor out(t.dtype(), s);
  size_t row = t.dim(0) ? t.nbytes() / static_cast<size_t>(t.dim(0)) : 0;
  if (out.nbytes())
    std::memcpy(out.mutable_raw(), static_cast<const char*>(t.raw()) + row * static_cast<size_t>(begin), out.nbytes());
  return out;
}

Tensor zeros_like(const Tensor& t) {
  Tensor z(t.dtype(), t.shape());
  if (z.nbytes()) std::memset(z.mutable_raw(), 0, z.nbytes());
  return z;
}

bool is_real(DType t) { return is_float(t) || is_integer(t); }


class TrainerImpl : public Trainer {
 public:
  TrainerImpl(std::shared_ptr<const Model> model, const TrainOptions& o) : model_(std::move(model)), o_(o) {
    check_loss(o_.loss);
    check_optimizer(o_.optimizer);
    check_schedule(o_.schedule);
    TS_CHECK(o_.target == "cpu" || o_.target == "reference" || o_.target == "rdu", "unknown training target '",
             o_.target, "' (cpu, reference, rdu)");
    TS_CHECK(o_.replicas >= 1, "replicas must be >= 1, got ", o_.replicas);

    TS_CHECK(model_->module().graph, "training needs a SavedModel (a .tsr artifact holds no trainable graph)");
    if (!o_.comm) {
      local_comm_ = make_local_communicator();
      comm_ = local_comm_.get();
    } else {
      comm_ = o_.comm;
    }
    seed_ = o_.seed;
    store_.restore(model_->variables());
    endpoint_ = discover_endpoint(model_->module(), o_.endpoint, false);
    init_keys();
    if (o_.sync_batch_norm && comm_->size() > 1)
      fail_code(ErrorCode::kUnimplemented,
                "synchronised BatchNorm statistics across processes are not implemented (in-process replicas only)");
    // Synchronised statistics over in-process replicas are the statistics of the whole batch:
    // the one-graph step over the global batch computes exactly that (docs/training.md).
    split_ = (o_.replicas > 1 && !o_.sync_batch_norm) || comm_->size() > 1;
    int total = o_.threads > 0 ? o_.threads : cpu_count();
    const Module& m = model_->module();
    info_.trainable_filter = object_graph_trainables(m);
    if (split_) {
      grad_.program = build_program(StepKind::kGrad, m, endpoint_, o_, store_, &info_);
      update_.program = build_program(StepKind::kUpdate, m, endpoint_, o_, store_, &info_);
      const int per_replica = std::max(1, total / o_.replicas);
      grad_.exe = compile_program(grad_.program, o_, per_replica);
      // One executable per replica: an executable runs one call at a time (its memory plan
      // is shared), so replicas sharing one took turns (--replicas 2 ran at half speed).
      replica_exes_ = {grad_.exe};
      for (int r = 1; r < o_.replicas; ++r) replica_exes_.push_back(another_executable(grad_.program, o_, per_replica));
      update_.exe = compile_program(update_.program, o_, total);
    } else {
      full_batch_ = o_.batch > 0 ? o_.batch : -1;
      full_.program = build_program(StepKind::kFull, m, endpoint_, o_, store_, &info_, full_batch_);
      full_.exe = compile_program(full_.program, o_, total);
    }
    threads_ = total;
    for (const std::string& k : info_.trainable) {
      Tensor v = store_.read(k);
      TS_CHECK(!split_ || v.dtype() == DType::kFloat32, "variable '", k, "' is ", dtype_name(v.dtype()),
               ": replicas all-reduce float32 gradients only");
      for (const std::string& s : slot_names(o_.optimizer)) store_.assign(slot_key(k, s), zeros_like(v));
    }
  }

  StepResult step(const std::vector<Tensor>& features, const Tensor& labels) override {
    auto t0 = std::chrono::steady_clock::now();
    int64_t batch = check_batch(features, labels);
    Tensor y = prepare_labels(labels);
    double inv = 1.0 / (static_cast<double>(batch) * static_cast<double>(info_.loss_elems_per_sample));
    std::map<std::string, double> hypers = hyper_values(o_.optimizer, learning_rate(), step_);
    size_t nm = info_.metrics.size();
    std::vector<double> sums(1 + nm, 0.0);
    if (!split_) {
      Compiled& c = full_for_batch(batch);
      std::vector<Tensor> out = c.exe->run(make_args(c.program, features, y, 0, batch, inv, hypers, {}), &store_);
      for (size_t i = 0; i <= nm; ++i) sums[i] = scalar_of(out[i]);
    } else {
      split_step(features, y, batch, inv, hypers, sums);
    }
    ++step_;
    samples_seen_ += batch;
    last_batch_ = batch;
    StepResult r;
    r.samples = batch;
    r.loss = sums[0] * inv;
    for (size_t i = 0; i < nm; ++i) r.metrics[info_.metrics[i]] = sums[1 + i] * inv;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  }

  StepResult evaluate(const std::vector<Tensor>& features, const Tensor& labels) override {
    auto t0 = std::chrono::steady_clock::now();
    if (!eval_.exe) {
      std::string key = discover_endpoint(model_->module(), o_.eval_endpoint, true);
      StepInfo info;
      eval_.program = build_program(StepKind::kEval, model_->module(), key, o_, store_, &info);
      eval_.exe = compile_program(eval_.program, o_, threads_);
      eval_elems_ = info.loss_elems_per_sample;
    }
    int64_t batch = check_batch(features, labels);
    Tensor y = prepare_labels(labels);
    double inv = 1.0 / (static_cast<double>(batch) * static_cast<double>(eval_elems_));
    std::vector<Tensor> out = eval_.exe->run(make_args(eval_.program, features, y, 0, batch, inv, {}, {}), &store_);
    StepResult r;
    r.samples = batch;
    r.loss = scalar_of(out[0]) * inv;
    for (size_t i = 0; i < info_.metrics.size(); ++i) r.metrics[info_.metrics[i]] = scalar_of(out[1 + i]) * inv;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  }

  TrainState state() const override {
    TrainState s;
    for (const std::string& k : var_keys_) s.variables[ext(k)] = store_.read(k).clone();
    for (const std::string& k : info_.trainable)
      for (const std::string& name : slot_names(o_.optimizer))
        s.slots[ext(k)][name] = store_.read(slot_key(k, name)).clone();
    s.step = step_;
    s.seed = seed_;
    s.samples_seen = samples_seen_;
    return s;
  }

  void restore(const TrainState& s) override {
    auto put = [&](const std::string& key, const Tensor& t, const std::string& what) {
      TS_CHECK(store_.contains(key), "restore: ", what, " '", key, "' is not part of this training job");
      Tensor cur = store_.read(key);
      TS_CHECK(cur.dtype() == t.dtype() && cur.shape() == t.shape(), "restore: ", what, " '", key, "' is ",
               dtype_name(t.dtype()), shape_str(t.shape()), ", the model has ", dtype_name(cur.dtype()),
               shape_str(cur.shape()));
      store_.assign(key, t.clone());
    };
    for (const auto& [k, t] : s.variables) {
      auto it = store_of_.find(k);
      if (it != store_of_.end()) {
        put(it->second, t, "variable");
        continue;
      }
      // Another bundle key of the model (an alias the step does not use, e.g. Keras 3's
      // _all_variables/N): nothing to restore.
      TS_CHECK(all_bundle_keys_.count(k), "restore: variable '", k, "' is not a variable of this model");
    }
    for (const auto& [k, slots] : s.slots) {
      auto it = store_of_.find(k);
      TS_CHECK(it != store_of_.end(), "restore: optimizer slots for '", k, "', which is not a variable of this model");
      for (const auto& [name, t] : slots) put(slot_key(it->second, name), t, "optimizer slot " + name + " of");
    }
    step_ = s.step;
    seed_ = s.seed;
    samples_seen_ = s.samples_seen;
  }

  std::vector<std::string> trainable_keys() const override {
    std::vector<std::string> out;
    for (const std::string& k : info_.trainable) out.push_back(ext(k));
    return out;
  }
  double learning_rate() const override {
    return learning_rate_at(o_.schedule, o_.optimizer.learning_rate, step_);
  }
  int64_t step_count() const override { return step_; }
  const Graph& step_graph() const override { return split_ ? *grad_.program.graph : *full_.program.graph; }

  // rdu: the step graph(s) timed on the chip model ($TESSERA_RDU_CHIP, else sn40l_like) at
  // the last step's batch; with replicas, one replica's gradient program plus the update.
  double simulated_step_seconds() const override {
    if (o_.target != "rdu" || last_batch_ <= 0) return 0;
    std::lock_guard lock(sim_mu_);
    auto it = sim_seconds_.find(last_batch_);
    if (it != sim_seconds_.end()) return it->second;
    const char* env = std::getenv("TESSERA_RDU_CHIP");
    std::string chip = env && *env ? env : "sn40l_like";
    double secs;
    if (!split_) {
      secs = rdu::simulate_step(*full_.program.graph, last_batch_, chip).seconds;
    } else {
      int64_t parts = static_cast<int64_t>(o_.replicas) * comm_->size();
      secs = rdu::simulate_step(*grad_.program.graph, std::max<int64_t>(1, (last_batch_ + parts - 1) / parts), chip)
                 .seconds +
             rdu::simulate_step(*update_.program.graph, 1, chip).seconds;
    }
    sim_seconds_[last_batch_] = secs;
    return secs;
  }

 private:
  // State keys are SavedModel bundle keys (store keys for variables the checkpoint does not
  // restore). The state holds the variables the training and evaluation endpoints use, so
  // alias copies that nothing reads (Keras 3 exports keep each variable twice) are left out.
  void init_keys() {
    const Module& m = model_->module();
    std::map<std::string, std::string> bundle = bundle_keys(m);
    for (const auto& [store, key] : bundle) all_bundle_keys_.insert(key);
    std::set<std::string> used = signature_variables(m, endpoint_);
    try {
      std::set<std::string> ev = signature_variables(m, discover_endpoint(m, o_.eval_endpoint, true));
      used.insert(ev.begin(), ev.end());
    } catch (const std::exception&) {
      // No evaluation endpoint: evaluate() reports it when called.
    }
    for (const auto& [k, v] : model_->variables()) {
      if (!used.count(k)) continue;
      auto it = bundle.find(k);
      std::string e = it != bundle.end() ? it->second : k;
      TS_CHECK(!store_of_.count(e), "variables '", store_of_[e], "' and '", k, "' share the key '", e, "'");
      ext_of_[k] = e;
      store_of_[e] = k;
      var_keys_.push_back(k);
    }
  }
  std::string ext(const std::string& store_key) const {
    auto it = ext_of_.find(store_key);
    return it != ext_of_.end() ? it->second : store_key;
  }

  int64_t check_batch(const std::vector<Tensor>& features, const Tensor& labels) const {
    TS_CHECK(!features.empty(), "a step needs at least one feature tensor");
    int64_t batch = -1;
    for (const Tensor& f : features) {
      TS_CHECK(f.rank() >= 1, "features need a batch dimension");
      TS_CHECK(batch < 0 || f.dim(0) == batch, "features disagree on the batch size: ", batch, " and ", f.dim(0));
      batch = f.dim(0);
    }
    TS_CHECK(labels.rank() >= 1 && labels.dim(0) == batch, "labels have shape ", shape_str(labels.shape()),
             ", the batch has ", batch, " samples");
    TS_CHECK(batch > 0, "empty batch");
    return batch;
  }

  Tensor prepare_labels(const Tensor& labels) const {
    Tensor y = labels;
    DType want = label_dtype(o_.loss);
    if (want == DType::kInt64) {
      // Keras squeezes [batch, 1] class ids.
      if (y.rank() == 2 && y.dim(1) == 1) y = y.reshaped({y.dim(0)});
    } else if (y.rank() == 1) {
      y = y.reshaped({y.dim(0), 1});
    }
    TS_CHECK(is_real(y.dtype()), "labels are ", dtype_name(y.dtype()), ": numbers expected");
    y = y.dtype() == want ? y : cast_tensor(y, want);
    if (want == DType::kInt64 && info_.classes > 0) {
      // TensorFlow refuses out-of-range class ids; a one-hot of them would silently be zero.
      const int64_t* p = y.data<int64_t>();
      for (int64_t i = 0; i < y.num_elements(); ++i)
        TS_CHECK(p[i] >= 0 && p[i] < info_.classes, "label ", p[i], " (sample ", i,
                 " of the batch) is outside the valid range [0, ", info_.classes, ") of output '", info_.output, "'");
    }
    return y;
  }

  static double scalar_of(const Tensor& t) {
    TS_CHECK(t.num_elements() == 1, "expected a scalar result, got ", shape_str(t.shape()));
    if (t.dtype() == DType::kFloat64) return t.data<double>()[0];
    return t.data<float>()[0];
  }

  std::vector<Tensor> make_args(const StepProgram& p, const std::vector<Tensor>& features, const Tensor& labels,
                                int64_t begin, int64_t end, double inv, const std::map<std::string, double>& hypers,
                                const std::map<std::string, Tensor>& grads) const {
    std::vector<Tensor> args;
    for (const ArgSpec& a : p.args) {
      switch (a.role) {
        case ArgRole::kFeature: {
          TS_CHECK(a.index < static_cast<int>(features.size()), "signature '", info_.endpoint, "' needs ",
                   a.index + 1, "+ feature tensors, got ", features.size());
          Tensor f = slice_rows(features[a.index], begin, end);
          // Numeric features of another dtype (uint8 pixels, float64 arrays) are converted.
          if (f.dtype() != a.dtype && is_real(f.dtype()) && is_real(a.dtype)) f = cast_tensor(f, a.dtype);
          args.push_back(f);
          break;
        }
        case ArgRole::kLabels: args.push_back(slice_rows(labels, begin, end)); break;
        case ArgRole::kInvCount: args.push_back(Tensor::scalar<float>(static_cast<float>(inv))); break;
        case ArgRole::kDropoutSeed: args.push_back(Tensor::scalar<int64_t>(static_cast<int64_t>(seed_))); break;
        case ArgRole::kSampleOffset: args.push_back(Tensor::scalar<int64_t>(samples_seen_ + begin)); break;
        case ArgRole::kHyper: args.push_back(Tensor::scalar<float>(static_cast<float>(hypers.at(a.name)))); break;
        case ArgRole::kGrad: args.push_back(grads.at(a.name)); break;
      }
      TS_CHECK(args.back().dtype() == a.dtype || a.role == ArgRole::kFeature, "arg '", a.name, "' is ",
               dtype_name(args.back().dtype()), ", the step expects ", dtype_name(a.dtype));
    }
    return args;
  }

  // Gradient program per replica slice (threads), fixed-order sum, all-reduce, update program.
  void split_step(const std::vector<Tensor>& features, const Tensor& y, int64_t batch, double inv,
                  const std::map<std::string, double>& hypers, std::vector<double>& sums) {
    int P = comm_->size(), p = comm_->rank(), R = o_.replicas;
    int64_t pb = batch * p / P, pe = batch * (p + 1) / P;
    std::vector<std::vector<Tensor>> outs(R);
    std::vector<std::exception_ptr> errors(R);
    std::vector<std::thread> threads;
    auto run_replica = [&](int r) {
      int64_t b = pb + (pe - pb) * r / R, e = pb + (pe - pb) * (r + 1) / R;
      if (b == e) return;
      try {
        outs[r] = replica_exes_[r]->run(make_args(grad_.program, features, y, b, e, inv, hypers, {}), &store_);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    };
    for (int r = 1; r < R; ++r) threads.emplace_back(run_replica, r);
    run_replica(0);
    for (auto& t : threads) t.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    const std::vector<std::string>& names = grad_.program.results;
    // Float results (gradients, assigned float values) summed in replica order into one buffer.
    std::vector<size_t> offset(names.size(), 0);
    size_t total = 0;
    int first = -1;
    for (int r = 0; r < R && first < 0; ++r)
      if (!outs[r].empty()) first = r;
    TS_CHECK(first >= 0, "no replica had samples");
    for (size_t i = sums.size(); i < names.size(); ++i) {
      offset[i] = total;
      if (outs[first][i].dtype() == DType::kFloat32) total += static_cast<size_t>(outs[first][i].num_elements());
    }
    // Uninitialised: every float is written below; the gradients handed to the update program
    // borrow it.
    auto flat_tensor = std::make_shared<Tensor>(Tensor::uninitialized(DType::kFloat32, {static_cast<int64_t>(total)}));
    float* flat = flat_tensor->data<float>();
    int live = 0;
    for (int r = 0; r < R; ++r) {
      if (outs[r].empty()) continue;
      ++live;
      for (size_t i = 0; i < sums.size(); ++i) sums[i] += scalar_of(outs[r][i]);
    }
    for (size_t i = sums.size(); i < names.size(); ++i) {
      if (outs[first][i].dtype() != DType::kFloat32) continue;
      std::vector<const float*> parts;  // replica order
      for (int r = 0; r < R; ++r)
        if (!outs[r].empty()) parts.push_back(outs[r][i].data<float>());
      float* dst = flat + offset[i];
      // Each element adds its replicas in order, so the result does not depend on the split.
      cpu::parallel_for(outs[first][i].num_elements(), 16384, threads_, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          float acc = parts[0][k];
          for (size_t j = 1; j < parts.size(); ++j) acc += parts[j][k];
          dst[k] = acc;
        }
      });
    }
    comm_->allreduce_sum(sums.data(), sums.size());
    comm_->allreduce_sum(flat, total);
    double replicas_total = static_cast<double>(live);
    comm_->allreduce_sum(&replicas_total, 1);
    std::map<std::string, Tensor> grads;
    for (size_t i = sums.size(); i < names.size(); ++i) {
      const Tensor& like = outs[first][i];
      Tensor t = like.dtype() == DType::kFloat32
                     ? Tensor::borrow(DType::kFloat32, like.shape(), flat + offset[i], flat_tensor)
                     : like;
      if (names[i].starts_with("grad/")) {
        grads[names[i].substr(5)] = t;
      } else {
        // A value the forward assigns (BatchNorm moving statistics): the replicas' mean, as
        // MirroredStrategy's default aggregation; non-float state keeps the first replica's.
        if (t.dtype() == DType::kFloat32) {
          float* d = t.data<float>();
          for (int64_t k = 0; k < t.num_elements(); ++k) d[k] = static_cast<float>(d[k] / replicas_total);
        }
        // A copy: a view would keep the whole gradient buffer alive in the store.
        store_.assign(names[i].substr(7), t.dtype() == DType::kFloat32 ? t.clone() : t);
      }
    }
    update_.exe->run(make_args(update_.program, {}, Tensor(), 0, 0, inv, hypers, grads), &store_);
  }

  // The one-program step for this batch size: full_ when it was compiled for it (or for any
  // size), else a program specialised on first use (a few sizes kept).
  Compiled& full_for_batch(int64_t batch) {
    if (full_batch_ < 0 || batch == full_batch_) return full_;
    auto it = full_other_.find(batch);
    if (it != full_other_.end()) return it->second;
    if (full_other_.size() >= 4) full_other_.clear();
    StepInfo info = info_;  // the same variables, slots and metrics: only shapes differ
    Compiled c;
    c.program = build_program(StepKind::kFull, model_->module(), endpoint_, o_, store_, &info, batch);
    c.exe = compile_program(c.program, o_, threads_);
    return full_other_.emplace(batch, std::move(c)).first->second;
  }

  std::shared_ptr<const Model> model_;
  TrainOptions o_;
  std::unique_ptr<Communicator> local_comm_;
  Communicator* comm_ = nullptr;
  ResourceStore store_;
  std::vector<std::string> var_keys_;  // store keys of the variables in the state
  std::map<std::string, std::string> ext_of_, store_of_;  // store key <-> state key
  std::set<std::string> all_bundle_keys_;
  StepInfo info_;
  std::string endpoint_;
  bool split_ = false;
  int threads_ = 1;
  Compiled full_, grad_, update_, eval_;
  std::vector<std::shared_ptr<Executable>> replica_exes_;  // grad_'s program, one per replica
  int64_t full_batch_ = -1;                  // the batch full_ is compiled for; -1: any
  std::map<int64_t, Compiled> full_other_;  // other batch sizes (see full_for_batch)
  int64_t eval_elems_ = 1;
  int64_t last_batch_ = 0;
  mutable std::mutex sim_mu_;
  mutable std::map<int64_t, double> sim_seconds_;
  int64_t step_ = 0;
  int64_t samples_seen_ = 0;
  uint64_t seed_ = 0;
};

}  // namespace

std::unique_ptr<Trainer> Trainer::create(std::shared_ptr<const Model> model, const TrainOptions& options) {
  TS_CHECK(model, "Trainer::create: no model");
  return with_context("setting up training of '" + model->path() + "'",
                      [&] { return std::unique_ptr<Trainer>(new TrainerImpl(std::move(model), options)); });
}

}  // namespace tessera::train
