#include "backend/rdu/figures.h"

#include <algorithm>
#include <vector>

#include "support/error.h"

namespace tessera::rdu {

TrafficFigures traffic_figures(const RduMapping& mapping) {
  TrafficFigures f;
  for (const Section& s : mapping.partition.sections) {
    f.hbm_read += s.hbm_read;
    f.hbm_write += s.hbm_write;
    f.ddr_read += s.ddr_read;
  }
  for (const Kernel& k : mapping.kernels) {
    f.flops += k.flops;
    if (k.family == "gemm" || k.family == "conv") f.product_flops += 2.0 * k.m * k.k * k.n * k.groups;
    if (k.family == "attention") f.product_flops += k.flops - static_cast<double>(k.ops) * k.elems;
  }
  // An arg's bytes are what its readers take from off-chip; count each arg once.
  std::vector<bool> seen(mapping.kernels.size(), false);
  for (const Kernel& user : mapping.kernels) {
    if (user.costs_nothing()) continue;
    for (size_t e = 0; e < user.producers.size(); ++e) {
      int p = user.producers[e];
      // Look through metadata (reshape, identity) to the arg, as the partition does.
      while (mapping.kernels[p].costs_nothing() && !mapping.kernels[p].producers.empty()) p = mapping.kernels[p].producers.front();
      if (mapping.kernels[p].op != "_Arg" || seen[p]) continue;
      seen[p] = true;
      f.arg_bytes += user.producer_bytes[e];
    }
  }
  return f;
}

double weight_switch_seconds(const Arch& arch, int64_t weight_bytes, int chips) {
  if (chips < 1) fail_code(ErrorCode::kInvalidArgument, "weight switch: chips must be >= 1, got ", chips);
  if (weight_bytes < 0) fail_code(ErrorCode::kInvalidArgument, "weight switch: negative weight bytes ", weight_bytes);
  double share = static_cast<double>(weight_bytes) / chips;
  double bpc = std::min(arch.ddr.effective_Bpc(), arch.hbm.effective_Bpc());
  double cycles = share / bpc + static_cast<double>(arch.ddr.latency_cycles);
  return cycles / (arch.clock_ghz * 1e9);
}

}  // namespace tessera::rdu
