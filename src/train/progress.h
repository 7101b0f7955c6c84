// What `tessera train` shows and records about a run: the progress bar on stderr and the
// statistics it writes with --stats-json (field names are relied on by bench/train.py).
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace tessera::train {

struct StepReport {
  int64_t step = 0;   // steps done, this one included (1-based)
  int64_t total = 0;  // steps the run will do in all
  double loss = 0;
  double accuracy = -1;          // < 0: not measured
  double samples_per_second = 0;
  double eta_seconds = 0;
  double input_wait_fraction = 0;  // of wall time so far, waiting for input
  double learning_rate = 0;
};

// On a terminal: one line rewritten in place. Otherwise (logs, CI): a full line every
// `every` steps and at the last step.
class ProgressBar {
 public:
  ProgressBar(FILE* out, bool tty, int64_t every);
  void update(const StepReport& r);
  // A message on its own line (the bar is redrawn by the next update).
  void note(const std::string& text);
  void finish();
  static std::string format(const StepReport& r, int width);  // the bar's text

 private:
  FILE* out_;
  bool tty_;
  int64_t every_;
  bool drawn_ = false;
};

// Per-step records, summarised for --stats-json.
class RunStats {
 public:
  void add_step(double loss, double accuracy, int64_t samples, double step_seconds, double wait_seconds);
  void set_eval(double loss, double accuracy, int64_t samples);
  void set(const std::string& key, double value) { extra_[key] = value; }
  void set_text(const std::string& key, const std::string& value) { text_[key] = value; }

  int64_t steps() const { return static_cast<int64_t>(losses_.size()); }
  const std::vector<double>& losses() const { return losses_; }
  // Median over the steps after the first `warmup` (all steps when there are too few) of
  // samples / (step + input wait) seconds.
  double samples_per_second(int64_t warmup) const;
  double input_wait_fraction() const;
  std::string to_json(int64_t first_step, int64_t warmup) const;

 private:
  std::vector<double> losses_, accuracies_, step_seconds_, wait_seconds_;
  std::vector<int64_t> samples_;
  bool has_eval_ = false;
  double eval_loss_ = 0, eval_accuracy_ = -1;
  int64_t eval_samples_ = 0;
  std::map<std::string, double> extra_;
  std::map<std::string, std::string> text_;
};

// The process's peak resident set (VmHWM from /proc/self/status), 0 when unknown.
int64_t peak_rss_bytes();

std::string format_duration(double seconds);  // "1:02:03", "4:05"

}  // namespace tessera::train
