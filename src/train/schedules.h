// Learning-rate schedules (Keras 3 formulas), evaluated on the host from the step counter
// (optimizer iterations done) and fed to the step graph as a scalar arg.
#pragma once
#include <cstdint>

#include "train/trainer.h"

namespace tessera::train {

void check_schedule(const ScheduleSpec& s);
// The rate step `step` (0-based iterations done) uses. Warmup: linear from 0 to `base` over
// warmup_steps, then the schedule counted from the warmup's end (Keras CosineDecay's
// warmup_target form with initial rate 0; exponential decay follows the same layout).
double learning_rate_at(const ScheduleSpec& s, double base, int64_t step);

}  // namespace tessera::train
