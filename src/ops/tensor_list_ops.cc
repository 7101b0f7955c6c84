// TensorList ops: the list-of-tensors values that TF2's tf.TensorArray, tf.while_loop
// accumulators and Keras RNN layers use. A list is a scalar DT_VARIANT tensor holding an
// immutable TensorList (tensor_list.h); every "modifying" op builds a new list, copying only the
// vector of (shared-storage) Tensors, so a list another value still references never changes.
#include <algorithm>
#include <cstring>

#include "ir/grad.h"
#include "ops/elementwise_util.h"
#include "ops/op_helpers.h"
#include "ops/tensor_list.h"

namespace tessera {

const TensorList& tensor_list_of(const Tensor& handle) {
  TS_CHECK(handle.dtype() == DType::kVariant, "expected a TensorList (variant) input, got ",
           dtype_name(handle.dtype()));
  TS_CHECK(handle.num_elements() == 1, "expected a single TensorList, got a variant tensor of shape ",
           shape_str(handle.shape()));
  const VariantValue* v = handle.variants()[0].get();
  TS_CHECK(v, "the TensorList input is uninitialised");
  const auto* list = dynamic_cast<const TensorList*>(v);
  TS_CHECK(list, "expected a TensorList, got a ", v->type_name());
  return *list;
}

Tensor make_tensor_list_handle(std::shared_ptr<const TensorList> list) {
  Tensor h(DType::kVariant, {});
  h.variants()[0] = std::move(list);
  return h;
}

Tensor add_tensor_lists(const std::vector<Tensor>& lists) {
  TS_CHECK(!lists.empty(), "no lists to add");
  auto out = std::make_shared<TensorList>(tensor_list_of(lists[0]));
  for (size_t k = 1; k < lists.size(); ++k) {
    const TensorList& b = tensor_list_of(lists[k]);
    TS_CHECK(b.element_dtype == out->element_dtype, "cannot add lists of ", dtype_name(out->element_dtype),
             " and ", dtype_name(b.element_dtype));
    TS_CHECK(b.tensors.size() == out->tensors.size(), "cannot add lists of ", out->tensors.size(), " and ",
             b.tensors.size(), " items");
    for (size_t i = 0; i < b.tensors.size(); ++i) {
      Tensor& a = out->tensors[i];
      const Tensor& t = b.tensors[i];
      if (!t.valid()) continue;
      if (!a.valid()) {
        a = t;
        continue;
      }
      TS_CHECK(a.shape() == t.shape(), "cannot add list items of shapes ", shape_str(a.shape()), " and ",
               shape_str(t.shape()), " (item ", i, ")");
      Tensor sum(a.dtype(), a.shape());
      dispatch(FloatTypes{}, a.dtype(), "list item sum", [&]<typename T>() {
        for (int64_t j = 0; j < sum.num_elements(); ++j)
          sum.data<T>()[j] = static_cast<T>(ew::up(a.data<T>()[j]) + ew::up(t.data<T>()[j]));
      });
      a = std::move(sum);
    }
  }
  return make_tensor_list_handle(std::move(out));
}

Tensor zeros_like_tensor_list(const Tensor& handle) {
  auto out = std::make_shared<TensorList>(tensor_list_of(handle));
  for (Tensor& t : out->tensors)
    if (t.valid()) t = Tensor(t.dtype(), t.shape());  // zero-initialised
  return make_tensor_list_handle(std::move(out));
}

namespace {

using ListPtr = std::shared_ptr<TensorList>;

const PartialShape kScalar{std::vector<int64_t>{}};

// ---- shapes ----

// A shape operand as TF encodes it: scalar -1 = unknown rank; a vector with -1 = unknown dims.
PartialShape shape_from_tensor(const Tensor& t) {
  TS_CHECK(t.dtype() == DType::kInt32 || t.dtype() == DType::kInt64,
           "element_shape must be int32 or int64, got ", dtype_name(t.dtype()));
  if (t.rank() == 0) {
    TS_CHECK(t.scalar_int() == -1,
             "the only valid scalar shape tensor is the fully unknown shape specified as -1, got ",
             t.scalar_int());
    return PartialShape::unknown();
  }
  TS_CHECK(t.rank() == 1, "element_shape must be at most rank 1 but is rank ", t.rank());
  std::vector<int64_t> dims = t.to_int_vector();
  for (int64_t d : dims) TS_CHECK(d >= -1, "dimension ", d, " must be >= -1");
  return PartialShape(dims);
}

// The same for a compile-time operand; unknown when the value is not known.
PartialShape shape_from_known(const InferContext& c, size_t i) {
  const Tensor* t = c.input_value(i);
  return t ? shape_from_tensor(*t) : PartialShape::unknown();
}

Tensor shape_to_tensor(const PartialShape& s, DType dtype) {
  if (!s.known_rank) {
    Tensor t(dtype, {});
    dispatch(Types<int32_t, int64_t>{}, dtype, "shape_type", [&]<typename T>() { t.data<T>()[0] = -1; });
    return t;
  }
  Tensor t(dtype, {static_cast<int64_t>(s.dims.size())});
  dispatch(Types<int32_t, int64_t>{}, dtype, "shape_type", [&]<typename T>() {
    for (size_t i = 0; i < s.dims.size(); ++i) t.data<T>()[i] = static_cast<T>(s.dims[i]);
  });
  return t;
}

PartialShape merge(const PartialShape& a, const PartialShape& b) {
  if (!a.known_rank) return b;
  if (!b.known_rank) return a;
  if (a.dims.size() != b.dims.size()) fail("incompatible shapes during merge: ", a.str(), " vs. ", b.str());
  PartialShape out = a;
  for (size_t i = 0; i < a.dims.size(); ++i) {
    if (a.dims[i] < 0) out.dims[i] = b.dims[i];
    else if (b.dims[i] >= 0 && a.dims[i] != b.dims[i])
      fail("incompatible shapes during merge: ", a.str(), " vs. ", b.str());
  }
  return out;
}

Shape to_shape(const PartialShape& s) { return s.dims; }

// The dims after the first (the rank must be known and >= 1).
PartialShape drop_first(const PartialShape& s) {
  if (!s.known_rank || s.dims.empty()) return PartialShape::unknown();
  return PartialShape(std::vector<int64_t>(s.dims.begin() + 1, s.dims.end()));
}

PartialShape prepend(int64_t d, const PartialShape& s) {
  if (!s.known_rank) return PartialShape::unknown();
  std::vector<int64_t> dims{d};
  dims.insert(dims.end(), s.dims.begin(), s.dims.end());
  return PartialShape(dims);
}

// The concrete shape of list items for reads of unset items and empty stacks: the requested
// shape merged with the list's, completed from the set items when still partial.
Shape resolve_element_shape(const TensorList& list, const PartialShape& requested) {
  PartialShape s = merge(requested, list.element_shape);
  if (!s.fully_known())
    for (const Tensor& t : list.tensors)
      if (t.valid()) s = merge(s, PartialShape(t.shape()));
  if (!s.fully_known())
    fail("trying to read an uninitialised list item, but the element shape ", s.str(),
         " is not fully defined and no list item is set");
  return to_shape(s);
}

// ---- element copies (any dtype) ----

void copy_elements(Tensor& dst, int64_t dst_off, const Tensor& src, int64_t src_off, int64_t count) {
  if (count <= 0) return;
  if (is_pod(dst.dtype())) {
    size_t es = dtype_size(dst.dtype());
    std::memcpy(static_cast<char*>(dst.mutable_raw()) + dst_off * es,
                static_cast<const char*>(src.raw()) + src_off * es, static_cast<size_t>(count) * es);
  } else if (dst.dtype() == DType::kString) {
    std::copy_n(src.strings().begin() + src_off, count, dst.strings().begin() + dst_off);
  } else {
    std::copy_n(src.variants().begin() + src_off, count, dst.variants().begin() + dst_off);
  }
}

// Rows [begin, begin + count) of `t` along dim 0, as a new tensor.
Tensor slice_rows(const Tensor& t, int64_t begin, int64_t count) {
  Shape shape = t.shape();
  int64_t row = shape[0] == 0 ? 0 : t.num_elements() / shape[0];
  shape[0] = count;
  Tensor out(t.dtype(), shape);
  copy_elements(out, 0, t, begin * row, count * row);
  return out;
}

Tensor row(const Tensor& t, int64_t i) {
  return slice_rows(t, i, 1).reshaped(Shape(t.shape().begin() + 1, t.shape().end()));
}

// ---- checks ----

void check_dtype(const TensorList& list, DType op_dtype) {
  if (list.element_dtype != op_dtype)
    fail("invalid data types; op elements ", dtype_name(op_dtype), " but list elements ",
         dtype_name(list.element_dtype));
}

const TensorList& input_list(const KernelContext& c, size_t i) { return tensor_list_of(c.input(i)); }

DType element_dtype(const KernelContext& c) { return c.attr<DType>("element_dtype"); }

ListPtr copy_of(const TensorList& list) { return std::make_shared<TensorList>(list); }

ListPtr new_list(DType dtype, PartialShape shape) {
  auto l = std::make_shared<TensorList>();
  l->element_dtype = dtype;
  l->element_shape = std::move(shape);
  return l;
}

void set_list(KernelContext& c, size_t i, ListPtr list) { c.set_output(i, make_tensor_list_handle(std::move(list))); }

// Stacks `items` (unset ones as zeros) into one [n, ...shape] tensor, checking every set item.
Tensor stack_items(const std::vector<const Tensor*>& items, DType dtype, const Shape& shape) {
  Shape out_shape{static_cast<int64_t>(items.size())};
  out_shape.insert(out_shape.end(), shape.begin(), shape.end());
  Tensor out(dtype, out_shape);
  int64_t per = num_elements(shape);
  for (size_t i = 0; i < items.size(); ++i) {
    const Tensor* t = items[i];
    if (!t->valid()) continue;  // storage is zero-initialised
    if (t->shape() != shape)
      fail("list item ", i, " has shape ", shape_str(t->shape()), ", expected ", shape_str(shape));
    copy_elements(out, static_cast<int64_t>(i) * per, *t, 0, per);
  }
  return out;
}

// ---- kernels ----

void empty_kernel(KernelContext& c) {
  auto l = new_list(element_dtype(c), shape_from_tensor(c.input(0)));
  l->max_num_elements = c.input(1).scalar_int();
  set_list(c, 0, l);
}

void reserve_kernel(KernelContext& c) {
  int64_t n = c.input(1).scalar_int();
  if (n < 0) fail("the num_elements to reserve must be a non negative number, but got ", n);
  auto l = new_list(element_dtype(c), shape_from_tensor(c.input(0)));
  l->tensors.resize(static_cast<size_t>(n));
  set_list(c, 0, l);
}

void check_rows_compatible(const PartialShape& element_shape, const Tensor& t) {
  if (t.rank() < 1) fail("tensor must be at least a vector, but saw shape: ", shape_str(t.shape()));
  Shape inner(t.shape().begin() + 1, t.shape().end());
  if (!element_shape.matches(inner))
    fail("specified a list with element shape ", element_shape.str(), " from a tensor with shape ",
         shape_str(t.shape()));
}

void from_tensor_kernel(KernelContext& c) {
  const Tensor& t = c.input(0);
  PartialShape es = shape_from_tensor(c.input(1));
  check_rows_compatible(es, t);
  auto l = new_list(t.dtype(), es);
  l->tensors.reserve(static_cast<size_t>(t.dim(0)));
  for (int64_t i = 0; i < t.dim(0); ++i) l->tensors.push_back(row(t, i));
  set_list(c, 0, l);
}

int64_t checked_index(int64_t index, const TensorList& list, const char* verb) {
  if (index < 0 || index >= static_cast<int64_t>(list.tensors.size()))
    fail_code(ErrorCode::kInvalidArgument, "trying to ", verb, " element ", index, " in a list with ",
              list.tensors.size(), " elements");
  return index;
}

// A read item must match the shape the op declared (inference relies on it).
Tensor checked_read(const TensorList& list, const Tensor& item, const PartialShape& requested) {
  if (!item.valid()) return Tensor(list.element_dtype, resolve_element_shape(list, requested));
  if (!requested.matches(item.shape()))
    fail("list item has shape ", shape_str(item.shape()), ", but the op's element_shape is ",
         requested.str());
  return item;
}

void get_item_kernel(KernelContext& c) {
  const TensorList& list = input_list(c, 0);
  check_dtype(list, element_dtype(c));
  int64_t i = checked_index(c.input(1).scalar_int(), list, "access");
  c.set_output(0, checked_read(list, list.tensors[i], shape_from_tensor(c.input(2))));
}

void check_item(const TensorList& list, const Tensor& item, const char* what) {
  check_dtype(list, item.dtype());
  if (!list.element_shape.matches(item.shape()))
    fail("tried to ", what, " a tensor with incompatible shape ", shape_str(item.shape()),
         " (list element shape: ", list.element_shape.str(), ")");
}

void set_item_kernel(KernelContext& c) {
  const TensorList& list = input_list(c, 0);
  const Tensor& item = c.input(2);
  check_item(list, item, "set");
  int64_t index = c.input(1).scalar_int();
  auto out = copy_of(list);
  if (c.attr_or<bool>("resize_if_index_out_of_bounds", false) && index >= 0 &&
      index >= static_cast<int64_t>(out->tensors.size()))
    out->tensors.resize(static_cast<size_t>(index) + 1);
  checked_index(index, *out, "modify");
  out->tensors[index] = item;
  set_list(c, 0, out);
}

void stack_kernel(KernelContext& c) {
  const TensorList& list = input_list(c, 0);
  check_dtype(list, element_dtype(c));
  int64_t want = c.attr_or<int64_t>("num_elements", -1);
  if (want != -1 && want != static_cast<int64_t>(list.tensors.size()))
    fail("operation expected a list with ", want, " elements but got a list with ",
         list.tensors.size(), " elements");
  PartialShape requested = shape_from_tensor(c.input(1));
  if (list.tensors.empty()) {
    PartialShape s = merge(requested, list.element_shape);
    if (!s.fully_known())
      fail("tried to stack elements of an empty list with non-fully-defined element_shape: ", s.str());
  }
  Shape shape = resolve_element_shape(list, requested);
  std::vector<const Tensor*> items;
  for (const Tensor& t : list.tensors) items.push_back(&t);
  c.set_output(0, stack_items(items, list.element_dtype, shape));
}

void gather_kernel(KernelContext& c) {
  const TensorList& list = input_list(c, 0);
  check_dtype(list, element_dtype(c));
  std::vector<int64_t> indices = c.input(1).to_int_vector();
  PartialShape requested = shape_from_tensor(c.input(2));
  if (indices.empty()) {
    PartialShape s = merge(requested, list.element_shape);
    if (!s.fully_known())
      fail("tried to gather 0 elements from a list with non-fully-defined element shape: ", s.str());
  }
  std::vector<const Tensor*> items;
  for (int64_t i : indices) {
    if (i < 0 || i >= static_cast<int64_t>(list.tensors.size()))
      fail("index ", i, " out of range; list only has ", list.tensors.size(), " elements");
    items.push_back(&list.tensors[i]);
  }
  c.set_output(0, stack_items(items, list.element_dtype, resolve_element_shape(list, requested)));
}

void length_kernel(KernelContext& c) {
  c.set_output(0, Tensor::scalar<int32_t>(static_cast<int32_t>(input_list(c, 0).tensors.size())));
}

void element_shape_kernel(KernelContext& c) {
  c.set_output(0, shape_to_tensor(input_list(c, 0).element_shape, c.attr<DType>("shape_type")));
}

void push_back_kernel(KernelContext& c) {
  const TensorList& list = input_list(c, 0);
  const Tensor& item = c.input(1);
  check_item(list, item, "append");
  if (list.max_num_elements != -1 && static_cast<int64_t>(list.tensors.size()) >= list.max_num_elements)
    fail("tried to push an item into a full list: list size ", list.tensors.size(),
         ", max_num_elements ", list.max_num_elements);
  auto out = copy_of(list);
  out->tensors.push_back(item);
  set_list(c, 0, out);
}

void pop_back_kernel(KernelContext& c) {
  const TensorList& list = input_list(c, 0);
  check_dtype(list, element_dtype(c));
  if (list.tensors.empty()) fail("trying to pop from an empty list");
  Tensor item = checked_read(list, list.tensors.back(), shape_from_tensor(c.input(1)));
  auto out = copy_of(list);
  out->tensors.pop_back();
  set_list(c, 0, out);
  c.set_output(1, item);
}

void resize_kernel(KernelContext& c) {
  const TensorList& list = input_list(c, 0);
  int64_t size = c.input(1).scalar_int();
  if (size < 0) fail("TensorListResize expects size to be non-negative, got ", size);
  auto out = copy_of(list);
  out->tensors.resize(static_cast<size_t>(size));
  set_list(c, 0, out);
}

// Writes row k of `t` at indices[k] (later duplicates win), growing the list as needed.
void scatter_into(TensorList& list, const Tensor& t, const std::vector<int64_t>& indices,
                  int64_t fixed_size) {
  if (t.rank() < 1) fail("tensor must be at least a vector, but saw shape: ", shape_str(t.shape()));
  if (static_cast<int64_t>(indices.size()) != t.dim(0))
    fail("invalid number of rows in input tensor: expected ", indices.size(), " (one per index), got ",
         t.dim(0));
  int64_t max_index = -1;
  for (int64_t i : indices) {
    if (i < 0) fail("indices in TensorListScatter must all be non-negative, got ", i);
    max_index = std::max(max_index, i);
  }
  if (fixed_size >= 0) {
    if (max_index >= fixed_size)
      fail("TensorListScatter: trying to scatter at index ", max_index, " in a list with size ", fixed_size);
    list.tensors.resize(static_cast<size_t>(fixed_size));
  } else if (max_index + 1 > static_cast<int64_t>(list.tensors.size())) {
    list.tensors.resize(static_cast<size_t>(max_index + 1));
  }
  for (size_t k = 0; k < indices.size(); ++k) list.tensors[indices[k]] = row(t, static_cast<int64_t>(k));
}

void scatter_kernel(KernelContext& c, bool v2) {
  const Tensor& t = c.input(0);
  PartialShape es = shape_from_tensor(c.input(2));
  check_rows_compatible(es, t);
  int64_t size = -1;
  if (v2) {
    size = c.input(3).scalar_int();
    if (size < -1) fail("TensorListScatter expects num_elements >= -1, found: ", size);
  }
  auto l = new_list(t.dtype(), es);
  scatter_into(*l, t, c.input(1).to_int_vector(), size);
  set_list(c, 0, l);
}

void scatter_existing_kernel(KernelContext& c) {
  const TensorList& list = input_list(c, 0);
  const Tensor& t = c.input(1);
  check_dtype(list, t.dtype());
  check_rows_compatible(list.element_shape, t);
  auto out = copy_of(list);
  scatter_into(*out, t, c.input(2).to_int_vector(), -1);
  set_list(c, 0, out);
}

// TensorListConcat(V2): items joined along their first dim; lengths[i] = item i's first dim.
// Unset items take their first dim from leading_dims[i] (else from the element shape).
void concat(KernelContext& c, const PartialShape& requested, const std::vector<int64_t>& leading_dims) {
  const TensorList& list = input_list(c, 0);
  check_dtype(list, element_dtype(c));
  PartialShape s = merge(requested, list.element_shape);
  if (s.known_rank && s.dims.empty()) fail("concat requires list elements of at least rank 1");
  size_t n = list.tensors.size();
  if (n == 0) {
    PartialShape inner = drop_first(s);
    if (!inner.fully_known())
      fail("all except the first dimension must be fully defined when concatenating an empty tensor "
           "list; element shape: ", s.str());
    c.set_output(0, Tensor(list.element_dtype, to_shape(prepend(0, inner))));
    c.set_output(1, Tensor(DType::kInt64, {0}));
    return;
  }
  if (!s.fully_known())
    for (const Tensor& t : list.tensors)
      if (t.valid()) {
        if (t.rank() < 1) fail("concat saw a scalar list item but requires at least vectors");
        s = merge(s, PartialShape(t.shape()));
        break;
      }
  PartialShape inner = drop_first(s);
  // The shape of each item (set or zero-filled), checked against the common inner dims.
  std::vector<Shape> shapes(n);
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const Tensor& t = list.tensors[i];
    if (t.valid()) {
      if (t.rank() < 1) fail("concat saw a scalar shape at index ", i, " but requires at least vectors");
      if (!inner.matches(Shape(t.shape().begin() + 1, t.shape().end())))
        fail("list item ", i, " has shape ", shape_str(t.shape()), ", incompatible with ", s.str());
      shapes[i] = t.shape();
    } else {
      PartialShape want = i < leading_dims.size() ? prepend(leading_dims[i], inner) : s;
      if (!want.fully_known())
        fail("trying to concat a list with uninitialised item ", i, " but its shape ", want.str(),
             " is not fully defined");
      shapes[i] = to_shape(want);
    }
    total += shapes[i][0];
  }
  Shape out_shape = shapes[0];
  out_shape[0] = total;
  Tensor out(list.element_dtype, out_shape);
  Tensor lengths(DType::kInt64, {static_cast<int64_t>(n)});
  int64_t offset = 0;
  for (size_t i = 0; i < n; ++i) {
    int64_t count = num_elements(shapes[i]);
    if (list.tensors[i].valid()) copy_elements(out, offset, list.tensors[i], 0, count);
    offset += count;
    lengths.data<int64_t>()[i] = shapes[i][0];
  }
  c.set_output(0, out);
  c.set_output(1, lengths);
}

void split_kernel(KernelContext& c) {
  const Tensor& t = c.input(0);
  PartialShape es = shape_from_tensor(c.input(1));
  if (t.rank() < 1) fail("tensor must be at least a vector, but saw shape: ", shape_str(t.shape()));
  if (es.known_rank &&
      (es.rank() != t.rank() || !drop_first(es).matches(Shape(t.shape().begin() + 1, t.shape().end()))))
    fail("tensor shape ", shape_str(t.shape()), " is not compatible with element_shape ", es.str());
  auto l = new_list(t.dtype(), es);
  int64_t start = 0;
  for (int64_t len : c.input(2).to_int_vector()) {
    if (len < 0 || start + len > t.dim(0))
      fail("attempting to slice [", start, ", ", start + len, "] from a tensor with length ", t.dim(0));
    l->tensors.push_back(slice_rows(t, start, len));
    start += len;
  }
  if (start != t.dim(0))
    fail("unused values in tensor: length of tensor ", t.dim(0), ", values used ", start);
  set_list(c, 0, l);
}

// ---- inference ----

void infer_handle(InferContext& c) { c.set_output(0, DType::kVariant, kScalar); }

void infer_item(InferContext& c, size_t out, size_t shape_input) {
  c.set_output(out, c.attr<DType>("element_dtype"), shape_from_known(c, shape_input));
}

void infer_stack(InferContext& c) {
  int64_t n = c.attr_or<int64_t>("num_elements", -1);
  c.set_output(0, c.attr<DType>("element_dtype"), prepend(n < 0 ? -1 : n, shape_from_known(c, 1)));
}

void infer_gather(InferContext& c) {
  const PartialShape& idx = c.input(1).shape;
  int64_t n = idx.fully_known() ? num_elements(idx.dims) : -1;
  c.set_output(0, c.attr<DType>("element_dtype"), prepend(n, shape_from_known(c, 2)));
}

void infer_concat(InferContext& c, const PartialShape& s) {
  PartialShape inner = drop_first(s);
  c.set_output(0, c.attr<DType>("element_dtype"), prepend(-1, inner));
  c.set_output(1, DType::kInt64, PartialShape(std::vector<int64_t>{-1}));
}

// ---- gradients (ir/grad.h) ------------------------------------------------------------------
// A list's gradient is a list of its items' gradients (unset items: zeros). The sweep sums
// several gradients of one list with AddN and makes absent ones with ZerosLike, which handle
// lists as TF's do.

// Shape of `v` without its first dim, as the element_shape operand of a list op.
Value inner_shape(GradContext& c, Value v) {
  return c.op("Slice", {c.shape(v), c.ints({1}), c.ints({-1})}, {{"T", DType::kInt32}, {"Index", DType::kInt32}});
}

AttrMap list_attrs(const GradContext& c) { return {{"element_dtype", c.node.attr<DType>("element_dtype")}}; }

// TensorListFromTensor(tensor, element_shape): the items' gradients stacked back.
GradList grad_from_tensor(GradContext& c) {
  GradList out(c.node.inputs.size());
  AttrMap a = list_attrs(c);
  a["num_elements"] = int64_t{-1};
  out[0] = c.op("TensorListStack", {c.dy(), inner_shape(c, c.x(0))}, a);
  return out;
}

// TensorListStack(list, element_shape): the rows of dy as a list.
GradList grad_stack(GradContext& c) {
  GradList out(c.node.inputs.size());
  AttrMap a = list_attrs(c);
  a["shape_type"] = DType::kInt32;
  out[0] = c.op("TensorListFromTensor", {c.dy(), inner_shape(c, c.dy())}, a);
  return out;
}

// TensorListGetItem(list, index, element_shape): dy at `index` of a list of unset items.
GradList grad_get_item(GradContext& c) {
  GradList out(c.node.inputs.size());
  AttrMap a = list_attrs(c);
  Value len = c.op("TensorListLength", {c.x(0)}, {});
  AttrMap ra = a;
  ra["shape_type"] = DType::kInt32;
  Value empty = c.op("TensorListReserve", {c.shape(c.dy()), len}, ra);
  out[0] = c.op("TensorListSetItem", {empty, c.x(1), c.dy()}, a);
  return out;
}

// TensorListSetItem(list, index, item): the item's gradient is read from dy; the list's is dy
// with that item zeroed (the old item was overwritten).
GradList grad_set_item(GradContext& c) {
  GradList out(c.node.inputs.size());
  AttrMap a = list_attrs(c);
  if (c.needs(0)) out[0] = c.op("TensorListSetItem", {c.dy(), c.x(1), c.zeros_like(c.x(2))}, a);
  if (c.needs(2)) out[2] = c.op("TensorListGetItem", {c.dy(), c.x(1), c.shape(c.x(2))}, a);
  return out;
}

// TensorListPushBack(list, tensor): pop dy's last item.
GradList grad_push_back(GradContext& c) {
  GradList out(c.node.inputs.size());
  Node* pop = c.emit("TensorListPopBack", {c.dy(), c.shape(c.x(1))}, list_attrs(c));
  out[0] = pop->out(0);
  out[1] = pop->out(1);
  return out;
}

// TensorListPopBack(list, element_shape) -> (list, tensor): push the tensor's gradient back.
GradList grad_pop_back(GradContext& c) {
  GradList out(c.node.inputs.size());
  out[0] = c.op("TensorListPushBack", {c.dy(0), c.dy(1)}, list_attrs(c));
  return out;
}

// TensorListGather(list, indices, element_shape): rows of dy summed into their items
// (ScatterNd adds repeated indices), as a list as long as the input.
GradList grad_gather(GradContext& c) {
  GradList out(c.node.inputs.size());
  Value len = c.op("TensorListLength", {c.x(0)}, {});
  Value inner = inner_shape(c, c.dy());
  Value shape = c.op("ConcatV2", {c.op("Reshape", {len, c.ints({1})}, {{"T", DType::kInt32}, {"Tshape", DType::kInt32}}),
                                  inner, c.int_scalar(0)},
                     {{"T", DType::kInt32}, {"N", int64_t{2}}, {"Tidx", DType::kInt32}});
  DType it = c.dtype(c.x(1));
  Value idx = c.op("Reshape", {c.x(1), c.ints({-1, 1})}, {{"T", it}, {"Tshape", DType::kInt32}});
  Value rows = c.op("ScatterNd", {idx, c.dy(), c.cast(shape, it)}, {{"T", c.dtype(c.dy())}, {"Tindices", it}});
  AttrMap a = list_attrs(c);
  a["shape_type"] = DType::kInt32;
  out[0] = c.op("TensorListFromTensor", {rows, inner}, a);
  return out;
}

// TensorListScatter(V2)(tensor, indices, element_shape[, num_elements]): the rows' gradients
// gathered from dy.
GradList grad_scatter(GradContext& c) {
  GradList out(c.node.inputs.size());
  AttrMap a = {{"element_dtype", c.dtype(c.x(0))}};
  out[0] = c.op("TensorListGather", {c.dy(), c.x(1), inner_shape(c, c.x(0))}, a);
  return out;
}

// TensorListScatterIntoExistingList(list, tensor, indices): the overwritten items get zero.
GradList grad_scatter_existing(GradContext& c) {
  GradList out(c.node.inputs.size());
  AttrMap a = {{"element_dtype", c.dtype(c.x(1))}};
  if (c.needs(0)) out[0] = c.op("TensorListScatterIntoExistingList", {c.dy(), c.zeros_like(c.x(1)), c.x(2)}, a);
  if (c.needs(1)) out[1] = c.op("TensorListGather", {c.dy(), c.x(2), inner_shape(c, c.x(1))}, a);
  return out;
}

}  // namespace

void register_tensor_list_ops(OpRegistry& r) {
  r.add({.name = "EmptyTensorList", .infer = infer_handle, .compute = empty_kernel});
  r.add({.name = "TensorListReserve", .infer = infer_handle, .compute = reserve_kernel});
  add_with_grad(r, {.name = "TensorListFromTensor", .infer = infer_handle, .compute = from_tensor_kernel},
                grad_from_tensor);
  add_with_grad(r, {.name = "TensorListGetItem", .attr_defaults = {{"Tshape", DType::kInt32}},
                    .infer = [](InferContext& c) { infer_item(c, 0, 2); }, .compute = get_item_kernel},
                grad_get_item);
  add_with_grad(r, {.name = "TensorListSetItem", .attr_defaults = {{"resize_if_index_out_of_bounds", false}},
                    .infer = infer_handle, .compute = set_item_kernel},
                grad_set_item);
  add_with_grad(r, {.name = "TensorListStack", .attr_defaults = {{"num_elements", int64_t{-1}}},
                    .infer = infer_stack, .compute = stack_kernel},
                grad_stack);
  r.add({.name = "TensorListLength",
         .infer = [](InferContext& c) { c.set_output(0, DType::kInt32, kScalar); },
         .compute = length_kernel});
  r.add({.name = "TensorListElementShape",
         .infer = [](InferContext& c) { c.set_output(0, c.attr<DType>("shape_type"), PartialShape::unknown()); },
         .compute = element_shape_kernel});
  add_with_grad(r, {.name = "TensorListPushBack", .infer = infer_handle, .compute = push_back_kernel},
                grad_push_back);
  add_with_grad(r, {.name = "TensorListPopBack", .output_args = {{"output_handle"}, {"tensor"}},
                    .infer = [](InferContext& c) {
                      c.set_output(0, DType::kVariant, kScalar);
                      infer_item(c, 1, 1);
                    },
                    .compute = pop_back_kernel},
                grad_pop_back);
  r.add({.name = "TensorListResize", .infer = infer_handle, .compute = resize_kernel});
  add_with_grad(r, {.name = "TensorListGather", .infer = infer_gather, .compute = gather_kernel}, grad_gather);
  add_with_grad(r, {.name = "TensorListScatter", .infer = infer_handle,
                    .compute = [](KernelContext& c) { scatter_kernel(c, false); }},
                grad_scatter);
  add_with_grad(r, {.name = "TensorListScatterV2", .infer = infer_handle,
                    .compute = [](KernelContext& c) { scatter_kernel(c, true); }},
                grad_scatter);
  add_with_grad(r, {.name = "TensorListScatterIntoExistingList", .infer = infer_handle,
                    .compute = scatter_existing_kernel},
                grad_scatter_existing);
  r.add({.name = "TensorListConcatV2", .output_args = {{"tensor"}, {"lengths"}},
         .infer = [](InferContext& c) { infer_concat(c, shape_from_known(c, 1)); },
         .compute = [](KernelContext& c) {
           concat(c, shape_from_tensor(c.input(1)), c.input(2).to_int_vector());
         }});
  r.add({.name = "TensorListConcat", .attr_defaults = {{"element_shape", PartialShape::unknown()}},
         .output_args = {{"tensor"}, {"lengths"}},
         .infer = [](InferContext& c) { infer_concat(c, c.attr<PartialShape>("element_shape")); },
         .compute = [](KernelContext& c) { concat(c, c.attr<PartialShape>("element_shape"), {}); }});
  r.add({.name = "TensorListSplit", .infer = infer_handle, .compute = split_kernel});
}

}  // namespace tessera
