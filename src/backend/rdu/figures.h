// Whole-workload figures of the rdu model used to compare it with published numbers: FLOPs
// and off-chip bytes of a mapped graph, and the time to switch a model's weights from DDR to
// HBM across several chips.
#pragma once
#include <cstdint>

#include "backend/rdu/mapping.h"

namespace tessera::rdu {

struct TrafficFigures {
  double flops = 0;            // analytic FLOPs of every kernel
  double product_flops = 0;    // of the GEMM/conv/attention products alone
  int64_t hbm_read = 0, hbm_write = 0, ddr_read = 0;
  int64_t arg_bytes = 0;       // graph args read from off-chip (weights streamed as args, caches)
  int64_t offchip_bytes() const { return hbm_read + hbm_write + ddr_read; }
  double flop_per_byte() const { return offchip_bytes() > 0 ? flops / offchip_bytes() : 0; }
};

// Sums the partition's per-section off-chip traffic and the kernels' FLOPs.
TrafficFigures traffic_figures(const RduMapping& mapping);

// Seconds to copy `weight_bytes` from DDR into HBM when they are split evenly over `chips`
// sockets, each streaming its share at the slower of its DDR read and HBM write bandwidth
// (effective rates), plus one DDR latency. SN40L quotes 0.01 s for Llama-3.1-8B on 16 sockets.
double weight_switch_seconds(const Arch& arch, int64_t weight_bytes, int chips);

}  // namespace tessera::rdu
