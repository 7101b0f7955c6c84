// tf.train.Example parsing: ParseExample, ParseExampleV2 and ParseSingleExample (TF Serving's
// classify/regress signatures and tf.io.parse_example feature specs). Dense (FixedLen and
// variable-length FixedLenSequence), sparse (VarLen) and ragged features; float32, int64 and
// string values as Example's FloatList/Int64List/BytesList hold them.
#include <algorithm>

#include "ops/op_helpers.h"
#include "tensorflow/core/example/example.pb.h"

namespace tessera {
namespace {

// What to extract, from attrs and key/default inputs.
struct ParseSpec {
  std::vector<std::string> sparse_keys;
  std::vector<DType> sparse_types;
  std::vector<std::string> dense_keys;
  std::vector<DType> dense_types;
  std::vector<PartialShape> dense_shapes;
  std::vector<Tensor> dense_defaults;
  std::vector<std::string> ragged_keys;
  std::vector<DType> ragged_value_types;
  std::vector<DType> ragged_split_types;
};

// The dtype an Example feature's value list holds; kInvalid for an empty Feature (no kind),
// which TF treats as missing.
DType feature_dtype(const tensorflow::Feature& f) {
  switch (f.kind_case()) {
    case tensorflow::Feature::kFloatList: return DType::kFloat32;
    case tensorflow::Feature::kInt64List: return DType::kInt64;
    case tensorflow::Feature::kBytesList: return DType::kString;
    default: return DType::kInvalid;
  }
}

int64_t feature_size(const tensorflow::Feature& f) {
  switch (f.kind_case()) {
    case tensorflow::Feature::kFloatList: return f.float_list().value_size();
    case tensorflow::Feature::kInt64List: return f.int64_list().value_size();
    case tensorflow::Feature::kBytesList: return f.bytes_list().value_size();
    default: return 0;
  }
}

// Copies a feature's values into out[offset, offset + size); the dtypes were checked.
void copy_feature(const tensorflow::Feature& f, Tensor& out, int64_t offset) {
  switch (f.kind_case()) {
    case tensorflow::Feature::kFloatList:
      std::copy(f.float_list().value().begin(), f.float_list().value().end(), out.data<float>() + offset);
      break;
    case tensorflow::Feature::kInt64List:
      std::copy(f.int64_list().value().begin(), f.int64_list().value().end(), out.data<int64_t>() + offset);
      break;
    case tensorflow::Feature::kBytesList:
      std::copy(f.bytes_list().value().begin(), f.bytes_list().value().end(), out.strings().begin() + offset);
      break;
    default: break;
  }
}

// Copies `count` values of `src` from src_off to out at offset (float32/int64/string).
void copy_values(const Tensor& src, int64_t src_off, Tensor& out, int64_t offset, int64_t count) {
  if (count <= 0) return;
  if (out.dtype() == DType::kString) {
    std::copy_n(src.strings().begin() + src_off, count, out.strings().begin() + offset);
  } else {
    size_t es = dtype_size(out.dtype());
    std::memcpy(static_cast<char*>(out.mutable_raw()) + offset * es,
                static_cast<const char*>(src.raw()) + src_off * es, static_cast<size_t>(count) * es);
  }
}

void check_value_dtype(DType t, const char* what) {
  if (t != DType::kFloat32 && t != DType::kInt64 && t != DType::kString)
    fail(what, " must be float32, int64 or string, got ", dtype_name(t));
}

// One parse: the examples (already decoded) plus how to name them in errors.
struct Batch {
  std::vector<tensorflow::Example> examples;
  std::vector<std::string> names;  // empty: "<unknown>"
  bool scalar = false;             // a single serialized scalar: outputs have no batch dim

  std::string name(size_t i) const { return names.empty() ? "<unknown>" : names[i]; }
  int64_t size() const { return static_cast<int64_t>(examples.size()); }

  // The example's feature `key` if present with values of some kind, else null.
  const tensorflow::Feature* find(size_t i, const std::string& key) const {
    const auto& map = examples[i].features().feature();
    auto it = map.find(key);
    if (it == map.end() || feature_dtype(it->second) == DType::kInvalid) return nullptr;
    return &it->second;
  }
  Shape batch_shape() const { return scalar ? Shape{} : Shape{size()}; }
};

Batch decode(const Tensor& serialized, const Tensor& names) {
  TS_CHECK(serialized.dtype() == DType::kString, "serialized must be string");
  Batch b;
  b.scalar = serialized.rank() == 0;
  const auto& strs = serialized.strings();
  if (names.valid() && names.num_elements() > 0) {
    if (names.shape() != serialized.shape())
      fail("expected names to have the same shape as serialized: names.shape=", shape_str(names.shape()),
           ", serialized.shape=", shape_str(serialized.shape()));
    b.names = names.strings();
  }
  b.examples.resize(strs.size());
  for (size_t i = 0; i < strs.size(); ++i)
    if (!b.examples[i].ParseFromString(strs[i]))
      fail("could not parse example input ", i, " (name: ", b.name(i), ", ", strs[i].size(),
           " bytes): not a serialized tf.train.Example");
  return b;
}

void check_type(const Batch& b, size_t i, const std::string& key, const tensorflow::Feature& f, DType want) {
  DType got = feature_dtype(f);
  if (got != want)
    fail("Name: ", b.name(i), ", Key: ", key, ", Index: ", i, ". Data types don't match. Data type: ",
         dtype_name(got), " but expected type: ", dtype_name(want));
}

Tensor parse_dense(const Batch& b, const std::string& key, DType dtype, const PartialShape& shape,
                   const Tensor& def) {
  check_value_dtype(dtype, "dense feature type");
  TS_CHECK(def.dtype() == dtype, "dense default for '", key, "' is ", dtype_name(def.dtype()),
           ", Tdense says ", dtype_name(dtype));
  TS_CHECK(shape.known_rank, "dense_shapes for '", key, "' must have a known rank");
  bool var_len = !shape.dims.empty() && shape.dims[0] < 0;
  Shape inner(shape.dims.begin() + (var_len ? 1 : 0), shape.dims.end());
  for (int64_t d : inner)
    TS_CHECK(d >= 0, "dense_shapes for '", key, "' ", shape.str(), " may only have an unknown first dim");
  int64_t stride = num_elements(inner);
  Shape out_shape = b.batch_shape();

  if (!var_len) {
    if (def.num_elements() > 0 && def.shape() != inner)
      fail("default value for '", key, "' has shape ", shape_str(def.shape()),
           ", not compatible with dense shape ", shape.str());
    out_shape.insert(out_shape.end(), inner.begin(), inner.end());
    Tensor out(dtype, out_shape);
    for (size_t i = 0; i < b.examples.size(); ++i) {
      int64_t offset = static_cast<int64_t>(i) * stride;
      const tensorflow::Feature* f = b.find(i, key);
      if (!f) {
        if (def.num_elements() == 0)
          fail("Name: ", b.name(i), ", Feature: ", key, " (data type: ", dtype_name(dtype),
               ") is required but could not be found (example ", i, ")");
        copy_values(def, 0, out, offset, stride);
        continue;
      }
      check_type(b, i, key, *f, dtype);
      if (feature_size(*f) != stride)
        fail("Name: ", b.name(i), ", Key: ", key, ", Index: ", i, ". Number of ", dtype_name(dtype),
             " values != expected. Values size: ", feature_size(*f), " but output shape: ",
             shape_str(inner));
      copy_feature(*f, out, offset);
    }
    return out;
  }

  // Variable-length (FixedLenSequenceFeature): [batch, max strides, inner...] padded with the
  // scalar default.
  if (def.num_elements() != 1)
    fail("dense shape ", shape.str(), " of '", key, "' is variable length, so its default (the padding "
         "value) must have one element, got shape ", shape_str(def.shape()));
  int64_t max_strides = 0;
  for (size_t i = 0; i < b.examples.size(); ++i) {
    const tensorflow::Feature* f = b.find(i, key);
    if (!f) continue;
    check_type(b, i, key, *f, dtype);
    int64_t n = feature_size(*f);
    if (stride == 0 ? n != 0 : n % stride != 0)
      fail("Name: ", b.name(i), ", Key: ", key, ", Index: ", i, ". Number of ", dtype_name(dtype),
           " values is not a multiple of stride length. Saw ", n, " values but output shape is: ",
           shape.str());
    if (stride > 0) max_strides = std::max(max_strides, n / stride);
  }
  out_shape.push_back(max_strides);
  out_shape.insert(out_shape.end(), inner.begin(), inner.end());
  Tensor out(dtype, out_shape);
  int64_t per_example = max_strides * stride;
  for (int64_t k = 0; k < out.num_elements(); ++k) copy_values(def, 0, out, k, 1);
  for (size_t i = 0; i < b.examples.size(); ++i)
    if (const tensorflow::Feature* f = b.find(i, key)) copy_feature(*f, out, static_cast<int64_t>(i) * per_example);
  return out;
}

// Sparse (VarLen) feature: indices [n, rank+1], values [n], dense_shape [rank+1].
void parse_sparse(const Batch& b, const std::string& key, DType dtype, Tensor& indices,
                  Tensor& values, Tensor& dense_shape) {
  check_value_dtype(dtype, "sparse feature type");
  int64_t total = 0, max_len = 0;
  for (size_t i = 0; i < b.examples.size(); ++i) {
    const tensorflow::Feature* f = b.find(i, key);
    if (!f) continue;
    if (feature_dtype(*f) != dtype)
      fail("Name: ", b.name(i), ", Key: ", key, ", Index: ", i, ". Data types don't match. Expected type: ",
           dtype_name(dtype), ", Actual type: ", dtype_name(feature_dtype(*f)));
    total += feature_size(*f);
    max_len = std::max(max_len, feature_size(*f));
  }
  int64_t cols = b.scalar ? 1 : 2;
  indices = Tensor(DType::kInt64, {total, cols});
  values = Tensor(dtype, {total});
  int64_t* idx = indices.data<int64_t>();
  int64_t offset = 0;
  for (size_t i = 0; i < b.examples.size(); ++i) {
    const tensorflow::Feature* f = b.find(i, key);
    if (!f) continue;
    int64_t n = feature_size(*f);
    copy_feature(*f, values, offset);
    for (int64_t j = 0; j < n; ++j, ++offset) {
      if (!b.scalar) *idx++ = static_cast<int64_t>(i);
      *idx++ = j;
    }
  }
  dense_shape = b.scalar ? Tensor::from_vector<int64_t>({max_len}, {1})
                         : Tensor::from_vector<int64_t>({b.size(), max_len});
}

// Ragged feature: flat values and row_splits [batch + 1] (empty for a scalar input).
void parse_ragged(const Batch& b, const std::string& key, DType dtype, DType split_type,
                  Tensor& values, Tensor& splits) {
  check_value_dtype(dtype, "ragged value type");
  TS_CHECK(split_type == DType::kInt32 || split_type == DType::kInt64,
           "ragged split type must be int32 or int64, got ", dtype_name(split_type));
  std::vector<int64_t> bounds{0};
  for (size_t i = 0; i < b.examples.size(); ++i) {
    const tensorflow::Feature* f = b.find(i, key);
    if (f && feature_dtype(*f) != dtype)
      fail("Name: ", b.name(i), ", Key: ", key, ", Index: ", i, ". Data types don't match. Expected type: ",
           dtype_name(dtype), ", Actual type: ", dtype_name(feature_dtype(*f)));
    bounds.push_back(bounds.back() + (f ? feature_size(*f) : 0));
  }
  values = Tensor(dtype, {bounds.back()});
  for (size_t i = 0; i < b.examples.size(); ++i)
    if (const tensorflow::Feature* f = b.find(i, key)) copy_feature(*f, values, bounds[i]);
  if (b.scalar) bounds.clear();
  splits = Tensor(split_type, {static_cast<int64_t>(bounds.size())});
  dispatch(Types<int32_t, int64_t>{}, split_type, "ragged split type", [&]<typename T>() {
    for (size_t i = 0; i < bounds.size(); ++i) splits.data<T>()[i] = static_cast<T>(bounds[i]);
  });
}

// Runs a parse and sets the outputs in TF's order: sparse indices/values/shapes, dense values,
// ragged values/row splits.
void run_parse(KernelContext& c, const Batch& b, const ParseSpec& s) {
  TS_CHECK(s.sparse_keys.size() == s.sparse_types.size(), "expected ", s.sparse_types.size(),
           " sparse keys, got ", s.sparse_keys.size());
  TS_CHECK(s.dense_keys.size() == s.dense_types.size() && s.dense_shapes.size() == s.dense_types.size() &&
               s.dense_defaults.size() == s.dense_types.size(),
           "expected ", s.dense_types.size(), " dense keys, defaults and shapes, got ", s.dense_keys.size(),
           ", ", s.dense_defaults.size(), " and ", s.dense_shapes.size());
  TS_CHECK(s.ragged_keys.size() == s.ragged_value_types.size() &&
               s.ragged_split_types.size() == s.ragged_value_types.size(),
           "expected ", s.ragged_value_types.size(), " ragged keys and split types, got ",
           s.ragged_keys.size(), " and ", s.ragged_split_types.size());
  size_t ns = s.sparse_keys.size(), nd = s.dense_keys.size(), nr = s.ragged_keys.size();
  for (size_t k = 0; k < ns; ++k) {
    Tensor indices, values, shape;
    parse_sparse(b, s.sparse_keys[k], s.sparse_types[k], indices, values, shape);
    c.set_output(k, indices);
    c.set_output(ns + k, values);
    c.set_output(2 * ns + k, shape);
  }
  for (size_t k = 0; k < nd; ++k)
    c.set_output(3 * ns + k, parse_dense(b, s.dense_keys[k], s.dense_types[k], s.dense_shapes[k],
                                         s.dense_defaults[k]));
  for (size_t k = 0; k < nr; ++k) {
    Tensor values, splits;
    parse_ragged(b, s.ragged_keys[k], s.ragged_value_types[k], s.ragged_split_types[k], values, splits);
    c.set_output(3 * ns + nd + k, values);
    c.set_output(3 * ns + nd + nr + k, splits);
  }
}

std::vector<std::string> key_list(const Tensor& t, const char* what) {
  TS_CHECK(t.dtype() == DType::kString && t.rank() <= 1, what, " must be a string scalar or vector");
  return t.strings();
}

std::vector<Tensor> inputs_from(const KernelContext& c, size_t first, size_t n) {
  TS_CHECK(c.num_inputs() >= first + n, "expected ", first + n, " inputs, got ", c.num_inputs());
  return std::vector<Tensor>(c.inputs.begin() + first, c.inputs.begin() + first + n);
}

void parse_example_v1(KernelContext& c) {
  ParseSpec s;
  int64_t ns = c.attr<int64_t>("Nsparse"), nd = c.attr<int64_t>("Ndense");
  s.sparse_types = c.attr<std::vector<DType>>("sparse_types");
  s.dense_types = c.attr<std::vector<DType>>("Tdense");
  s.dense_shapes = c.attr<std::vector<PartialShape>>("dense_shapes");
  for (int64_t k = 0; k < ns; ++k) s.sparse_keys.push_back(key_list(c.input(2 + k), "sparse_keys").at(0));
  for (int64_t k = 0; k < nd; ++k) s.dense_keys.push_back(key_list(c.input(2 + ns + k), "dense_keys").at(0));
  s.dense_defaults = inputs_from(c, 2 + ns + nd, nd);
  const Tensor& serialized = c.input(0);
  if (serialized.rank() != 1)
    fail("expected serialized to be a vector, got shape: ", shape_str(serialized.shape()));
  run_parse(c, decode(serialized, c.input(1)), s);
}

void parse_example_v2(KernelContext& c) {
  ParseSpec s;
  s.sparse_types = c.attr<std::vector<DType>>("sparse_types");
  s.dense_types = c.attr<std::vector<DType>>("Tdense");
  s.dense_shapes = c.attr<std::vector<PartialShape>>("dense_shapes");
  s.ragged_value_types = c.attr<std::vector<DType>>("ragged_value_types");
  s.ragged_split_types = c.attr<std::vector<DType>>("ragged_split_types");
  TS_CHECK(static_cast<int64_t>(s.sparse_types.size()) == c.attr<int64_t>("num_sparse"),
           "num_sparse is ", c.attr<int64_t>("num_sparse"), " but sparse_types has ", s.sparse_types.size());
  s.sparse_keys = key_list(c.input(2), "sparse_keys");
  s.dense_keys = key_list(c.input(3), "dense_keys");
  s.ragged_keys = key_list(c.input(4), "ragged_keys");
  s.dense_defaults = inputs_from(c, 5, s.dense_types.size());
  const Tensor& serialized = c.input(0);
  if (serialized.rank() > 1)
    fail("expected serialized to be a scalar or vector, got shape: ", shape_str(serialized.shape()));
  run_parse(c, decode(serialized, c.input(1)), s);
}

void parse_single_example(KernelContext& c) {
  ParseSpec s;
  s.sparse_keys = c.attr<std::vector<std::string>>("sparse_keys");
  s.dense_keys = c.attr<std::vector<std::string>>("dense_keys");
  s.sparse_types = c.attr<std::vector<DType>>("sparse_types");
  s.dense_types = c.attr<std::vector<DType>>("Tdense");
  s.dense_shapes = c.attr<std::vector<PartialShape>>("dense_shapes");
  s.dense_defaults = inputs_from(c, 1, s.dense_types.size());
  const Tensor& serialized = c.input(0);
  if (serialized.rank() != 0)
    fail("expected serialized to be a scalar, got shape: ", shape_str(serialized.shape()));
  run_parse(c, decode(serialized, Tensor()), s);
}

// ---- inference ----

// `batch`: the serialized input's shape (rank 0 or 1 when known).
void infer_parse(InferContext& c, const PartialShape& batch, size_t num_sparse,
                 const std::vector<DType>& sparse_types, const std::vector<DType>& dense_types,
                 const std::vector<PartialShape>& dense_shapes, const std::vector<DType>& ragged_values,
                 const std::vector<DType>& ragged_splits) {
  if (batch.known_rank && batch.rank() > 1)
    fail("serialized must be a scalar or vector, got shape ", batch.str());
  TS_CHECK(sparse_types.size() == num_sparse, "num_sparse is ", num_sparse, " but sparse_types has ",
           sparse_types.size());
  TS_CHECK(dense_shapes.size() == dense_types.size(), "dense_shapes has ", dense_shapes.size(),
           " entries, Tdense has ", dense_types.size());
  TS_CHECK(ragged_values.size() == ragged_splits.size(), "ragged_value_types has ", ragged_values.size(),
           " entries, ragged_split_types has ", ragged_splits.size());
  int64_t cols = batch.known_rank ? batch.rank() + 1 : -1;
  size_t ns = num_sparse, nd = dense_types.size(), nr = ragged_values.size();
  for (size_t k = 0; k < ns; ++k) {
    c.set_output(k, DType::kInt64, PartialShape({-1, cols}));
    c.set_output(ns + k, sparse_types[k], PartialShape({-1}));
    c.set_output(2 * ns + k, DType::kInt64, PartialShape({cols}));
  }
  for (size_t k = 0; k < nd; ++k) {
    PartialShape out = PartialShape::unknown();
    if (batch.known_rank && dense_shapes[k].known_rank) {
      out = batch;
      out.dims.insert(out.dims.end(), dense_shapes[k].dims.begin(), dense_shapes[k].dims.end());
    }
    c.set_output(3 * ns + k, dense_types[k], out);
  }
  for (size_t k = 0; k < nr; ++k) {
    c.set_output(3 * ns + nd + k, ragged_values[k], PartialShape({-1}));
    int64_t n = !batch.known_rank ? -1 : batch.rank() == 0 ? 0 : batch.dims[0] < 0 ? -1 : batch.dims[0] + 1;
    c.set_output(3 * ns + nd + nr + k, ragged_splits[k], PartialShape({n}));
  }
}

void infer_v1(InferContext& c) {
  PartialShape batch = c.input(0).shape;
  if (batch.known_rank && batch.rank() != 1) fail("serialized must be a vector, got shape ", batch.str());
  infer_parse(c, batch, static_cast<size_t>(c.attr<int64_t>("Nsparse")),
              c.attr<std::vector<DType>>("sparse_types"), c.attr<std::vector<DType>>("Tdense"),
              c.attr<std::vector<PartialShape>>("dense_shapes"), {}, {});
}

void infer_v2(InferContext& c) {
  infer_parse(c, c.input(0).shape, static_cast<size_t>(c.attr<int64_t>("num_sparse")),
              c.attr<std::vector<DType>>("sparse_types"), c.attr<std::vector<DType>>("Tdense"),
              c.attr<std::vector<PartialShape>>("dense_shapes"),
              c.attr<std::vector<DType>>("ragged_value_types"),
              c.attr<std::vector<DType>>("ragged_split_types"));
}

void infer_single(InferContext& c) {
  infer_parse(c, PartialShape(std::vector<int64_t>{}), static_cast<size_t>(c.attr<int64_t>("num_sparse")),
              c.attr<std::vector<DType>>("sparse_types"), c.attr<std::vector<DType>>("Tdense"),
              c.attr<std::vector<PartialShape>>("dense_shapes"), {}, {});
}

}  // namespace

void register_parsing_ops(OpRegistry& r) {
  r.add({.name = "ParseExample",
         .output_args = {{"sparse_indices", "Nsparse", ""},
                         {"sparse_values", "", "sparse_types"},
                         {"sparse_shapes", "Nsparse", ""},
                         {"dense_values", "", "Tdense"}},
         .infer = infer_v1, .compute = parse_example_v1});
  r.add({.name = "ParseExampleV2",
         .output_args = {{"sparse_indices", "num_sparse", ""},
                         {"sparse_values", "", "sparse_types"},
                         {"sparse_shapes", "num_sparse", ""},
                         {"dense_values", "", "Tdense"},
                         {"ragged_values", "", "ragged_value_types"},
                         {"ragged_row_splits", "", "ragged_split_types"}},
         .infer = infer_v2, .compute = parse_example_v2});
  r.add({.name = "ParseSingleExample",
         .output_args = {{"sparse_indices", "num_sparse", ""},
                         {"sparse_values", "", "sparse_types"},
                         {"sparse_shapes", "num_sparse", ""},
                         {"dense_values", "", "Tdense"}},
         .infer = infer_single, .compute = parse_single_example});
}

}  // namespace tessera
