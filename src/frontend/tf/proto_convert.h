// Conversions from TensorFlow protos to IR values. Protos are untrusted: every size and count
// is checked before anything is allocated.
#pragma once
#include <string>

#include "ir/attr.h"
#include "tensorflow/core/framework/attr_value.pb.h"
#include "tensorflow/core/framework/tensor.pb.h"
#include "tensorflow/core/framework/tensor_shape.pb.h"

namespace tessera::tf {

DType convert_dtype(int tf_dtype);
PartialShape convert_shape(const tensorflow::TensorShapeProto& proto);
Tensor convert_tensor(const tensorflow::TensorProto& proto);
// The inverse, for the model server: values go to the typed *_val fields (as TF Serving's
// responses carry them), one value per element.
void tensor_to_proto(const Tensor& tensor, tensorflow::TensorProto* proto);
AttrValue convert_attr(const tensorflow::AttrValue& proto);

// A parsed tensor reference from a NodeDef input: "name", "name:3", "^name" (control), or in
// function bodies "name:out_arg:3".
struct TensorRef {
  std::string node;
  std::string arg;  // output argument name (function-body form only)
  int index = 0;
  bool control = false;
};
TensorRef parse_tensor_ref(const std::string& text);

}  // namespace tessera::tf
