#include "train/progress.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace tessera::train {
namespace {

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";  // JSON has no NaN/Inf
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else out += c;
  }
  return out + "\"";
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

ProgressBar::ProgressBar(FILE* out, bool tty, int64_t every) : out_(out), tty_(tty), every_(std::max<int64_t>(every, 1)) {}

std::string ProgressBar::format(const StepReport& r, int width) {
  std::ostringstream os;
  char buf[160];
  std::snprintf(buf, sizeof buf, "step %lld/%lld", static_cast<long long>(r.step), static_cast<long long>(r.total));
  os << buf;
  if (width > 0 && r.total > 0) {
    int filled = static_cast<int>(static_cast<double>(width) * static_cast<double>(r.step) / static_cast<double>(r.total));
    filled = std::clamp(filled, 0, width);
    os << " [" << std::string(filled, '=') << std::string(width - filled, ' ') << "]";
  }
  std::snprintf(buf, sizeof buf, " loss %.4f", r.loss);
  os << buf;
  if (r.accuracy >= 0) {
    std::snprintf(buf, sizeof buf, " acc %.4f", r.accuracy);
    os << buf;
  }
  std::snprintf(buf, sizeof buf, " | %.0f samples/s | ETA %s | input wait %.1f%%", r.samples_per_second,
                format_duration(r.eta_seconds).c_str(), 100.0 * r.input_wait_fraction);
  os << buf;
  return os.str();
}

void ProgressBar::update(const StepReport& r) {
  if (tty_) {
    std::fprintf(out_, "\r%s\033[K", format(r, 20).c_str());
    drawn_ = true;
    if (r.step >= r.total) finish();
    std::fflush(out_);
    return;
  }
  if (r.step % every_ == 0 || r.step >= r.total || r.step == 1) {
    std::fprintf(out_, "%s\n", format(r, 0).c_str());
    std::fflush(out_);
  }
}

void ProgressBar::note(const std::string& text) {
  if (tty_ && drawn_) std::fprintf(out_, "\r\033[K");
  drawn_ = false;
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
}

void ProgressBar::finish() {
  if (tty_ && drawn_) std::fprintf(out_, "\n");
  drawn_ = false;
  std::fflush(out_);
}

void RunStats::add_step(double loss, double accuracy, int64_t samples, double step_seconds, double wait_seconds) {
  losses_.push_back(loss);
  accuracies_.push_back(accuracy);
  samples_.push_back(samples);
  step_seconds_.push_back(step_seconds);
  wait_seconds_.push_back(wait_seconds);
}

void RunStats::set_eval(double loss, double accuracy, int64_t samples) {
  has_eval_ = true;
  eval_loss_ = loss;
  eval_accuracy_ = accuracy;
  eval_samples_ = samples;
}

double RunStats::samples_per_second(int64_t warmup) const {
  std::vector<double> rates;
  size_t from = static_cast<size_t>(std::max<int64_t>(warmup, 0));
  if (from >= losses_.size()) from = 0;
  for (size_t i = from; i < losses_.size(); ++i) {
    double t = step_seconds_[i] + wait_seconds_[i];
    if (t > 0) rates.push_back(static_cast<double>(samples_[i]) / t);
  }
  return median(rates);
}

double RunStats::input_wait_fraction() const {
  double wait = 0, total = 0;
  for (size_t i = 0; i < losses_.size(); ++i) {
    wait += wait_seconds_[i];
    total += wait_seconds_[i] + step_seconds_[i];
  }
  return total > 0 ? wait / total : 0;
}

std::string RunStats::to_json(int64_t first_step, int64_t warmup) const {
  std::ostringstream os;
  os << "{\n  \"steps\": " << losses_.size() << ",\n  \"first_step\": " << first_step;
  os << ",\n  \"final_loss\": " << (losses_.empty() ? "null" : json_number(losses_.back()));
  os << ",\n  \"final_accuracy\": "
     << (accuracies_.empty() || accuracies_.back() < 0 ? "null" : json_number(accuracies_.back()));
  if (has_eval_) {
    os << ",\n  \"eval_loss\": " << json_number(eval_loss_);
    os << ",\n  \"eval_accuracy\": " << (eval_accuracy_ < 0 ? "null" : json_number(eval_accuracy_));
    os << ",\n  \"eval_samples\": " << eval_samples_;
  }
  os << ",\n  \"samples_per_second\": " << json_number(samples_per_second(warmup));
  os << ",\n  \"input_wait_fraction\": " << json_number(input_wait_fraction());
  os << ",\n  \"peak_rss_bytes\": " << peak_rss_bytes();
  double total = 0;
  for (size_t i = 0; i < losses_.size(); ++i) total += step_seconds_[i] + wait_seconds_[i];
  os << ",\n  \"train_seconds\": " << json_number(total);
  for (const auto& [k, v] : extra_) os << ",\n  " << json_string(k) << ": " << json_number(v);
  for (const auto& [k, v] : text_) os << ",\n  " << json_string(k) << ": " << json_string(v);
  auto list = [&](const char* name, const std::vector<double>& v) {
    os << ",\n  \"" << name << "\": [";
    for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << json_number(v[i]);
    os << "]";
  };
  list("losses", losses_);
  list("accuracies", accuracies_);
  list("step_seconds", step_seconds_);
  os << "\n}\n";
  return os.str();
}

int64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) != 0) continue;
    std::istringstream is(line.substr(6));
    int64_t kb = 0;
    is >> kb;
    return kb * 1024;
  }
  return 0;
}

}  // namespace tessera::train
