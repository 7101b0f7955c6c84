// The parts of the array op family, each registered from register_array_ops (array_ops.cc).
#pragma once
#include "ir/op_registry.h"

namespace tessera {

void register_shape_ops(OpRegistry&);   // shape_ops.cc: Shape, Reshape, Squeeze, Fill, Range, ...
void register_slice_ops(OpRegistry&);   // slice_ops.cc: StridedSlice, Slice, Transpose, Tile, Pad, ...
void register_gather_ops(OpRegistry&);  // gather_ops.cc: Gather*, Scatter*, OneHot, Where, Unique
void register_concat_ops(OpRegistry&);  // concat_ops.cc: Concat*, Pack, Unpack, Split*
void register_matrix_ops(OpRegistry&);  // matrix_ops.cc: MatrixBandPart, MatrixDiag*, ...

}  // namespace tessera
