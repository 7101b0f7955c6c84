// The rdu target for training: one compiled step graph (forward, loss, backward and the
// optimizer update, as train/ builds it) mapped onto the chip model and timed by the pipeline
// simulator, like an inference graph at the step's batch. The numerics of a step stay on the
// cpu target; this gives only its simulated time (Trainer::simulated_step_seconds).
#pragma once
#include <cstdint>
#include <string>

#include "ir/graph.h"

namespace tessera::rdu {

struct StepSimulation {
  double seconds = 0;  // one step
  double flops = 0;    // analytic, all kernels
  int sections = 0;
  double fraction_of_peak = 0;
};

// `chip`: a preset name (configs/rdu) or a chip JSON path. Precision bf16 (the chip's rate)
// unless `fp32`. Fails naming the node when the graph holds an op the lowering cannot size.
StepSimulation simulate_step(const Graph& step_graph, int64_t batch, const std::string& chip = "sn40l_like",
                             bool fp32 = false);

inline double simulated_step_seconds(const Graph& step_graph, int64_t batch, const std::string& chip = "sn40l_like") {
  return simulate_step(step_graph, batch, chip).seconds;
}

}  // namespace tessera::rdu
