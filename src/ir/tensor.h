// A dense n-dimensional value. Storage is shared and immutable once a kernel has produced it:
// copying a Tensor is cheap, and a variable "assignment" swaps in a new Tensor.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ir/dtype.h"
#include "ir/shape.h"

namespace tessera {

// Values that are not plain numbers (TensorList payloads, resource handles) derive from this.
struct VariantValue {
  virtual ~VariantValue() = default;
  virtual std::string type_name() const = 0;
};
using VariantPtr = std::shared_ptr<const VariantValue>;

// A handle to a variable (resource) by its unique key in a ResourceStore.
struct ResourceHandle : VariantValue {
  std::string key;
  explicit ResourceHandle(std::string k) : key(std::move(k)) {}
  std::string type_name() const override { return "ResourceHandle"; }
};

// The largest tensor Tessera allocates (8 GiB unless TESSERA_MAX_TENSOR_BYTES says otherwise).
// Checked before allocating, so a tiny file declaring a huge tensor is rejected cheaply.
size_t max_tensor_bytes();

class Tensor {
 public:
  Tensor() = default;
  // Zero-initialised storage (empty strings / null variants for those dtypes).
  Tensor(DType dtype, Shape shape);
  // Fixed-size dtypes: storage left uninitialised, for outputs a kernel overwrites whole
  // (saves a memset pass over memory that is written right after). Others as the constructor.
  static Tensor uninitialized(DType dtype, Shape shape);
  // Wraps bytes owned elsewhere (e.g. an mmapped file); `owner` keeps them alive.
  static Tensor borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner);

  template <typename T>
  static Tensor scalar(T value) {
    Tensor t(dtype_of<T>, {});
    t.data<T>()[0] = value;
    return t;
  }
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, Shape shape = {}) {
    if (shape.empty() && values.size() != 1) shape = {static_cast<int64_t>(values.size())};
    Tensor t(dtype_of<T>, shape);
    TS_CHECK(static_cast<size_t>(t.num_elements()) == values.size(), "from_vector: size mismatch");
    for (size_t i = 0; i < values.size(); ++i) t.data<T>()[i] = values[i];
    return t;
  }
  static Tensor string_scalar(std::string s);

  bool valid() const { return dtype_ != DType::kInvalid; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const { return shape_.at(static_cast<size_t>(i)); }
  int64_t num_elements() const { return num_elements_; }
  size_t nbytes() const { return static_cast<size_t>(num_elements_) * dtype_size(dtype_); }

  template <typename T>
  T* data() {
    check_type(dtype_of<T>);
    return static_cast<T*>(mutable_raw());
  }
  template <typename T>
  const T* data() const {
    check_type(dtype_of<T>);
    return static_cast<const T*>(raw());
  }
  const void* raw() const { return bytes_.get(); }
  void* mutable_raw() { return const_cast<void*>(static_cast<const void*>(bytes_.get())); }

  std::vector<std::string>& strings();
  const std::vector<std::string>& strings() const;
  std::vector<VariantPtr>& variants();
  const std::vector<VariantPtr>& variants() const;

  // Same storage, new shape with the same element count.
  Tensor reshaped(Shape shape) const;
  // A deep copy with its own storage.
  Tensor clone() const;
  // Scalar or single-element value converted to int64/double (for shape/axis operands).
  int64_t scalar_int(size_t i = 0) const;
  double scalar_double(size_t i = 0) const;
  std::vector<int64_t> to_int_vector() const;  // any integer tensor, flattened

  std::string debug_string(size_t max_values = 8) const;

 private:
  // `zero`: fill fixed-size storage with zeros (the public constructor) or leave it as is.
  Tensor(DType dtype, Shape shape, bool zero);
  void check_type(DType t) const;

  DType dtype_ = DType::kInvalid;
  Shape shape_;
  int64_t num_elements_ = 0;
  std::shared_ptr<const std::byte> bytes_;
  std::shared_ptr<std::vector<std::string>> strings_;
  std::shared_ptr<std::vector<VariantPtr>> variants_;
};

}  // namespace tessera
