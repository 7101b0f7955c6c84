#include "serve/json_codec.h"

#include <google/protobuf/util/json_util.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <vector>

#include "serve/json_predict_fast.h"
#include "support/error.h"
#include "tensorflow/core/example/example.pb.h"

namespace tessera::serve {

namespace tf = ::tensorflow;
using rapidjson::Value;

namespace {

ServeStatus invalid(std::string message) { return {tf::error::INVALID_ARGUMENT, std::move(message)}; }

// Runs `body`, turning a tessera::Error (the codec's own errors) into INVALID_ARGUMENT.
template <typename F>
ServeStatus guarded(F&& body) {
  try {
    return body();
  } catch (const Error& e) {
    return invalid(e.what());
  }
}

rapidjson::Document parse_body(std::string_view body) {
  rapidjson::Document doc;
  // Insitu parsing would need a mutable copy; the body string is const here.
  doc.Parse<rapidjson::kParseNanAndInfFlag>(body.data(), body.size());
  if (doc.HasParseError())
    fail("JSON Parse error: ", rapidjson::GetParseError_En(doc.GetParseError()), " at offset: ",
         doc.GetErrorOffset());
  TS_CHECK(doc.IsObject(), "JSON Value: request body is not an object");
  return doc;
}

std::string get_signature_name(const Value& doc) {
  auto it = doc.FindMember("signature_name");
  if (it == doc.MemberEnd()) return "";
  TS_CHECK(it->value.IsString(), "'signature_name' key must be a string");
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

// {"b64": "..."}: binary data in a string tensor.
bool is_b64_object(const Value& v) {
  return v.IsObject() && v.MemberCount() == 1 && v.HasMember("b64");
}

std::string decode_b64(const Value& v, const std::string& what) {
  const Value& s = v["b64"];
  TS_CHECK(s.IsString(), what, ": 'b64' value must be a string");
  std::string out;
  TS_CHECK(base64_decode(std::string_view(s.GetString(), s.GetStringLength()), &out), what,
           ": 'b64' value is not valid base64");
  return out;
}

std::string value_text(const Value& v) {
  if (v.IsNumber()) return str_cat(v.GetDouble());
  if (v.IsBool()) return v.GetBool() ? "true" : "false";
  if (v.IsString()) return str_cat('"', std::string(v.GetString(), std::min<size_t>(v.GetStringLength(), 64)), '"');
  if (v.IsNull()) return "null";
  if (v.IsArray()) return "[...]";
  return "{...}";
}

// Accumulates one input tensor from JSON values: the shape comes from the first value, every
// further value (a row of a row-format request) must have the same shape.
class TensorBuilder {
 public:
  TensorBuilder(tf::DataType dtype, std::string what) : dtype_(dtype), what_(std::move(what)) {
    switch (dtype) {
      case tf::DT_FLOAT: case tf::DT_DOUBLE: case tf::DT_INT8: case tf::DT_UINT8: case tf::DT_INT16:
      case tf::DT_UINT16: case tf::DT_INT32: case tf::DT_UINT32: case tf::DT_INT64: case tf::DT_UINT64:
      case tf::DT_BOOL: case tf::DT_STRING:
        break;
      default:
        fail(what_, ": tensor of type ", tf::DataType_Name(dtype), " is not supported in JSON");
    }
  }

  void add(const Value& v) {
    std::vector<int64_t> shape;
    for (const Value* p = &v; p->IsArray(); p = &(*p)[0]) {
      shape.push_back(p->Size());
      if (p->Empty()) break;
    }
    if (rows_ == 0) {
      row_shape_ = shape;
      // One allocation for the whole tensor (ResNet-size bodies hold ~150k numbers per row).
      int64_t n = expected_rows_;
      for (int64_t d : shape) n *= d;
      if (dtype_ != tf::DT_STRING && n > 0 && n < (int64_t{1} << 31)) bytes_.reserve(n * 8);
    } else if (shape != row_shape_) {
      fail(what_, ": expecting tensors of the same shape in every instance (got ", shape_text(shape), " and ",
           shape_text(row_shape_), ")");
    }
    walk(v, 0);
    ++rows_;
  }

  // Writes the tensor: `batched` prepends the number of added rows as dim 0.
  int64_t rows() const { return rows_; }
  void expect_rows(int64_t n) { expected_rows_ = n; }

  void finish(tf::TensorProto* out, bool batched) {
    out->Clear();  // a key repeated in the JSON object: the last one wins
    out->set_dtype(dtype_);
    auto* shape = out->mutable_tensor_shape();
    if (batched) shape->add_dim()->set_size(rows_);
    for (int64_t d : row_shape_) shape->add_dim()->set_size(d);
    if (dtype_ == tf::DT_STRING) {
      for (auto& s : strings_) out->add_string_val(std::move(s));
    } else {
      out->set_tensor_content(std::move(bytes_));
    }
  }

 private:
  static std::string shape_text(const std::vector<int64_t>& s) {
    std::string t = "[";
    for (size_t i = 0; i < s.size(); ++i) t += (i ? "," : "") + std::to_string(s[i]);
    return t + "]";
  }

  void walk(const Value& v, size_t depth) {
    if (depth < row_shape_.size()) {
      TS_CHECK(v.IsArray() && static_cast<int64_t>(v.Size()) == row_shape_[depth], what_,
               ": nested lists must be rectangular (a list at depth ", depth, " should have ", row_shape_[depth],
               " elements)");
      for (const Value& e : v.GetArray()) walk(e, depth + 1);
      return;
    }
    TS_CHECK(!v.IsArray(), what_, ": nested lists must be rectangular");
    leaf(v);
  }

  template <typename T>
  void put(T x) {
    bytes_.append(reinterpret_cast<const char*>(&x), sizeof(T));
  }

  template <typename T>
  void put_int(const Value& v) {
    bool ok = false;
    if (v.IsInt64()) {
      int64_t x = v.GetInt64();
      ok = x >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
           (x < 0 || static_cast<uint64_t>(x) <= static_cast<uint64_t>(std::numeric_limits<T>::max()));
      if (ok) put<T>(static_cast<T>(x));
    } else if (v.IsUint64()) {
      uint64_t x = v.GetUint64();
      ok = x <= static_cast<uint64_t>(std::numeric_limits<T>::max());
      if (ok) put<T>(static_cast<T>(x));
    }
    if (!ok) fail(what_, ": JSON Value: ", value_text(v), " not ", tf::DataType_Name(dtype_));
  }

  void leaf(const Value& v) {
    switch (dtype_) {
      case tf::DT_FLOAT:
      case tf::DT_DOUBLE: {
        // Large integers lose precision in a float input, as TF Serving documents.
        TS_CHECK(v.IsNumber(), what_, ": JSON Value: ", value_text(v), " not ", tf::DataType_Name(dtype_));
        double x = v.GetDouble();
        if (dtype_ == tf::DT_FLOAT) put<float>(static_cast<float>(x));
        else put<double>(x);
        return;
      }
      case tf::DT_INT8: return put_int<int8_t>(v);
      case tf::DT_UINT8: return put_int<uint8_t>(v);
      case tf::DT_INT16: return put_int<int16_t>(v);
      case tf::DT_UINT16: return put_int<uint16_t>(v);
      case tf::DT_INT32: return put_int<int32_t>(v);
      case tf::DT_UINT32: return put_int<uint32_t>(v);
      case tf::DT_INT64: return put_int<int64_t>(v);
      case tf::DT_UINT64: return put_int<uint64_t>(v);
      case tf::DT_BOOL:
        TS_CHECK(v.IsBool(), what_, ": JSON Value: ", value_text(v), " not DT_BOOL");
        put<uint8_t>(v.GetBool() ? 1 : 0);
        return;
      case tf::DT_STRING:
        if (v.IsString()) strings_.emplace_back(v.GetString(), v.GetStringLength());
        else if (is_b64_object(v)) strings_.push_back(decode_b64(v, what_));
        else fail(what_, ": JSON Value: ", value_text(v), " not a string or {\"b64\": ...}");
        return;
      default:
        fail(what_, ": unsupported dtype");
    }
  }

  tf::DataType dtype_;
  std::string what_;
  std::vector<int64_t> row_shape_;
  int64_t rows_ = 0, expected_rows_ = 1;
  std::string bytes_;
  std::vector<std::string> strings_;
};

const tf::TensorInfo& input_info(const tf::SignatureDef& sig, const std::string& name) {
  auto it = sig.inputs().find(name);
  if (it == sig.inputs().end()) {
    std::vector<std::string> names;  // sorted: a proto map's order differs between copies
    for (const auto& [k, v] : sig.inputs()) names.push_back(k);
    std::sort(names.begin(), names.end());
    std::string known;
    for (const std::string& k : names) known += (known.empty() ? "" : ", ") + k;
    fail("input '", name, "' is not an input of the signature (inputs: ", known, ")");
  }
  return it->second;
}

// A value that is an object of input names (and not a {"b64": ...} string).
bool is_named_object(const Value& v) { return v.IsObject() && !is_b64_object(v); }

void fill_row_format(const Value& instances, const tf::SignatureDef& sig, tfs::PredictRequest* request) {
  TS_CHECK(instances.IsArray(), "'instances' must be a list");
  TS_CHECK(!instances.Empty(), "'instances' is an empty list");
  std::map<std::string, TensorBuilder> builders;
  if (is_named_object(instances[0])) {
    for (const auto& m : instances[0].GetObject()) {
      std::string name(m.name.GetString(), m.name.GetStringLength());
      builders.emplace(name, TensorBuilder(input_info(sig, name).dtype(), "input '" + name + "'"))
          .first->second.expect_rows(instances.Size());
    }
    for (const Value& inst : instances.GetArray()) {
      TS_CHECK(is_named_object(inst) && inst.MemberCount() == builders.size(), "expecting object with ",
               builders.size(), " keys in every instance (the keys of the first)");
      for (const auto& m : inst.GetObject()) {
        auto it = builders.find(std::string(m.name.GetString(), m.name.GetStringLength()));
        TS_CHECK(it != builders.end(), "instance has key '", m.name.GetString(), "' that the first one lacks");
        it->second.add(m.value);
      }
    }
  } else {
    TS_CHECK(sig.inputs_size() == 1, "the signature has ", sig.inputs_size(),
             " inputs; each instance must be an object naming them");
    const auto& [name, info] = *sig.inputs().begin();
    auto& b = builders.emplace(name, TensorBuilder(info.dtype(), "input '" + name + "'")).first->second;
    b.expect_rows(instances.Size());
    for (const Value& inst : instances.GetArray()) {
      TS_CHECK(!is_named_object(inst), "instances mix named objects and plain values");
      b.add(inst);
    }
  }
  for (auto& [name, b] : builders) {
    TS_CHECK(b.rows() == static_cast<int64_t>(instances.Size()), "input '", name, "' is missing from some instances");
    b.finish(&(*request->mutable_inputs())[name], /*batched=*/true);
  }
}

void fill_columnar_format(const Value& inputs, const tf::SignatureDef& sig, tfs::PredictRequest* request) {
  if (is_named_object(inputs)) {
    for (const auto& m : inputs.GetObject()) {
      std::string name(m.name.GetString(), m.name.GetStringLength());
      TensorBuilder b(input_info(sig, name).dtype(), "input '" + name + "'");
      b.add(m.value);
      b.finish(&(*request->mutable_inputs())[name], /*batched=*/false);
    }
    return;
  }
  TS_CHECK(sig.inputs_size() == 1, "the signature has ", sig.inputs_size(),
           " inputs; 'inputs' must be an object naming them");
  const auto& [name, info] = *sig.inputs().begin();
  TensorBuilder b(info.dtype(), "input '" + name + "'");
  b.add(inputs);
  b.finish(&(*request->mutable_inputs())[name], /*batched=*/false);
}

// ---- output side ----

void append_escaped(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

// Shortest text that reads back to the same value (float or double), with TF Serving's
// NaN/Infinity tokens; integral values keep a ".0" so they read as floats.
template <typename T>
void append_real(std::string& out, T x) {
  if (std::isnan(x)) { out += "NaN"; return; }
  if (std::isinf(x)) { out += x > 0 ? "Infinity" : "-Infinity"; return; }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, x);
  std::string_view s(buf, r.ptr - buf);
  out += s;
  if (s.find_first_of(".e") == std::string_view::npos) out += ".0";
}

template <typename T>
void append_int(std::string& out, T x) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, x);
  out.append(buf, r.ptr - buf);
}

// Reads a TensorProto's elements from tensor_content or its typed field (a shorter typed list
// repeats its last value, TF's rule for splat constants).
class TensorReader {
 public:
  TensorReader(const tf::TensorProto& t, const std::string& name) : t_(t), name_(name) {
    TS_CHECK(!t.tensor_shape().unknown_rank(), "output '", name, "' has no shape");
    for (const auto& d : t.tensor_shape().dim()) {
      TS_CHECK(d.size() >= 0, "output '", name, "' has an unknown dimension");
      dims_.push_back(d.size());
    }
    n_ = 1;
    for (int64_t d : dims_) n_ *= d;
    b64_ = name.size() >= 6 && name.compare(name.size() - 6, 6, "_bytes") == 0;
    size_t width = elem_size();
    TS_CHECK(width != 0 || t.dtype() == tf::DT_STRING, "output '", name, "': tensor of type ",
             tf::DataType_Name(t.dtype()), " is not supported in JSON");
    if (!t.tensor_content().empty()) {
      TS_CHECK(t.dtype() != tf::DT_STRING && t.tensor_content().size() == width * static_cast<size_t>(n_),
               "output '", name, "': tensor_content has the wrong size");
    }
    if (t.dtype() == tf::DT_STRING)
      TS_CHECK(t.string_val_size() == n_ || (t.string_val_size() > 0 && t.string_val_size() < n_) || n_ == 0,
               "output '", name, "': string tensor has ", t.string_val_size(), " values for ", n_, " elements");
  }

  const std::vector<int64_t>& dims() const { return dims_; }

  // Writes the sub-tensor of dims[k..] starting at flat element `offset`.
  void write(std::string& out, size_t k, int64_t offset) const {
    if (k == dims_.size()) return write_elem(out, offset);
    int64_t stride = 1;
    for (size_t j = k + 1; j < dims_.size(); ++j) stride *= dims_[j];
    out.push_back('[');
    for (int64_t i = 0; i < dims_[k]; ++i) {
      if (i) out.push_back(',');
      write(out, k + 1, offset + i * stride);
    }
    out.push_back(']');
  }

 private:
  size_t elem_size() const {
    switch (t_.dtype()) {
      case tf::DT_FLOAT: case tf::DT_INT32: case tf::DT_UINT32: return 4;
      case tf::DT_DOUBLE: case tf::DT_INT64: case tf::DT_UINT64: return 8;
      case tf::DT_INT16: case tf::DT_UINT16: case tf::DT_HALF: case tf::DT_BFLOAT16: return 2;
      case tf::DT_INT8: case tf::DT_UINT8: case tf::DT_BOOL: return 1;
      default: return 0;
    }
  }

  template <typename T>
  T raw(int64_t i) const {
    T x;
    std::memcpy(&x, t_.tensor_content().data() + i * sizeof(T), sizeof(T));
    return x;
  }

  // By value: Get() returns a reference, and an empty list yields a temporary zero.
  template <typename R>
  static auto pick(const R& list, int64_t i) -> std::decay_t<decltype(list.Get(0))> {
    using E = std::decay_t<decltype(list.Get(0))>;
    if (list.size() == 0) return E{};
    return list.Get(static_cast<int>(std::min<int64_t>(i, list.size() - 1)));
  }

  static float half_to_float(uint16_t h) {
    uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
      if (man == 0) {
        bits = sign;
      } else {  // subnormal: normalise
        exp = 127 - 15 + 1;
        while (!(man & 0x400)) { man <<= 1; --exp; }
        bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
      }
    } else if (exp == 31) {
      bits = sign | 0x7f800000u | (man << 13);
    } else {
      bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }

  void write_elem(std::string& out, int64_t i) const {
    bool c = !t_.tensor_content().empty();
    switch (t_.dtype()) {
      case tf::DT_FLOAT: return append_real(out, c ? raw<float>(i) : pick(t_.float_val(), i));
      case tf::DT_DOUBLE: return append_real(out, c ? raw<double>(i) : pick(t_.double_val(), i));
      case tf::DT_HALF: case tf::DT_BFLOAT16: {
        uint16_t h = c ? raw<uint16_t>(i) : static_cast<uint16_t>(pick(t_.half_val(), i));
        float f;
        if (t_.dtype() == tf::DT_HALF) {
          f = half_to_float(h);
        } else {
          uint32_t bits = static_cast<uint32_t>(h) << 16;
          std::memcpy(&f, &bits, 4);
        }
        return append_real(out, f);
      }
      case tf::DT_INT8: return append_int(out, c ? raw<int8_t>(i) : static_cast<int8_t>(pick(t_.int_val(), i)));
      case tf::DT_UINT8: return append_int(out, c ? raw<uint8_t>(i) : static_cast<uint8_t>(pick(t_.int_val(), i)));
      case tf::DT_INT16: return append_int(out, c ? raw<int16_t>(i) : static_cast<int16_t>(pick(t_.int_val(), i)));
      case tf::DT_UINT16:
        return append_int(out, c ? raw<uint16_t>(i) : static_cast<uint16_t>(pick(t_.int_val(), i)));
      case tf::DT_INT32: return append_int(out, c ? raw<int32_t>(i) : pick(t_.int_val(), i));
      case tf::DT_UINT32: return append_int(out, c ? raw<uint32_t>(i) : pick(t_.uint32_val(), i));
      case tf::DT_INT64: return append_int(out, c ? raw<int64_t>(i) : pick(t_.int64_val(), i));
      case tf::DT_UINT64: return append_int(out, c ? raw<uint64_t>(i) : pick(t_.uint64_val(), i));
      case tf::DT_BOOL: out += (c ? raw<uint8_t>(i) != 0 : pick(t_.bool_val(), i)) ? "true" : "false"; return;
      case tf::DT_STRING: {
        const std::string& s = t_.string_val(static_cast<int>(std::min<int64_t>(i, t_.string_val_size() - 1)));
        if (!b64_) return append_escaped(out, s);
        out += "{\"b64\":";
        append_escaped(out, base64_encode(s));
        out.push_back('}');
        return;
      }
      default:
        fail("output '", name_, "': unsupported dtype");
    }
  }

  const tf::TensorProto& t_;
  std::string name_;
  std::vector<int64_t> dims_;
  int64_t n_ = 0;
  bool b64_ = false;
};

std::vector<std::pair<std::string, const tf::TensorProto*>> sorted_outputs(const tfs::PredictResponse& r) {
  std::vector<std::pair<std::string, const tf::TensorProto*>> v;
  for (const auto& [k, t] : r.outputs()) v.emplace_back(k, &t);
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return v;
}

void write_row_format(const tfs::PredictResponse& response, std::string& out) {
  auto outs = sorted_outputs(response);
  std::vector<TensorReader> readers;
  int64_t batch = -1;
  for (const auto& [name, t] : outs) {
    readers.emplace_back(*t, name);
    const auto& dims = readers.back().dims();
    TS_CHECK(!dims.empty(), "Tensor name: ", name, " has no shape information (a scalar cannot be split into rows)");
    if (batch < 0) batch = dims[0];
    TS_CHECK(dims[0] == batch, "Tensor name: ", name, " has inconsistent batch size: ", dims[0],
             " expecting: ", batch);
  }
  out += "{\"predictions\":[";
  for (int64_t r = 0; r < std::max<int64_t>(batch, 0); ++r) {
    if (r) out.push_back(',');
    if (readers.size() == 1) {
      const auto& d = readers[0].dims();
      int64_t stride = 1;
      for (size_t j = 1; j < d.size(); ++j) stride *= d[j];
      readers[0].write(out, 1, r * stride);
      continue;
    }
    out.push_back('{');
    for (size_t k = 0; k < readers.size(); ++k) {
      if (k) out.push_back(',');
      append_escaped(out, outs[k].first);
      out.push_back(':');
      const auto& d = readers[k].dims();
      int64_t stride = 1;
      for (size_t j = 1; j < d.size(); ++j) stride *= d[j];
      readers[k].write(out, 1, r * stride);
    }
    out.push_back('}');
  }
  out += "]}";
}

void write_columnar_format(const tfs::PredictResponse& response, std::string& out) {
  auto outs = sorted_outputs(response);
  out += "{\"outputs\":";
  if (outs.size() == 1) {
    TensorReader(*outs[0].second, outs[0].first).write(out, 0, 0);
  } else {
    out.push_back('{');
    for (size_t k = 0; k < outs.size(); ++k) {
      if (k) out.push_back(',');
      append_escaped(out, outs[k].first);
      out.push_back(':');
      TensorReader(*outs[k].second, outs[k].first).write(out, 0, 0);
    }
    out.push_back('}');
  }
  out.push_back('}');
}

// ---- classify / regress ----

void fill_feature(const Value& v, const std::string& what, tf::Feature* f) {
  // A scalar is a list of one; lists must hold one kind of value.
  std::vector<const Value*> items;
  if (v.IsArray()) {
    for (const Value& e : v.GetArray()) items.push_back(&e);
  } else {
    items.push_back(&v);
  }
  bool any_double = false, any_int = false, any_bytes = false;
  for (const Value* e : items) {
    if (e->IsString() || is_b64_object(*e)) any_bytes = true;
    else if (e->IsInt64() || e->IsUint64()) any_int = true;
    else if (e->IsNumber()) any_double = true;
    else fail(what, ": JSON Value: ", value_text(*e), " is not a number, string or {\"b64\": ...}");
  }
  TS_CHECK(!(any_bytes && (any_int || any_double)), what, ": a feature list mixes strings and numbers");
  if (any_bytes) {
    auto* l = f->mutable_bytes_list();
    for (const Value* e : items)
      l->add_value(e->IsString() ? std::string(e->GetString(), e->GetStringLength()) : decode_b64(*e, what));
  } else if (any_double) {
    auto* l = f->mutable_float_list();
    for (const Value* e : items) l->add_value(static_cast<float>(e->GetDouble()));
  } else {
    auto* l = f->mutable_int64_list();
    for (const Value* e : items) {
      TS_CHECK(e->IsInt64(), what, ": integer ", value_text(*e), " does not fit int64");
      l->add_value(e->GetInt64());
    }
  }
  if (items.empty()) f->mutable_float_list();  // an empty list: TF Serving's choice of kind
}

void fill_example(const Value& obj, const std::string& what, tf::Example* ex) {
  TS_CHECK(obj.IsObject(), what, " must be an object of features");
  auto* features = ex->mutable_features()->mutable_feature();
  for (const auto& m : obj.GetObject()) {
    std::string name(m.name.GetString(), m.name.GetStringLength());
    fill_feature(m.value, what + " feature '" + name + "'", &(*features)[name]);
  }
}

// Shared by classify and regress: signature_name, context, examples -> ModelSpec + Input.
void fill_input(std::string_view body, tfs::ModelSpec* spec, tfs::Input* input) {
  rapidjson::Document doc = parse_body(body);
  spec->set_signature_name(get_signature_name(doc));
  auto ex_it = doc.FindMember("examples");
  TS_CHECK(ex_it != doc.MemberEnd(), "Missing 'examples' key");
  TS_CHECK(ex_it->value.IsArray(), "'examples' must be a list");
  auto ctx_it = doc.FindMember("context");
  google::protobuf::RepeatedPtrField<tf::Example>* examples;
  if (ctx_it != doc.MemberEnd()) {
    auto* l = input->mutable_example_list_with_context();
    fill_example(ctx_it->value, "context", l->mutable_context());
    examples = l->mutable_examples();
  } else {
    examples = input->mutable_example_list()->mutable_examples();
  }
  int i = 0;
  for (const Value& e : ex_it->value.GetArray()) {
    tf::Example* ex = examples->Add();
    fill_example(e, str_cat("example ", i), ex);
    if (ctx_it != doc.MemberEnd()) {
      for (const auto& m : e.GetObject())
        TS_CHECK(!ctx_it->value.HasMember(m.name), "feature '", m.name.GetString(),
                 "' appears in both the context and example ", i);
    }
    ++i;
  }
}

std::string proto_json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  opts.preserve_proto_field_names = true;
  std::string out;
  auto st = google::protobuf::util::MessageToJsonString(m, &out, opts);
  if (!st.ok()) return error_json(str_cat("cannot print ", m.GetTypeName(), " as JSON: ", st.ToString()));
  return out;
}

}  // namespace

int http_status_for(tf::error::Code code) {
  switch (code) {
    case tf::error::OK: return 200;
    case tf::error::CANCELLED: return 499;
    case tf::error::UNKNOWN: case tf::error::INTERNAL: case tf::error::DATA_LOSS: return 500;
    case tf::error::INVALID_ARGUMENT: case tf::error::FAILED_PRECONDITION: case tf::error::OUT_OF_RANGE: return 400;
    case tf::error::DEADLINE_EXCEEDED: return 504;
    case tf::error::NOT_FOUND: return 404;
    case tf::error::ALREADY_EXISTS: case tf::error::ABORTED: return 409;
    case tf::error::PERMISSION_DENIED: return 403;
    case tf::error::RESOURCE_EXHAUSTED: return 429;
    case tf::error::UNIMPLEMENTED: return 501;
    case tf::error::UNAVAILABLE: return 503;
    case tf::error::UNAUTHENTICATED: return 401;
    default: return 500;
  }
}

std::string error_json(std::string_view message) {
  std::string out = "{\"error\":";
  append_escaped(out, message);
  out.push_back('}');
  return out;
}

ServeStatus predict_request_from_json(std::string_view body, const SignatureLookup& lookup,
                                      tfs::PredictRequest* request, PredictFormat* format) {
  std::optional<std::pair<std::string, tf::SignatureDef>> looked_up;
  ServeStatus st;
  switch (predict_fast(body, lookup, request, format, &st, &looked_up)) {
    case FastResult::kDone: return {};
    case FastResult::kLookupFailed: return st;
    case FastResult::kGiveUp: break;
  }
  if (!looked_up) return predict_request_from_json_general(body, lookup, request, format);
  // The general path asks for the same signature: answer from the fast path's lookup.
  return predict_request_from_json_general(
      body,
      [&](const std::string& name, tf::SignatureDef* sig) {
        if (name == looked_up->first) {
          *sig = looked_up->second;
          return ServeStatus{};
        }
        return lookup(name, sig);
      },
      request, format);
}

bool predict_json_takes_fast_path(std::string_view body, const SignatureLookup& lookup) {
  tfs::PredictRequest request;
  PredictFormat format;
  ServeStatus status;
  std::optional<std::pair<std::string, tf::SignatureDef>> looked_up;
  return predict_fast(body, lookup, &request, &format, &status, &looked_up) == FastResult::kDone;
}

ServeStatus predict_request_from_json_general(std::string_view body, const SignatureLookup& lookup,
                                              tfs::PredictRequest* request, PredictFormat* format) {
  rapidjson::Document doc;
  std::string sig_name;
  ServeStatus st = guarded([&] {
    doc = parse_body(body);
    sig_name = get_signature_name(doc);
    return ServeStatus{};
  });
  if (!st.ok()) return st;
  bool has_instances = doc.HasMember("instances"), has_inputs = doc.HasMember("inputs");
  if (has_instances && has_inputs) return invalid("Not formatted correctly expecting only one of 'inputs' or 'instances' keys");
  if (!has_instances && !has_inputs) return invalid("Missing 'inputs' or 'instances' key");
  tf::SignatureDef sig;
  st = lookup(sig_name, &sig);
  if (!st.ok()) return st;
  request->mutable_model_spec()->set_signature_name(sig_name);
  *format = has_instances ? PredictFormat::kRow : PredictFormat::kColumnar;
  return guarded([&] {
    if (has_instances) fill_row_format(doc["instances"], sig, request);
    else fill_columnar_format(doc["inputs"], sig, request);
    return ServeStatus{};
  });
}

ServeStatus predict_response_to_json(const tfs::PredictResponse& response, PredictFormat format, std::string* json) {
  json->clear();
  return guarded([&] {
    if (format == PredictFormat::kRow) write_row_format(response, *json);
    else write_columnar_format(response, *json);
    return ServeStatus{};
  });
}

ServeStatus classification_request_from_json(std::string_view body, tfs::ClassificationRequest* request) {
  return guarded([&] {
    fill_input(body, request->mutable_model_spec(), request->mutable_input());
    return ServeStatus{};
  });
}

ServeStatus regression_request_from_json(std::string_view body, tfs::RegressionRequest* request) {
  return guarded([&] {
    fill_input(body, request->mutable_model_spec(), request->mutable_input());
    return ServeStatus{};
  });
}

std::string classification_response_to_json(const tfs::ClassificationResponse& response) {
  std::string out = "{\"results\":[";
  const auto& cls = response.result().classifications();
  for (int i = 0; i < cls.size(); ++i) {
    if (i) out.push_back(',');
    out.push_back('[');
    for (int j = 0; j < cls[i].classes_size(); ++j) {
      if (j) out.push_back(',');
      out.push_back('[');
      append_escaped(out, cls[i].classes(j).label());
      out.push_back(',');
      append_real(out, cls[i].classes(j).score());
      out.push_back(']');
    }
    out.push_back(']');
  }
  return out + "]}";
}

std::string regression_response_to_json(const tfs::RegressionResponse& response) {
  std::string out = "{\"results\":[";
  const auto& regs = response.result().regressions();
  for (int i = 0; i < regs.size(); ++i) {
    if (i) out.push_back(',');
    append_real(out, regs[i].value());
  }
  return out + "]}";
}

std::string model_status_to_json(const tfs::GetModelStatusResponse& response) { return proto_json(response); }

std::string model_metadata_to_json(const tfs::GetModelMetadataResponse& response) {
  std::string out = "{\"model_spec\":" + proto_json(response.model_spec()) + ",\"metadata\":{";
  std::vector<std::string> keys;
  for (const auto& [k, v] : response.metadata()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i) out.push_back(',');
    append_escaped(out, keys[i]);
    out.push_back(':');
    const auto& any = response.metadata().at(keys[i]);
    tfs::SignatureDefMap sigs;
    if (any.Is<tfs::SignatureDefMap>() && any.UnpackTo(&sigs)) out += proto_json(sigs);
    else out += proto_json(any);
  }
  return out + "}}";
}

std::string base64_encode(std::string_view bytes) {
  static const char* chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += {chars[v >> 18], chars[(v >> 12) & 63], chars[(v >> 6) & 63], chars[v & 63]};
  }
  if (i + 1 == bytes.size()) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    out += {chars[v >> 18], chars[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += {chars[v >> 18], chars[(v >> 12) & 63], chars[(v >> 6) & 63], '='};
  }
  return out;
}

bool base64_decode(std::string_view text, std::string* bytes) {
  bytes->clear();
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else if (c == '=') { ++pad; continue; }
    else return false;
    if (pad) return false;  // data after padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be padding zeros, and a lone 6-bit group is never valid.
  if (bits >= 6 || pad > 2) return false;
  return true;
}

}  // namespace tessera::serve
