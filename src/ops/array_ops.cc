// The array op family: data movement and shape manipulation with TensorFlow semantics. The ops
// live in several files (see array_families.h); shared helpers are in array_util.h.
#include "ops/array_families.h"

namespace tessera {

void register_array_ops(OpRegistry& r) {
  register_shape_ops(r);
  register_slice_ops(r);
  register_gather_ops(r);
  register_concat_ops(r);
  register_matrix_ops(r);
}

}  // namespace tessera
