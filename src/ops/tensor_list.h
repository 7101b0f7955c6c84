// The TensorList variant value: what a DT_VARIANT tensor produced by the TensorList* ops holds
// (tf.TensorArray in TF2, tf.while_loop accumulators, Keras RNN layers). Like every Tensor it is
// immutable once built: ops that "modify" a list make a new TensorList whose vector of Tensors
// is a copy (cheap: Tensors share their storage).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ir/tensor.h"

namespace tessera {

struct TensorList : VariantValue {
  std::vector<Tensor> tensors;  // an invalid Tensor is an unset item (reads as zeros)
  DType element_dtype = DType::kInvalid;
  PartialShape element_shape;   // may be partially known; every set item is compatible with it
  int64_t max_num_elements = -1;  // -1: unbounded (EmptyTensorList's limit for PushBack)

  std::string type_name() const override { return "TensorList"; }
};

// The list held by a scalar DT_VARIANT tensor; errors when it holds something else.
const TensorList& tensor_list_of(const Tensor& handle);

// A scalar DT_VARIANT tensor holding `list`.
Tensor make_tensor_list_handle(std::shared_ptr<const TensorList> list);

// Gradient arithmetic on lists (AddN and ZerosLike of a variant, as in TF): the item-wise sum of
// lists of equal length (an unset item counts as zeros), and a list of zeros like `list`'s
// set items (unset items stay unset).
Tensor add_tensor_lists(const std::vector<Tensor>& lists);
Tensor zeros_like_tensor_list(const Tensor& list);

}  // namespace tessera
