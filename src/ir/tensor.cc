#include "ir/tensor.h"

#include <cstdlib>
#include <sstream>

namespace tessera {

size_t max_tensor_bytes() {
  static const size_t limit = [] {
    const char* env = std::getenv("TESSERA_MAX_TENSOR_BYTES");
    return env ? static_cast<size_t>(std::strtoull(env, nullptr, 10)) : (size_t{8} << 30);
  }();
  return limit;
}

namespace {
constexpr size_t kAlignment = 64;  // cache line / AVX-512 vector

std::shared_ptr<const std::byte> allocate(size_t nbytes, bool zero) {
  size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (!p) fail_code(ErrorCode::kResourceExhausted, "out of memory allocating ", nbytes, " bytes");
  if (zero) std::memset(p, 0, rounded);
  return std::shared_ptr<const std::byte>(static_cast<const std::byte*>(p),
                                          [](const std::byte* q) { std::free(const_cast<std::byte*>(q)); });
}
}  // namespace

Tensor::Tensor(DType dtype, Shape shape) : Tensor(dtype, std::move(shape), true) {}

Tensor Tensor::uninitialized(DType dtype, Shape shape) { return Tensor(dtype, std::move(shape), false); }

Tensor::Tensor(DType dtype, Shape shape, bool zero)
    : dtype_(dtype), shape_(std::move(shape)), num_elements_(tessera::num_elements(shape_)) {
  TS_CHECK(dtype != DType::kInvalid, "tensor with invalid dtype");
  if (is_pod(dtype)) {
    size_t elem = dtype_size(dtype);
    if (static_cast<size_t>(num_elements_) > max_tensor_bytes() / elem)
      fail_code(ErrorCode::kResourceExhausted, "tensor of shape ", shape_str(shape_), " (",
                dtype_name(dtype), ") exceeds the ", max_tensor_bytes(), "-byte tensor limit");
    bytes_ = allocate(static_cast<size_t>(num_elements_) * elem, zero);
  } else {
    if (static_cast<size_t>(num_elements_) > max_tensor_bytes() / 32)
      fail_code(ErrorCode::kResourceExhausted, "tensor of shape ", shape_str(shape_), " (",
                dtype_name(dtype), ") is too large");
    if (dtype == DType::kString)
      strings_ = std::make_shared<std::vector<std::string>>(num_elements_);
    else
      variants_ = std::make_shared<std::vector<VariantPtr>>(num_elements_);
  }
}

Tensor Tensor::borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner) {
  TS_CHECK(is_pod(dtype), "borrow: only fixed-size dtypes");
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.num_elements_ = tessera::num_elements(t.shape_);
  t.bytes_ = std::shared_ptr<const std::byte>(owner, static_cast<const std::byte*>(data));
  return t;
}

Tensor Tensor::string_scalar(std::string s) {
  Tensor t(DType::kString, {});
  t.strings()[0] = std::move(s);
  return t;
}

void Tensor::check_type(DType t) const {
  if (t != dtype_) fail("tensor is ", dtype_name(dtype_), ", accessed as ", dtype_name(t));
}

std::vector<std::string>& Tensor::strings() {
  TS_CHECK(strings_, "tensor is ", dtype_name(dtype_), ", not string");
  return *strings_;
}
const std::vector<std::string>& Tensor::strings() const {
  TS_CHECK(strings_, "tensor is ", dtype_name(dtype_), ", not string");
  return *strings_;
}
std::vector<VariantPtr>& Tensor::variants() {
  TS_CHECK(variants_, "tensor is ", dtype_name(dtype_), ", not resource/variant");
  return *variants_;
}
const std::vector<VariantPtr>& Tensor::variants() const {
  TS_CHECK(variants_, "tensor is ", dtype_name(dtype_), ", not resource/variant");
  return *variants_;
}

Tensor Tensor::reshaped(Shape shape) const {
  TS_CHECK(tessera::num_elements(shape) == num_elements_, "cannot reshape ", shape_str(shape_),
           " to ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, shape_);
  if (is_pod(dtype_))
    std::memcpy(t.mutable_raw(), raw(), nbytes());
  else if (strings_)
    *t.strings_ = *strings_;
  else if (variants_)
    *t.variants_ = *variants_;
  return t;
}

int64_t Tensor::scalar_int(size_t i) const {
  TS_CHECK(static_cast<int64_t>(i) < num_elements_, "index ", i, " out of range for tensor of ",
           num_elements_, " elements");
  return dispatch(Types<int32_t, int64_t, uint8_t, int8_t, int16_t, uint16_t, uint32_t, uint64_t, bool>{},
                  dtype_, "integer operand", [&]<typename T>() {
                    return static_cast<int64_t>(data<T>()[i]);
                  });
}

double Tensor::scalar_double(size_t i) const {
  TS_CHECK(static_cast<int64_t>(i) < num_elements_, "index out of range");
  if (dtype_ == DType::kBool) return data<bool>()[i] ? 1.0 : 0.0;
  return dispatch(RealTypes{}, dtype_, "numeric operand",
                  [&]<typename T>() { return static_cast<double>(data<T>()[i]); });
}

std::vector<int64_t> Tensor::to_int_vector() const {
  std::vector<int64_t> out(static_cast<size_t>(num_elements_));
  for (size_t i = 0; i < out.size(); ++i) out[i] = scalar_int(i);
  return out;
}

std::string Tensor::debug_string(size_t max_values) const {
  std::ostringstream os;
  os << dtype_name(dtype_) << shape_str(shape_);
  if (!valid()) return "<invalid>";
  os << " {";
  size_t n = std::min(static_cast<size_t>(num_elements_), max_values);
  for (size_t i = 0; i < n; ++i) {
    if (i) os << ", ";
    if (dtype_ == DType::kString)
      os << '"' << strings()[i] << '"';
    else if (is_pod(dtype_) && dtype_ != DType::kComplex64 && dtype_ != DType::kComplex128)
      os << scalar_double(i);
    else
      os << "?";
  }
  if (static_cast<size_t>(num_elements_) > n) os << ", ...";
  os << "}";
  return os.str();
}

}  // namespace tessera
