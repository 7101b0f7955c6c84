#include "train/train_loop.h"

#include <chrono>
#include <cmath>
#include <deque>
#include <memory>

#include "support/error.h"
#include "support/file.h"
#include "train/events.h"
#include "train/export.h"

namespace tessera::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double metric(const StepResult& r, const char* name) {
  auto it = r.metrics.find(name);
  return it == r.metrics.end() ? -1 : it->second;
}

void split_element(const Element& e, size_t num_features, std::vector<Tensor>* features, Tensor* labels) {
  TS_CHECK(e.size() == num_features + 1, "the input pipeline yields ", e.size(), " components, expected ",
           num_features, " feature(s) and the labels");
  features->assign(e.begin(), e.begin() + static_cast<std::ptrdiff_t>(num_features));
  *labels = e.back();
}

// Recent steps' throughput, for the progress bar (the stats use the whole run's median).
class Window {
 public:
  void add(int64_t samples, double seconds) {
    items_.push_back({samples, seconds});
    samples_ += samples;
    seconds_ += seconds;
    if (items_.size() > 20) {
      samples_ -= items_.front().first;
      seconds_ -= items_.front().second;
      items_.pop_front();
    }
  }
  double rate() const { return seconds_ > 0 ? static_cast<double>(samples_) / seconds_ : 0; }
  double step_seconds() const { return items_.empty() ? 0 : seconds_ / static_cast<double>(items_.size()); }

 private:
  std::deque<std::pair<int64_t, double>> items_;
  int64_t samples_ = 0;
  double seconds_ = 0;
};

}  // namespace

EvalResult evaluate_dataset(Trainer& trainer, const DatasetPtr& data, size_t num_features) {
  EvalResult out;
  double loss_sum = 0, acc_sum = 0;
  bool has_acc = true;
  Pipeline p(data);
  Element e;
  std::vector<Tensor> features;
  Tensor labels;
  while (p.next(&e)) {
    split_element(e, num_features, &features, &labels);
    StepResult r = trainer.evaluate(features, labels);
    const int64_t n = r.samples > 0 ? r.samples : labels.dim(0);
    loss_sum += r.loss * static_cast<double>(n);
    double acc = metric(r, "accuracy");
    if (acc < 0) has_acc = false;
    acc_sum += acc * static_cast<double>(n);
    out.samples += n;
  }
  TS_CHECK(out.samples > 0, "the validation data is empty");
  out.loss = loss_sum / static_cast<double>(out.samples);
  out.accuracy = has_acc ? acc_sum / static_cast<double>(out.samples) : -1;
  return out;
}

LoopResult run_training(Trainer& trainer, const DatasetPtr& train, const DatasetPtr& validation,
                        const LoopOptions& o, Communicator* comm) {
  const bool leader = !comm || comm->rank() == 0;
  LoopResult result;
  ModelLayout layout = o.layout;
  layout.trainable = trainer.trainable_keys();
  ProgressBar bar(o.progress_out, o.tty, o.log_every);
  auto say = [&](const std::string& text) {
    if (leader && !o.quiet) bar.note(text);
  };

  // Resume: every rank reads the same checkpoint (the directory is shared or copied).
  std::unique_ptr<CheckpointManager> ckpt;
  if (!o.checkpoint_dir.empty() && leader)
    ckpt = std::make_unique<CheckpointManager>(o.checkpoint_dir, o.keep, layout, o.checkpoint_options);
  PipelineState position;
  bool have_position = false;
  if (o.resume) {
    TS_CHECK(!o.checkpoint_dir.empty(), "--resume needs --checkpoint-dir");
    const std::string latest = latest_checkpoint(o.checkpoint_dir);
    if (!latest.empty()) {
      TrainState state = trainer.state();
      read_checkpoint(latest, &state, &position);
      trainer.restore(state);
      have_position = true;
      result.resumed = true;
      result.resumed_from = latest;
      say(str_cat("resumed from ", latest, " at step ", state.step));
    } else {
      say(str_cat("no checkpoint in '", o.checkpoint_dir, "' yet: starting from the beginning"));
    }
  }
  result.first_step = trainer.step_count();

  std::unique_ptr<EventWriter> events;
  if (leader && !o.logdir.empty()) {
    events = std::make_unique<EventWriter>(o.logdir);
    // Steps are logged 1-based (the step just done), so the first new one is first_step + 1.
    if (result.resumed) events->add_session_start(result.first_step + 1, result.resumed_from);
    if (!o.graph_def.empty()) events->add_graph(o.graph_def, result.first_step);
  }

  std::unique_ptr<Pipeline> pipeline =
      have_position ? std::make_unique<Pipeline>(train, position) : std::make_unique<Pipeline>(train);
  auto save = [&] {
    if (!ckpt) return;
    ckpt->save(trainer.state(), pipeline->state());
  };
  auto run_eval = [&](int64_t step) {
    result.eval = evaluate_dataset(trainer, validation, o.num_features);
    result.has_eval = true;
    if (events) {
      events->add_scalar("val_loss", step, result.eval.loss);
      if (result.eval.accuracy >= 0) events->add_scalar("val_accuracy", step, result.eval.accuracy);
    }
    say(result.eval.accuracy >= 0
            ? str_cat("eval at step ", step, ": loss ", result.eval.loss, ", accuracy ", result.eval.accuracy, " (",
                      result.eval.samples, " samples)")
            : str_cat("eval at step ", step, ": loss ", result.eval.loss, " (", result.eval.samples, " samples)"));
  };

  Element element;
  std::vector<Tensor> features;
  Tensor labels;
  Window window;
  double wall_total = 0, wait_total = 0;
  int64_t last_saved = o.resume ? trainer.step_count() : -1;
  while (o.steps < 0 || trainer.step_count() < o.steps) {
    const double wait_before = pipeline->stats().wait_seconds;
    if (!pipeline->next(&element)) {
      TS_CHECK(o.steps < 0, "the training data ended after ", trainer.step_count(), " of ", o.steps, " steps");
      break;
    }
    const double wait = pipeline->stats().wait_seconds - wait_before;
    split_element(element, o.num_features, &features, &labels);
    const double lr = trainer.learning_rate();
    auto t0 = Clock::now();
    StepResult r = trainer.step(features, labels);
    const double step_seconds = seconds_since(t0);
    const int64_t samples = r.samples > 0 ? r.samples : labels.dim(0);
    const double acc = metric(r, "accuracy");
    const int64_t step = trainer.step_count();
    result.stats.add_step(r.loss, acc, samples, step_seconds, wait);
    window.add(samples, step_seconds + wait);
    wall_total += step_seconds + wait;
    wait_total += wait;
    if (!std::isfinite(r.loss)) say(str_cat("warning: loss is ", r.loss, " at step ", step));
    if (events) {
      events->add_scalar("loss", step, r.loss);
      if (acc >= 0) events->add_scalar("accuracy", step, acc);
      events->add_scalar("learning_rate", step, lr);
      events->add_scalar("samples_per_second", step, window.rate());
    }
    if (leader && !o.quiet) {
      StepReport rep;
      rep.step = step;
      rep.total = o.steps < 0 ? step : o.steps;
      rep.loss = r.loss;
      rep.accuracy = acc;
      rep.samples_per_second = window.rate();
      rep.eta_seconds = o.steps < 0 ? 0 : window.step_seconds() * static_cast<double>(o.steps - step);
      rep.input_wait_fraction = wall_total > 0 ? wait_total / wall_total : 0;
      rep.learning_rate = lr;
      bar.update(rep);
    }
    if (o.checkpoint_every > 0 && step % o.checkpoint_every == 0) {
      save();
      last_saved = step;
    }
    if (validation && o.eval_every > 0 && step % o.eval_every == 0 && (o.steps < 0 || step < o.steps)) run_eval(step);
    if (o.stop) {
      double sig = o.stop->load();
      if (comm && comm->size() > 1) comm->allreduce_sum(&sig, 1);  // every rank stops at this step
      if (sig != 0) {
        result.stopped_by = o.stop->load() ? o.stop->load() : 15;
        say(str_cat("stopping at step ", step, " (signal ", result.stopped_by, ")"));
        break;
      }
    }
  }
  if (leader && !o.quiet) bar.finish();
  result.last_step = trainer.step_count();
  if (last_saved != result.last_step) save();
  if (validation) run_eval(result.last_step);
  if (events) events->close();

  if (leader && !o.export_dir.empty()) {
    TS_CHECK(!o.model_dir.empty(), "--export needs a SavedModel directory as the model");
    export_saved_model(o.model_dir, o.export_dir, variables_by_bundle_key(trainer.state().variables, layout));
    say(str_cat("exported the trained model to ", o.export_dir));
  }
  if (result.has_eval) result.stats.set_eval(result.eval.loss, result.eval.accuracy, result.eval.samples);
  if (leader && !o.stats_json.empty()) {
    result.stats.set("learning_rate", trainer.learning_rate());
    result.stats.set("simulated_step_seconds", trainer.simulated_step_seconds());
    result.stats.set("processes", comm ? comm->size() : 1);
    if (!o.run_description.empty()) result.stats.set_text("run", o.run_description);
    if (result.resumed) result.stats.set_text("resumed_from", result.resumed_from);
    write_file(o.stats_json, result.stats.to_json(result.first_step, o.stats_warmup));
  }
  return result;
}

}  // namespace tessera::train
