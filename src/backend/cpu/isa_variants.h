// One loop body compiled for each ISA path the cpu backend picks from (Isa: AVX-512, AVX2,
// baseline), so a kernel can take the variant of its CompileEnv's ISA — which TESSERA_ISA
// lowers — rather than what the processor supports (target_clones). The correctness suite
// then runs every variant on one machine. `body` must be always-inline: GCC inlines a
// baseline function into one compiled for a wider target, so each variant is vectorised
// for its own instruction set.
#pragma once
#include "backend/cpu/isa.h"

#define TS_ISA_VARIANTS(ret, name, body, params, args)                                                   \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"))) ret name##_avx512 params {    \
    return body args;                                                                                  \
  }                                                                                                    \
  __attribute__((target("avx2,fma"))) ret name##_avx2 params { return body args; }                     \
  ret name##_base params { return body args; }                                                         \
  inline auto name##_for(::tessera::cpu::Isa isa) {                                                    \
    return isa == ::tessera::cpu::Isa::kAvx512 ? &name##_avx512                                        \
                                               : (isa == ::tessera::cpu::Isa::kAvx2 ? &name##_avx2 : &name##_base); \
  }
