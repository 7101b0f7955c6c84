#include "train/example.h"

#include <cstring>

#include "support/error.h"
#include "tensorflow/core/example/example.pb.h"

namespace tessera::train {
namespace {

// Number of values a Feature holds for `dtype`, or -1 when it holds another kind of list.
int64_t feature_size(const tensorflow::Feature& f, DType dtype) {
  switch (f.kind_case()) {
    case tensorflow::Feature::kFloatList:
      return dtype == DType::kFloat32 ? f.float_list().value_size() : -1;
    case tensorflow::Feature::kInt64List:
      return dtype == DType::kInt64 ? f.int64_list().value_size() : -1;
    case tensorflow::Feature::kBytesList:
      return dtype == DType::kString ? f.bytes_list().value_size() : -1;
    default:
      return 0;  // an empty Feature (no list set) holds no values of any type
  }
}

const char* kind_name(const tensorflow::Feature& f) {
  switch (f.kind_case()) {
    case tensorflow::Feature::kFloatList: return "float_list";
    case tensorflow::Feature::kInt64List: return "int64_list";
    case tensorflow::Feature::kBytesList: return "bytes_list";
    default: return "no list";
  }
}

// Copies n values of feature f into out at element offset `at`.
void copy_values(const tensorflow::Feature& f, Tensor& out, int64_t at, int64_t n) {
  if (n == 0) return;
  switch (out.dtype()) {
    case DType::kFloat32:
      std::memcpy(out.data<float>() + at, f.float_list().value().data(), sizeof(float) * n);
      break;
    case DType::kInt64:
      std::memcpy(out.data<int64_t>() + at, f.int64_list().value().data(), sizeof(int64_t) * n);
      break;
    default:
      for (int64_t i = 0; i < n; ++i) out.strings()[at + i] = f.bytes_list().value(static_cast<int>(i));
  }
}

// Copies `n` elements of a default or padding tensor (broadcast if it is a single value).
void fill_from(const Tensor& src, Tensor& out, int64_t at, int64_t n) {
  const bool scalar = src.num_elements() == 1;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = scalar ? 0 : i;
    switch (out.dtype()) {
      case DType::kFloat32: out.data<float>()[at + i] = src.data<float>()[s]; break;
      case DType::kInt64: out.data<int64_t>()[at + i] = src.data<int64_t>()[s]; break;
      default: out.strings()[at + i] = src.strings()[s];
    }
  }
}

void check_spec(const FeatureSpec& spec) {
  TS_CHECK(spec.dtype == DType::kFloat32 || spec.dtype == DType::kInt64 ||
               spec.dtype == DType::kString,
           "feature '", spec.name, "': dtype must be float32, int64 or string, not ",
           dtype_name(spec.dtype));
  if (spec.default_value) {
    const Tensor& d = *spec.default_value;
    TS_CHECK(d.dtype() == spec.dtype, "feature '", spec.name, "': default has dtype ",
             dtype_name(d.dtype()), ", the spec ", dtype_name(spec.dtype));
    TS_CHECK(d.num_elements() == 1 || d.num_elements() == num_elements(spec.shape),
             "feature '", spec.name, "': default has ", d.num_elements(), " values, shape ",
             shape_str(spec.shape), " needs ", num_elements(spec.shape));
  }
}

}  // namespace

FeatureSpec parse_feature_spec(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (int i = 0; i < 3; ++i) {  // the default (4th part) may itself contain ':'
    size_t colon = text.find(':', start);
    if (colon == std::string::npos) break;
    parts.push_back(text.substr(start, colon - start));
    start = colon + 1;
  }
  parts.push_back(text.substr(start));
  TS_CHECK(parts.size() >= 3 && !parts[0].empty(), "feature spec '", text,
           "': expected name:dtype:shape[:default]");
  FeatureSpec spec;
  spec.name = parts[0];
  spec.dtype = dtype_from_name(parts[1]);
  if (parts[2] == "var") {
    spec.kind = FeatureSpec::Kind::kVarLen;
  } else if (!parts[2].empty()) {
    size_t p = 0;
    while (p <= parts[2].size()) {
      size_t x = parts[2].find('x', p);
      if (x == std::string::npos) x = parts[2].size();
      const std::string dim = parts[2].substr(p, x - p);
      char* end = nullptr;
      long long v = std::strtoll(dim.c_str(), &end, 10);
      TS_CHECK(!dim.empty() && *end == '\0' && v >= 0, "feature spec '", text, "': bad dimension '",
               dim, "'");
      spec.shape.push_back(v);
      p = x + 1;
    }
  }
  if (parts.size() == 4) {
    const std::string& d = parts[3];
    if (spec.dtype == DType::kString) {
      spec.default_value = Tensor::string_scalar(d);
    } else {
      char* end = nullptr;
      if (spec.dtype == DType::kFloat32) {
        float v = std::strtof(d.c_str(), &end);
        spec.default_value = Tensor::scalar<float>(v);
      } else {
        long long v = std::strtoll(d.c_str(), &end, 10);
        spec.default_value = Tensor::scalar<int64_t>(v);
      }
      TS_CHECK(!d.empty() && *end == '\0', "feature spec '", text, "': bad default '", d, "'");
    }
  }
  check_spec(spec);
  return spec;
}

std::vector<Tensor> parse_examples(const std::vector<std::string_view>& serialized,
                                   const std::vector<FeatureSpec>& specs) {
  for (const auto& s : specs) check_spec(s);
  const int64_t batch = static_cast<int64_t>(serialized.size());
  std::vector<tensorflow::Example> examples(serialized.size());
  for (size_t i = 0; i < serialized.size(); ++i) {
    if (serialized[i].size() > INT32_MAX ||
        !examples[i].ParseFromArray(serialized[i].data(), static_cast<int>(serialized[i].size())))
      fail_code(ErrorCode::kDataLoss, "example ", i, ": not a valid serialized tf.train.Example");
  }
  std::vector<Tensor> out;
  out.reserve(specs.size());
  for (const auto& spec : specs) {
    const auto find = [&](size_t i) -> const tensorflow::Feature* {
      const auto& map = examples[i].features().feature();
      auto it = map.find(spec.name);
      if (it == map.end()) return nullptr;
      if (feature_size(it->second, spec.dtype) < 0)
        fail("example ", i, ": feature '", spec.name, "' holds a ", kind_name(it->second),
             " but the spec asks for ", dtype_name(spec.dtype));
      return &it->second;
    };
    if (spec.kind == FeatureSpec::Kind::kFixedLen) {
      const int64_t per = num_elements(spec.shape);
      Shape shape{batch};
      shape.insert(shape.end(), spec.shape.begin(), spec.shape.end());
      Tensor t(spec.dtype, shape);
      for (size_t i = 0; i < examples.size(); ++i) {
        const auto* f = find(i);
        const int64_t at = static_cast<int64_t>(i) * per;
        const int64_t n = f ? feature_size(*f, spec.dtype) : 0;
        if (!f || (n == 0 && per > 0 && spec.default_value)) {
          if (!spec.default_value)
            fail("example ", i, ": required feature '", spec.name, "' is missing (no default)");
          fill_from(*spec.default_value, t, at, per);
          continue;
        }
        if (n != per)
          fail("example ", i, ": feature '", spec.name, "' has ", n, " values, shape ",
               shape_str(spec.shape), " needs ", per);
        copy_values(*f, t, at, n);
      }
      out.push_back(std::move(t));
      continue;
    }
    // VarLen: dense [batch, max_len], padded.
    int64_t max_len = 0, first_len = -1;
    for (size_t i = 0; i < examples.size(); ++i) {
      const auto* f = find(i);
      const int64_t n = f ? feature_size(*f, spec.dtype) : 0;
      if (!spec.pad_varlen && first_len >= 0 && n != first_len)
        fail("feature '", spec.name, "': example ", i, " has ", n, " values, example 0 has ",
             first_len, " (variable lengths need padding)");
      if (first_len < 0) first_len = n;
      max_len = std::max(max_len, n);
    }
    Tensor t(spec.dtype, {batch, max_len});
    Tensor pad = spec.default_value ? *spec.default_value
                 : spec.dtype == DType::kFloat32 ? Tensor::scalar<float>(0.0f)
                 : spec.dtype == DType::kInt64   ? Tensor::scalar<int64_t>(0)
                                                 : Tensor::string_scalar("");
    for (size_t i = 0; i < examples.size(); ++i) {
      const auto* f = find(i);
      const int64_t n = f ? feature_size(*f, spec.dtype) : 0;
      const int64_t at = static_cast<int64_t>(i) * max_len;
      if (f) copy_values(*f, t, at, n);
      fill_from(pad, t, at + n, max_len - n);
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::string make_example(const std::vector<std::pair<std::string, Tensor>>& features) {
  tensorflow::Example ex;
  auto* map = ex.mutable_features()->mutable_feature();
  for (const auto& [name, t] : features) {
    tensorflow::Feature& f = (*map)[name];
    switch (t.dtype()) {
      case DType::kFloat32:
        for (int64_t i = 0; i < t.num_elements(); ++i) f.mutable_float_list()->add_value(t.data<float>()[i]);
        break;
      case DType::kInt64:
        for (int64_t i = 0; i < t.num_elements(); ++i) f.mutable_int64_list()->add_value(t.data<int64_t>()[i]);
        break;
      case DType::kString:
        for (const auto& s : t.strings()) f.mutable_bytes_list()->add_value(s);
        break;
      default:
        fail("make_example: feature '", name, "' has dtype ", dtype_name(t.dtype()),
             " (Examples hold float32, int64 or string)");
    }
  }
  return ex.SerializeAsString();
}

}  // namespace tessera::train
