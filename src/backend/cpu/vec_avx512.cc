// The avx512 build of the vectorised loops (see vec_impl.h; flags in CMakeLists.txt).
#include <immintrin.h>
// GCC 12 false positive inside _mm512_sqrt_ps (its _mm512_undefined_ps pass-through).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define TS_VEC_NS vec_avx512
#define TS_VEC_WIDTH 16
#include "backend/cpu/vec_impl.h"

namespace tessera::cpu {
const VecTable& vec_table_avx512() { return vec_avx512::kTable; }
}  // namespace tessera::cpu
