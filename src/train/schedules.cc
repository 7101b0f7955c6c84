#include "train/schedules.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "support/error.h"

namespace tessera::train {

void check_schedule(const ScheduleSpec& s) {
  TS_CHECK(s.name == "constant" || s.name == "exponential" || s.name == "cosine", "unknown schedule '", s.name,
           "' (constant, exponential, cosine)");
  if (s.name != "constant")
    TS_CHECK(s.decay_steps > 0, "schedule '", s.name, "' needs decay_steps > 0, got ", s.decay_steps);
  TS_CHECK(s.warmup_steps >= 0, "warmup_steps must be >= 0, got ", s.warmup_steps);
}

double learning_rate_at(const ScheduleSpec& s, double base, int64_t step) {
  double t = static_cast<double>(step);
  double w = static_cast<double>(s.warmup_steps);
  if (s.warmup_steps > 0) {
    if (s.name == "cosine") t = std::min(t, static_cast<double>(s.decay_steps) + w);
    if (t < w) return base * t / w;
    t -= w;
  }
  if (s.name == "exponential") {
    double p = t / static_cast<double>(s.decay_steps);
    if (s.staircase) p = std::floor(p);
    return base * std::pow(s.decay_rate, p);
  }
  if (s.name == "cosine") {
    double d = static_cast<double>(s.decay_steps);
    double frac = std::min(t, d) / d;
    double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * frac));
    return base * ((1.0 - s.alpha) * cosine + s.alpha);
  }
  return base;
}

}  // namespace tessera::train
