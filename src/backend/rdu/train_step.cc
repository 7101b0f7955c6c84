#include "backend/rdu/train_step.h"

#include "backend/rdu/arch.h"
#include "backend/rdu/mapping.h"
#include "backend/rdu/simulator.h"
#include "support/error.h"

namespace tessera::rdu {

StepSimulation simulate_step(const Graph& step_graph, int64_t batch, const std::string& chip, bool fp32) {
  TS_CHECK(batch > 0, "rdu step simulation needs a positive batch, got ", batch);
  return with_context("rdu simulation of training step '" + step_graph.name + "'", [&] {
    Arch arch = load_arch(chip);
    MapOptions mo;
    mo.precision.bf16 = !fp32;
    RduMapping mapping = map_graph(step_graph, batch, arch, mo);
    SimReport rep = simulate_timing(mapping);
    StepSimulation out;
    out.seconds = rep.seconds;
    out.flops = rep.flops;
    out.sections = static_cast<int>(rep.sections.size());
    out.fraction_of_peak = rep.fraction_of_peak();
    return out;
  });
}

}  // namespace tessera::rdu
