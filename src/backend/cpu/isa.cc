#include "backend/cpu/isa.h"

#include <cstdlib>

#include "support/error.h"

namespace tessera::cpu {

Isa detected_isa() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
      return Isa::kAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
    return Isa::kScalar;
  }();
  return isa;
}

std::string isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kScalar: return "scalar";
  }
  return "?";
}

std::string onednn_isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "AVX512_CORE";
    case Isa::kAvx2: return "AVX2";
    case Isa::kScalar: return "SSE41";  // oneDNN's lowest level; its JIT needs at least SSE4.1
  }
  return "?";
}

Isa resolve_isa(const std::string& request) {
  std::string name = request;
  if (name.empty()) {
    const char* env = std::getenv("TESSERA_ISA");
    if (env) name = env;
  }
  if (name.empty()) return detected_isa();
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (isa_name(isa) != name) continue;
    if (static_cast<int>(isa) > static_cast<int>(detected_isa()))
      fail_code(ErrorCode::kFailedPrecondition, "ISA '", name, "' requested but this processor supports at most '",
                isa_name(detected_isa()), "'");
    return isa;
  }
  fail_code(ErrorCode::kInvalidArgument, "unknown ISA '", name, "' (expected avx512, avx2 or scalar)");
}

}  // namespace tessera::cpu
