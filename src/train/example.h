// Parsing serialized tf.train.Example protos into dense tensors, like tf.io.parse_example with
// FixedLenFeature / VarLenFeature specs.
//
// FixedLen: every example must carry exactly num_elements(shape) values of the spec's dtype
// (float32 from float_list, int64 from int64_list, string from bytes_list), or the feature
// may be absent when the spec has a default. VarLen: any number of values; the batch becomes
// a dense [batch, max_len] tensor padded with `pad` (TF would return a SparseTensor; we pad,
// as .to_dense() does), or, with pad_varlen = false, an error unless all lengths agree.
// Inputs are untrusted: malformed protos and mismatches are errors naming the example index
// and the feature.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/tensor.h"

namespace tessera::train {

struct FeatureSpec {
  enum class Kind { kFixedLen, kVarLen };
  std::string name;
  DType dtype = DType::kFloat32;  // kFloat32, kInt64 or kString
  Kind kind = Kind::kFixedLen;
  Shape shape;                    // per-example shape (FixedLen only)
  std::optional<Tensor> default_value;  // FixedLen: scalar (broadcast) or full shape
  bool pad_varlen = true;         // VarLen: pad to the longest, else require equal lengths
};

// Parses "name:dtype:shape[:default]" as the CLI spells it: dtype float32|int64|string,
// shape "" (scalar), "3", "2x3" or "var" (VarLen); default a number or a string.
FeatureSpec parse_feature_spec(const std::string& text);

// One tensor per spec, in spec order, each with a leading batch dimension of
// serialized.size().
std::vector<Tensor> parse_examples(const std::vector<std::string_view>& serialized,
                                   const std::vector<FeatureSpec>& specs);

// Serialises an Example with the given features (for tests, tools and fuzzer seeds).
std::string make_example(const std::vector<std::pair<std::string, Tensor>>& features);

}  // namespace tessera::train
