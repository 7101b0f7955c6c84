// Which vector instruction set the cpu kernels use. Detected at start-up; TESSERA_ISA
// ("avx512", "avx2", "scalar") or CpuOptions::isa may lower it (never raise it past what the
// processor has), so the correctness suite can run every code path on one machine.
#pragma once
#include <string>

namespace tessera::cpu {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

Isa detected_isa();                         // what this processor supports
Isa resolve_isa(const std::string& request);  // "" = TESSERA_ISA or detected; errors if unsupported
std::string isa_name(Isa isa);
// The matching ONEDNN_MAX_CPU_ISA value, so oneDNN follows the same override.
std::string onednn_isa_name(Isa isa);

}  // namespace tessera::cpu
