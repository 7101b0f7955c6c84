// JSON <-> Tensor in TensorFlow Serving's conventions: nested lists give the shape, numbers
// and booleans the values, strings stay strings, {"b64": "..."} is binary data, and NaN /
// Infinity / -Infinity are accepted as tokens.
#pragma once
#include <string>

#include <rapidjson/document.h>

#include "ir/tensor.h"

namespace tessera {

// Converts a JSON value (scalar or rectangular nested list) to a tensor of `dtype`.
// `what` names the value in errors ("input 'x'").
Tensor json_to_tensor(const rapidjson::Value& json, DType dtype, const std::string& what);

// Parses a JSON document, accepting NaN/Infinity tokens; errors give the offset.
rapidjson::Document parse_json(const std::string& text, const std::string& what);

}  // namespace tessera
