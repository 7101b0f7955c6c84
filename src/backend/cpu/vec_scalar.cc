// The scalar build of the vectorised loops (see vec_impl.h; flags in CMakeLists.txt).
#define TS_VEC_NS vec_scalar
#define TS_VEC_WIDTH 1
#include "backend/cpu/vec_impl.h"

namespace tessera::cpu {
const VecTable& vec_table_scalar() { return vec_scalar::kTable; }
}  // namespace tessera::cpu
