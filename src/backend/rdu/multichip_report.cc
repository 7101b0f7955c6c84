// The multi-chip report's independent validator and its text and JSON renderings.
#include <cstdio>
#include <sstream>

#include "backend/rdu/multichip.h"

namespace tessera::rdu {

std::vector<std::string> validate_multichip(const MultiChipReport& r, const Arch& a) {
  std::vector<std::string> bad;
  auto add = [&](const std::string& m) { bad.push_back(m); };
  if (static_cast<int>(r.plans.size()) != r.chips || r.chips > a.p2p.sockets)
    add("split: " + std::to_string(r.plans.size()) + " chip plans for " + std::to_string(r.chips) + " chips (node of " +
        std::to_string(a.p2p.sockets) + ")");
  int64_t samples = 0;
  int next_section = 0;
  for (const ChipPlan& p : r.plans) {
    for (const std::string& q : p.problems) add("chip: " + p.role + ": " + q);
    int64_t room = p.weights_in_ddr ? a.hbm.capacity_bytes + a.ddr.capacity_bytes : a.hbm.capacity_bytes;
    if (p.weight_bytes > room)
      add("capacity: " + p.role + " keeps " + std::to_string(p.weight_bytes) + " bytes of weights in " + (p.weights_in_ddr ? "HBM + DDR" : "HBM") +
          " of " + std::to_string(room));
    samples += p.batch;
    if (r.parallel == Parallel::kPipeline) {
      if (p.first_section != next_section || p.end_section <= p.first_section)
        add("split: " + p.role + " runs sections " + std::to_string(p.first_section) + "-" + std::to_string(p.end_section - 1) +
            ", expected to start at " + std::to_string(next_section));
      next_section = p.end_section;
      if (p.p2p_cycles > r.steady_cycles / r.microbatches * (1 + 1e-9))
        add("p2p: " + p.role + "'s link needs " + std::to_string(p.p2p_cycles) + " cycles per microbatch, more than the steady interval");
    }
    if (p.p2p_send_bytes > 0 && p.p2p_send_bytes > a.p2p.bw_Bpc * p.p2p_cycles * (1 + 1e-9))
      add("p2p: " + p.role + " sends " + std::to_string(p.p2p_send_bytes) + " bytes in " + std::to_string(p.p2p_cycles) + " cycles");
  }
  if (r.parallel == Parallel::kData && samples != r.batch)
    add("split: the replicas map " + std::to_string(samples) + " samples of a batch of " + std::to_string(r.batch));
  if (r.parallel == Parallel::kPipeline && next_section != r.total_sections)
    add("split: the stages end at section " + std::to_string(next_section) + " of " + std::to_string(r.total_sections));
  return bad;
}

std::string describe(const MultiChipReport& r) {
  std::ostringstream os;
  char line[512];
  std::snprintf(line, sizeof line, "multi-chip: %d chips, %s parallel, batch %lld", r.chips, parallel_name(r.parallel),
                static_cast<long long>(r.batch));
  os << line;
  if (r.parallel == Parallel::kPipeline) os << ", " << r.microbatches << " microbatches";
  os << "\n";
  std::snprintf(line, sizeof line, "%-10s %8s %10s %14s %12s %14s %6s %14s %12s  %s\n", "chip", "batch", "sections", "cycles",
                "flops", "weight_bytes", "tier", "p2p_send_B", "p2p_cycles", "validator");
  os << line;
  for (const ChipPlan& p : r.plans) {
    std::string secs = r.parallel == Parallel::kPipeline
                           ? std::to_string(p.first_section) + "-" + std::to_string(p.end_section - 1)
                           : std::to_string(p.sections);
    std::snprintf(line, sizeof line, "%-10s %8lld %10s %14.0f %12.4g %14lld %6s %14lld %12.0f  %s\n", p.role.c_str(),
                  static_cast<long long>(p.batch), secs.c_str(), p.cycles, p.flops, static_cast<long long>(p.weight_bytes),
                  p.weights_in_ddr ? "ddr" : "hbm", static_cast<long long>(p.p2p_send_bytes), p.p2p_cycles,
                  p.problems.empty() ? "ok" : "FAILED");
    os << line;
  }
  std::snprintf(line, sizeof line, "step cycles %.0f  time %.6g s  samples/s %.6g", r.step_cycles, r.seconds(r.step_cycles),
                r.step_samples_per_second());
  os << line;
  if (r.parallel == Parallel::kPipeline) {
    std::snprintf(line, sizeof line, "  (bubble %.1f%%)\nsteady state: samples/s %.6g  latency %.0f cycles = %.6g s", 100 * r.bubble_fraction,
                  r.samples_per_second(), r.latency_cycles, r.seconds(r.latency_cycles));
    os << line;
  }
  std::snprintf(line, sizeof line, "\nflops (all chips) %.6g  p2p traffic %lld bytes per batch, link cycles %.0f\n", r.flops,
                static_cast<long long>(r.p2p_bytes), r.p2p_cycles);
  os << line;
  if (r.parallel == Parallel::kData) {
    std::snprintf(line, sizeof line,
                  "gradient all-reduce per step (ring): %lld bytes, %.0f cycles = %.6g s; forward + all-reduce %.0f cycles (no backward modelled)\n",
                  static_cast<long long>(r.allreduce_bytes), r.allreduce_cycles, r.seconds(r.allreduce_cycles),
                  r.step_cycles + r.allreduce_cycles);
    os << line;
  }
  for (const std::string& n : r.notes) os << "note: " << n << "\n";
  os << "validator " << (r.valid() ? "ok" : "FAILED") << " (" << r.plans.size() << " chip mappings and the split)\n";
  for (const std::string& q : r.problems) os << "  " << q << "\n";
  return os.str();
}

std::string to_json(const MultiChipReport& r) {
  std::ostringstream os;
  os.precision(17);
  os << "{\"chips\": " << r.chips << ", \"parallel\": \"" << parallel_name(r.parallel) << "\", \"batch\": " << r.batch
     << ", \"microbatches\": " << r.microbatches << ", \"step_cycles\": " << r.step_cycles << ", \"steady_cycles\": " << r.steady_cycles
     << ", \"latency_cycles\": " << r.latency_cycles << ", \"seconds\": " << r.seconds(r.step_cycles)
     << ", \"samples_per_second\": " << r.samples_per_second() << ", \"step_samples_per_second\": " << r.step_samples_per_second()
     << ", \"bubble_fraction\": " << r.bubble_fraction << ", \"flops\": " << r.flops << ", \"p2p_bytes\": " << r.p2p_bytes
     << ", \"p2p_cycles\": " << r.p2p_cycles << ", \"allreduce_bytes\": " << r.allreduce_bytes
     << ", \"allreduce_cycles\": " << r.allreduce_cycles << ", \"allreduce_seconds\": " << r.seconds(r.allreduce_cycles)
     << ", \"valid\": " << (r.valid() ? "true" : "false") << ", \"per_chip\": [";
  for (size_t i = 0; i < r.plans.size(); ++i) {
    const ChipPlan& p = r.plans[i];
    os << (i ? ", " : "") << "{\"role\": \"" << p.role << "\", \"batch\": " << p.batch << ", \"first_section\": " << p.first_section
       << ", \"end_section\": " << p.end_section << ", \"sections\": " << p.sections << ", \"cycles\": " << p.cycles
       << ", \"flops\": " << p.flops << ", \"weight_bytes\": " << p.weight_bytes
       << ", \"weights_in_ddr\": " << (p.weights_in_ddr ? "true" : "false") << ", \"p2p_send_bytes\": " << p.p2p_send_bytes
       << ", \"p2p_cycles\": " << p.p2p_cycles << ", \"valid\": " << (p.problems.empty() ? "true" : "false") << "}";
  }
  os << "]}";
  return os.str();
}

}  // namespace tessera::rdu
