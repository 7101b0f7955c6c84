// The avx2 build of the vectorised loops (see vec_impl.h; flags in CMakeLists.txt).
#include <immintrin.h>
#define TS_VEC_NS vec_avx2
#define TS_VEC_WIDTH 8
#include "backend/cpu/vec_impl.h"

namespace tessera::cpu {
const VecTable& vec_table_avx2() { return vec_avx2::kTable; }
}  // namespace tessera::cpu
