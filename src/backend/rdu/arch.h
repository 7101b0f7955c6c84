// The rdu chip model: a 2D mesh of Pattern Compute Units (PCU: SIMD lanes x pipeline stages,
// usable as a systolic array) and Pattern Memory Units (PMU: banked scratchpad) laid out as a
// checkerboard, switches carrying vector/scalar/control planes, AGCUs at the mesh edge to the
// off-chip tiers (HBM, DDR), and chip-to-chip links. All rates are per fabric clock cycle so
// cycle counts stay exact; docs/rdu.md documents every field and where each preset value
// comes from.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tessera::rdu {

struct PcuSpec {
  int count = 0;
  int lanes = 0;                     // SIMD width = systolic array columns
  int stages = 0;                    // pipeline stages = systolic array rows
  double bf16_flop_per_cycle = 0;    // peak per PCU (2 * lanes * stages when systolic)
  double fp32_flop_per_cycle = 0;    // peak per PCU in fp32
  int pipeline_latency_cycles = 0;   // fill latency of one pass through the PCU
  bool reduction_tree = true;        // cross-lane reduction in log2(lanes) stages
};

struct PmuSpec {
  int count = 0;
  int64_t capacity_bytes = 0;  // scratchpad per PMU, double buffers included
  int banks = 0;
  int addr_per_cycle = 0;
  double read_Bpc = 0, write_Bpc = 0;
};

struct MeshSpec {
  int rows = 0, cols = 0;       // checkerboard: (r + c) even = PCU, odd = PMU
  double vector_link_Bpc = 0;   // per direction, per link
  double scalar_link_Bpc = 0;
  int hop_latency_cycles = 0;
};

struct MemTier {
  std::string name;
  int64_t capacity_bytes = 0;
  double bw_Bpc = 0;          // peak bytes per fabric cycle
  double efficiency = 1.0;    // achievable fraction of bw_Bpc
  int64_t latency_cycles = 0;
  double effective_Bpc() const { return bw_Bpc * efficiency; }
};

struct AgcuSpec {
  int count = 0;
  int max_outstanding_reqs = 0;
};

struct P2pSpec {
  int sockets = 1;
  double bw_Bpc = 0;
  int64_t latency_cycles = 0;
};

struct ReconfigSpec {
  int64_t section_switch_cycles = 0;   // loading a section's configuration
  int64_t kernel_call_sync_cycles = 0; // host sync per section call
};

struct SimSpec {
  int tiles_per_section = 32;  // a section streams its tensors in this many tiles
  int buffer_tiles = 2;        // tiles a PMU buffer between two kernels holds (2 = double buffer)
};

struct Arch {
  std::string name;
  double clock_ghz = 0;
  PcuSpec pcu;
  PmuSpec pmu;
  MeshSpec mesh;
  AgcuSpec agcu;
  MemTier hbm, ddr;
  P2pSpec p2p;
  ReconfigSpec reconfig;
  SimSpec sim;

  double peak_flop_per_cycle(bool bf16) const {
    return pcu.count * (bf16 ? pcu.bf16_flop_per_cycle : pcu.fp32_flop_per_cycle);
  }
  int64_t sram_bytes() const { return static_cast<int64_t>(pmu.count) * pmu.capacity_bytes; }
  bool is_pcu_cell(int r, int c) const { return (r + c) % 2 == 0; }
  void validate() const;  // throws naming the field
};

// Parses a chip description (JSON text); `what` names the source in errors.
Arch parse_arch(const std::string& json, const std::string& what);
// A preset name ("tiny", "small", "sn40l_like", looked up in configs/rdu) or a .json path.
Arch load_arch(const std::string& name_or_path);
// Sets one numeric field by its JSON path (e.g. "pcu.count", "hbm.bw_Bpc") and revalidates;
// for design-space sweeps. Throws naming the field if it is unknown or the value invalid.
void set_arch_param(Arch& arch, const std::string& field, double value);
// The fields set_arch_param accepts.
const std::vector<std::string>& arch_params();

// Directory holding the presets: $TESSERA_RDU_CONFIG_DIR, else the source tree's configs/rdu.
std::string preset_dir();

}  // namespace tessera::rdu
