#include "io/json_tensor.h"

#include <rapidjson/error/en.h>

#include <cmath>

namespace tessera {

rapidjson::Document parse_json(const std::string& text, const std::string& what) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseNanAndInfFlag>(text.c_str(), text.size());
  if (doc.HasParseError())
    fail(what, ": invalid JSON at offset ", doc.GetErrorOffset(), ": ",
         rapidjson::GetParseError_En(doc.GetParseError()));
  return doc;
}

namespace {

// Shape of a rectangular nested list; errors on ragged lists.
void infer_shape(const rapidjson::Value& v, size_t depth, Shape& shape, const std::string& what) {
  if (!v.IsArray()) {
    TS_CHECK(depth == shape.size() || shape.empty() && depth == 0, what, ": ragged nested list");
    return;
  }
  if (depth == shape.size()) shape.push_back(v.Size());
  TS_CHECK(shape[depth] == static_cast<int64_t>(v.Size()), what, ": ragged nested list (dimension ", depth,
           " has lengths ", shape[depth], " and ", v.Size(), ")");
  for (const auto& e : v.GetArray()) infer_shape(e, depth + 1, shape, what);
}

std::string base64_decode(const std::string& in, const std::string& what) {
  static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (char c : in) {
    if (c == '=') break;
    auto pos = chars.find(c);
    if (pos == std::string::npos) {
      if (c == '-') pos = 62;
      else if (c == '_') pos = 63;
      else fail(what, ": invalid base64 character");
    }
    val = (val << 6) + static_cast<int>(pos);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

void flatten(const rapidjson::Value& v, std::vector<const rapidjson::Value*>& out) {
  if (v.IsArray()) {
    for (const auto& e : v.GetArray()) flatten(e, out);
  } else {
    out.push_back(&v);
  }
}

double number_of(const rapidjson::Value& v, const std::string& what) {
  if (v.IsNumber()) return v.GetDouble();
  if (v.IsBool()) return v.GetBool() ? 1 : 0;
  fail(what, ": expected a number");
}

}  // namespace

Tensor json_to_tensor(const rapidjson::Value& json, DType dtype, const std::string& what) {
  Shape shape;
  infer_shape(json, 0, shape, what);
  std::vector<const rapidjson::Value*> leaves;
  flatten(json, leaves);
  Tensor t(dtype, shape);
  TS_CHECK(static_cast<int64_t>(leaves.size()) == t.num_elements(), what, ": ragged nested list");
  if (dtype == DType::kString) {
    for (size_t i = 0; i < leaves.size(); ++i) {
      const auto& v = *leaves[i];
      if (v.IsString()) {
        t.strings()[i] = std::string(v.GetString(), v.GetStringLength());
      } else if (v.IsObject() && v.HasMember("b64") && v["b64"].IsString()) {
        t.strings()[i] = base64_decode(v["b64"].GetString(), what);
      } else {
        fail(what, ": expected a string or {\"b64\": ...}");
      }
    }
    return t;
  }
  if (dtype == DType::kBool) {
    for (size_t i = 0; i < leaves.size(); ++i) {
      TS_CHECK(leaves[i]->IsBool(), what, ": expected true/false");
      t.data<bool>()[i] = leaves[i]->GetBool();
    }
    return t;
  }
  dispatch(RealTypes{}, dtype, what.c_str(), [&]<typename T>() {
    T* d = t.data<T>();
    for (size_t i = 0; i < leaves.size(); ++i) {
      const auto& v = *leaves[i];
      if constexpr (std::is_integral_v<T>) {
        TS_CHECK(v.IsInt64() || v.IsUint64(), what, ": expected an integer for ", dtype_name(dtype));
        if (v.IsUint64()) d[i] = static_cast<T>(v.GetUint64());
        else d[i] = static_cast<T>(v.GetInt64());
      } else {
        d[i] = static_cast<T>(static_cast<float>(number_of(v, what)));
        if constexpr (std::is_same_v<T, double>) d[i] = number_of(v, what);
      }
    }
  });
  return t;
}

}  // namespace tessera
