#include "frontend/tf/proto_convert.h"

#include <cstring>

namespace tessera::tf {

DType convert_dtype(int tf_dtype) { return dtype_from_tf(tf_dtype); }

PartialShape convert_shape(const tensorflow::TensorShapeProto& proto) {
  if (proto.unknown_rank()) return PartialShape::unknown();
  std::vector<int64_t> dims;
  for (const auto& d : proto.dim()) {
    TS_CHECK(d.size() >= -1, "invalid dimension ", d.size(), " in shape");
    dims.push_back(d.size());
  }
  return PartialShape(std::move(dims));
}

namespace {

// Fills `out` from a repeated proto field: all values, or one value repeated (TF's splat form),
// or zeros when the field is empty.
template <typename T, typename Field, typename Convert>
void fill(Tensor& out, const Field& field, Convert convert) {
  const int64_t n = out.num_elements();
  const int64_t count = field.size();
  TS_CHECK(count <= n, "tensor proto has ", count, " values for ", n, " elements");
  T* dst = out.data<T>();
  for (int64_t i = 0; i < count; ++i) dst[i] = convert(field.Get(static_cast<int>(i)));
  if (count > 0)
    for (int64_t i = count; i < n; ++i) dst[i] = dst[count - 1];
}

template <typename T>
T same(T v) { return v; }

}  // namespace

Tensor convert_tensor(const tensorflow::TensorProto& proto) {
  DType dtype = convert_dtype(proto.dtype());
  PartialShape ps = convert_shape(proto.tensor_shape());
  TS_CHECK(ps.fully_known(), "constant tensor has a partially known shape ", ps.str());
  Shape shape = ps.dims;
  if (dtype == DType::kResource || dtype == DType::kVariant)
    fail_code(ErrorCode::kUnimplemented, "constant tensors of dtype ", dtype_name(dtype), " are not supported");

  if (dtype == DType::kString) {
    const int64_t n = num_elements(shape);
    const int64_t count = proto.string_val_size();
    TS_CHECK(count <= n, "tensor proto has ", count, " strings for ", n, " elements");
    TS_CHECK(count == n || count <= 1, "tensor proto has ", count, " strings for ", n, " elements");
    Tensor t(dtype, shape);
    auto& s = t.strings();
    for (int64_t i = 0; i < n; ++i) s[i] = count == 0 ? std::string() : proto.string_val(count == n ? i : 0);
    return t;
  }

  // Check the declared size against the bytes actually present before allocating.
  const size_t elem = dtype_size(dtype);
  const int64_t n = num_elements(shape);
  if (!proto.tensor_content().empty()) {
    if (static_cast<uint64_t>(n) > proto.tensor_content().size() / elem ||
        static_cast<uint64_t>(n) * elem != proto.tensor_content().size())
      fail("tensor_content has ", proto.tensor_content().size(), " bytes, shape ", shape_str(shape),
           " of ", dtype_name(dtype), " needs ", static_cast<double>(n) * elem);
    Tensor t = Tensor::uninitialized(dtype, shape);  // every byte is copied next
    std::memcpy(t.mutable_raw(), proto.tensor_content().data(), t.nbytes());
    return t;
  }

  Tensor t(dtype, shape);
  switch (dtype) {
    case DType::kFloat32: fill<float>(t, proto.float_val(), same<float>); break;
    case DType::kFloat64: fill<double>(t, proto.double_val(), same<double>); break;
    case DType::kInt32: fill<int32_t>(t, proto.int_val(), same<int32_t>); break;
    case DType::kInt16: fill<int16_t>(t, proto.int_val(), [](int32_t v) { return static_cast<int16_t>(v); }); break;
    case DType::kInt8: fill<int8_t>(t, proto.int_val(), [](int32_t v) { return static_cast<int8_t>(v); }); break;
    case DType::kUInt8: fill<uint8_t>(t, proto.int_val(), [](int32_t v) { return static_cast<uint8_t>(v); }); break;
    case DType::kUInt16: fill<uint16_t>(t, proto.int_val(), [](int32_t v) { return static_cast<uint16_t>(v); }); break;
    case DType::kInt64: fill<int64_t>(t, proto.int64_val(), same<int64_t>); break;
    case DType::kUInt32: fill<uint32_t>(t, proto.uint32_val(), same<uint32_t>); break;
    case DType::kUInt64: fill<uint64_t>(t, proto.uint64_val(), same<uint64_t>); break;
    case DType::kBool: fill<bool>(t, proto.bool_val(), same<bool>); break;
    case DType::kFloat16:
      fill<float16>(t, proto.half_val(), [](int32_t v) { float16 h; h.bits = static_cast<uint16_t>(v); return h; });
      break;
    case DType::kBFloat16:
      fill<bfloat16>(t, proto.half_val(), [](int32_t v) { bfloat16 h; h.bits = static_cast<uint16_t>(v); return h; });
      break;
    case DType::kComplex64: {
      TS_CHECK(proto.scomplex_val_size() % 2 == 0, "odd number of complex64 components");
      int64_t count = proto.scomplex_val_size() / 2;
      TS_CHECK(count <= n, "tensor proto has ", count, " values for ", n, " elements");
      auto* d = t.data<std::complex<float>>();
      for (int64_t i = 0; i < n && count > 0; ++i) {
        int64_t j = std::min(i, count - 1);
        d[i] = {proto.scomplex_val(2 * j), proto.scomplex_val(2 * j + 1)};
      }
      break;
    }
    default:
      fail_code(ErrorCode::kUnimplemented, "constant tensors of dtype ", dtype_name(dtype), " are not supported");
  }
  return t;
}

namespace {

template <typename T, typename Field>
void put(const Tensor& t, Field* field) {
  const T* src = t.data<T>();
  field->Reserve(static_cast<int>(t.num_elements()));
  for (int64_t i = 0; i < t.num_elements(); ++i) field->Add(src[i]);
}

}  // namespace

void tensor_to_proto(const Tensor& t, tensorflow::TensorProto* proto) {
  proto->Clear();
  proto->set_dtype(static_cast<tensorflow::DataType>(static_cast<int>(t.dtype())));
  for (int64_t d : t.shape()) proto->mutable_tensor_shape()->add_dim()->set_size(d);
  switch (t.dtype()) {
    case DType::kFloat32: put<float>(t, proto->mutable_float_val()); break;
    case DType::kFloat64: put<double>(t, proto->mutable_double_val()); break;
    case DType::kInt32: put<int32_t>(t, proto->mutable_int_val()); break;
    case DType::kInt16: put<int16_t>(t, proto->mutable_int_val()); break;
    case DType::kInt8: put<int8_t>(t, proto->mutable_int_val()); break;
    case DType::kUInt8: put<uint8_t>(t, proto->mutable_int_val()); break;
    case DType::kUInt16: put<uint16_t>(t, proto->mutable_int_val()); break;
    case DType::kInt64: put<int64_t>(t, proto->mutable_int64_val()); break;
    case DType::kUInt32: put<uint32_t>(t, proto->mutable_uint32_val()); break;
    case DType::kUInt64: put<uint64_t>(t, proto->mutable_uint64_val()); break;
    case DType::kBool: put<bool>(t, proto->mutable_bool_val()); break;
    case DType::kFloat16:
      for (int64_t i = 0; i < t.num_elements(); ++i) proto->add_half_val(t.data<float16>()[i].bits);
      break;
    case DType::kBFloat16:
      for (int64_t i = 0; i < t.num_elements(); ++i) proto->add_half_val(t.data<bfloat16>()[i].bits);
      break;
    case DType::kComplex64:
      for (int64_t i = 0; i < t.num_elements(); ++i) {
        proto->add_scomplex_val(t.data<std::complex<float>>()[i].real());
        proto->add_scomplex_val(t.data<std::complex<float>>()[i].imag());
      }
      break;
    case DType::kComplex128:
      for (int64_t i = 0; i < t.num_elements(); ++i) {
        proto->add_dcomplex_val(t.data<std::complex<double>>()[i].real());
        proto->add_dcomplex_val(t.data<std::complex<double>>()[i].imag());
      }
      break;
    case DType::kString:
      for (const std::string& s : t.strings()) proto->add_string_val(s);
      break;
    default:
      fail_code(ErrorCode::kUnimplemented, "tensors of dtype ", dtype_name(t.dtype()), " cannot be encoded");
  }
}

AttrValue convert_attr(const tensorflow::AttrValue& proto) {
  using P = tensorflow::AttrValue;
  switch (proto.value_case()) {
    case P::kS: return proto.s();
    case P::kI: return static_cast<int64_t>(proto.i());
    case P::kF: return proto.f();
    case P::kB: return proto.b();
    case P::kType: return convert_dtype(proto.type());
    case P::kShape: return convert_shape(proto.shape());
    case P::kTensor: return convert_tensor(proto.tensor());
    case P::kFunc: {
      FuncRef ref{proto.func().name(), std::make_shared<AttrMap>()};
      for (const auto& [k, v] : proto.func().attr()) (*ref.attrs)[k] = convert_attr(v);
      return ref;
    }
    case P::kPlaceholder:
      fail("unresolved attribute placeholder '", proto.placeholder(), "'");
    case P::kList: {
      const auto& l = proto.list();
      if (l.s_size()) return std::vector<std::string>(l.s().begin(), l.s().end());
      if (l.i_size()) return std::vector<int64_t>(l.i().begin(), l.i().end());
      if (l.f_size()) return std::vector<float>(l.f().begin(), l.f().end());
      if (l.b_size()) return std::vector<bool>(l.b().begin(), l.b().end());
      if (l.type_size()) {
        std::vector<DType> v;
        for (int t : l.type()) v.push_back(convert_dtype(t));
        return v;
      }
      if (l.shape_size()) {
        std::vector<PartialShape> v;
        for (const auto& s : l.shape()) v.push_back(convert_shape(s));
        return v;
      }
      if (l.tensor_size()) {
        std::vector<Tensor> v;
        for (const auto& t : l.tensor()) v.push_back(convert_tensor(t));
        return v;
      }
      if (l.func_size()) {
        std::vector<FuncRef> v;
        for (const auto& f : l.func()) v.push_back({f.name(), std::make_shared<AttrMap>()});
        return v;
      }
      return std::vector<int64_t>{};  // empty list: kind unknown (accepted as any list kind)
    }
    case P::VALUE_NOT_SET:
      return std::monostate{};
  }
  return std::monostate{};
}

TensorRef parse_tensor_ref(const std::string& text) {
  TensorRef ref;
  std::string s = text;
  if (!s.empty() && s[0] == '^') {
    ref.control = true;
    ref.node = s.substr(1);
    return ref;
  }
  auto first = s.find(':');
  if (first == std::string::npos) {
    ref.node = s;
    return ref;
  }
  ref.node = s.substr(0, first);
  std::string rest = s.substr(first + 1);
  auto second = rest.find(':');
  std::string index_text = rest;
  if (second != std::string::npos) {
    ref.arg = rest.substr(0, second);
    index_text = rest.substr(second + 1);
  } else if (!index_text.empty() && !std::isdigit(static_cast<unsigned char>(index_text[0]))) {
    ref.arg = index_text;  // "node:arg" means output 0 of that argument
    index_text = "0";
  }
  TS_CHECK(!index_text.empty() && index_text.size() < 10 &&
               index_text.find_first_not_of("0123456789") == std::string::npos,
           "malformed tensor reference '", text, "'");
  ref.index = std::stoi(index_text);
  TS_CHECK(!ref.node.empty(), "malformed tensor reference '", text, "'");
  return ref;
}

}  // namespace tessera::tf
