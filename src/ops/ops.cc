// The list of op families. Each family file registers its ops (definition, attribute defaults,
// shape inference, reference kernel) in one place; adding an op touches only its family file.
#include "ir/op_registry.h"

namespace tessera {

void register_graph_ops(OpRegistry&);        // graph_ops.cc: Const, Placeholder, Identity, ...
void register_variable_ops(OpRegistry&);     // variable_ops.cc: VarHandleOp, ReadVariableOp, RestoreV2
void register_unary_ops(OpRegistry&);        // unary_ops.cc: math and activation functions, Cast
void register_binary_ops(OpRegistry&);       // binary_ops.cc: broadcasting arithmetic/comparison
void register_reduction_ops(OpRegistry&);    // reduction_ops.cc: Sum/Mean/Max/ArgMax/Softmax/...
void register_nn_ops(OpRegistry&);           // nn_ops.cc: MatMul, Conv, pooling, batch norm, resize
void register_array_ops(OpRegistry&);        // array_ops.cc: Reshape, slicing, gather, concat, ...
void register_control_flow_ops(OpRegistry&); // control_flow_ops.cc: If, While
void register_tensor_list_ops(OpRegistry&);  // tensor_list_ops.cc: TensorList* for loops
void register_parsing_ops(OpRegistry&);      // parsing_ops.cc: ParseExample(V2)
void register_random_ops(OpRegistry&);       // random_ops.cc: seeded Philox RandomUniform, ...
void register_fused_ops(OpRegistry&);        // fused_ops.cc: Tessera's Ts* fusion ops
void register_batch_norm_ops(OpRegistry&);   // batch_norm_ops.cc: TsBatchNormTraining(+Grad)

void register_all_ops(OpRegistry& r) {
  register_graph_ops(r);
  register_variable_ops(r);
  register_unary_ops(r);
  register_binary_ops(r);
  register_reduction_ops(r);
  register_nn_ops(r);
  register_array_ops(r);
  register_control_flow_ops(r);
  register_tensor_list_ops(r);
  register_parsing_ops(r);
  register_random_ops(r);
  register_fused_ops(r);
  register_batch_norm_ops(r);
}

}  // namespace tessera
