// Batched-matrix layout ops: MatrixBandPart, MatrixDiag{,V2,V3}, MatrixDiagPart{,V2,V3},
// MatrixSetDiag{,V2,V3}. Diagonal d is the one with column - row == d; V3's `align` says how
// diagonals shorter than the longest are padded (V1/V2 are LEFT_LEFT).
#include <algorithm>

#include "ops/array_families.h"
#include "ops/array_util.h"

namespace tessera {
namespace {

using namespace ops::array;

// ---------------------------------------------------------------------------------------------
// MatrixBandPart.

void band_part_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  if (x.rank() < 2) fail("input must be at least 2-dim, received shape: ", shape_str(x.shape()));
  const int64_t rows = x.dim(x.rank() - 2), cols = x.dim(x.rank() - 1);
  const int64_t lower = scalar_operand(c.input(1), "num_lower"), upper = scalar_operand(c.input(2), "num_upper");
  if (lower > rows) fail("num_lower must be negative or less or equal to number of rows (", rows, ") got: ", lower);
  if (upper > cols) fail("num_upper must be negative or less or equal to number of columns (", cols, ") got: ", upper);
  Tensor out(x.dtype(), x.shape());
  const int64_t batch = rows * cols == 0 ? 0 : x.num_elements() / (rows * cols);
  with_elem_type(x.dtype(), [&]<typename E>() {
    const E* src = elems<E>(x);
    E* dst = elems<E>(out);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          const int64_t k = (b * rows + i) * cols + j;
          if ((lower < 0 || i - j <= lower) && (upper < 0 || j - i <= upper)) dst[k] = src[k];
        }
  });
  c.set_output(0, out);
}

// ---------------------------------------------------------------------------------------------
// Diagonal ops.

struct DiagBand {
  int64_t lower = 0, upper = 0;
  bool left_super = true, left_sub = true;  // alignment of super-/subdiagonals

  int64_t count() const { return upper - lower + 1; }
  static int64_t length(int64_t d, int64_t rows, int64_t cols) {
    return std::min(rows + std::min<int64_t>(0, d), cols - std::max<int64_t>(0, d));
  }
  // Where diagonal d's first element sits in a row of max_len entries.
  int64_t offset(int64_t d, int64_t rows, int64_t cols, int64_t max_len) const {
    if ((d >= 0 && left_super) || (d <= 0 && left_sub)) return 0;
    return max_len - length(d, rows, cols);
  }
};

bool ends_with(const std::string& s, const char* tail) {
  const size_t n = std::char_traits<char>::length(tail);
  return s.size() >= n && s.compare(s.size() - n, n, tail) == 0;
}
bool is_v3_name(const std::string& op) { return ends_with(op, "V3"); }
bool is_v3(const Node& node) { return is_v3_name(node.op); }
bool has_k(const Node& node) { return is_v3(node) || ends_with(node.op, "V2"); }

DiagBand diag_band(const Node& node, const Tensor* k) {
  DiagBand band;
  if (k) {
    std::vector<int64_t> v = read_ints(*k);
    if (k->rank() > 1 || v.empty() || v.size() > 2)
      fail("diag_index must be a scalar or vector with at most 2 elements, got shape ", shape_str(k->shape()));
    band.lower = v[0];
    band.upper = v.size() == 2 ? v[1] : v[0];
    if (band.lower > band.upper)
      fail("lower_diag_index must not be larger than upper_diag_index: ", band.lower, " > ", band.upper);
  }
  if (is_v3(node)) {
    const std::string align = node.attr_or<std::string>("align", "RIGHT_LEFT");
    if (align == "RIGHT_LEFT") band = {band.lower, band.upper, false, true};
    else if (align == "LEFT_RIGHT") band = {band.lower, band.upper, true, false};
    else if (align == "RIGHT_RIGHT") band = {band.lower, band.upper, false, false};
    else if (align != "LEFT_LEFT") fail("unknown align '", align, "'");
  }
  return band;
}

// The padding value operand (V2/V3), or null for zero.
const Tensor* padding_operand(KernelContext& c, size_t i) {
  if (!has_k(c.node)) return nullptr;
  const Tensor& p = c.input(i);
  if (p.num_elements() != 1) fail("padding_value must be a scalar, got shape ", shape_str(p.shape()));
  return &p;
}

template <typename E>
E fill_value(const Tensor* p) { return p ? elems<E>(*p)[0] : E{}; }

void matrix_diag_kernel(KernelContext& c) {
  const Tensor& diag = c.input(0);
  const bool k_given = has_k(c.node);
  const DiagBand band = diag_band(c.node, k_given ? &c.input(1) : nullptr);
  int64_t rows = k_given ? scalar_operand(c.input(2), "num_rows") : -1;
  int64_t cols = k_given ? scalar_operand(c.input(3), "num_cols") : -1;
  const Tensor* pad = padding_operand(c, 4);
  const int64_t n = band.count();
  if (diag.rank() < (n > 1 ? 2 : 1)) fail("diagonal must be at least ", n > 1 ? 2 : 1, "-dim");
  const int64_t max_len = diag.dim(diag.rank() - 1);
  if (n > 1 && diag.dim(diag.rank() - 2) != n)
    fail("The number of diagonals provided in the input does not match the lower_diag_index and "
         "upper_diag_index range.");
  const int64_t min_rows = max_len - std::min<int64_t>(band.upper, 0);
  const int64_t min_cols = max_len + std::max<int64_t>(band.lower, 0);
  if (rows == -1 && cols == -1) rows = cols = std::max(min_rows, min_cols);
  else if (rows == -1) rows = min_rows;
  else if (cols == -1) cols = min_cols;
  if (rows < min_rows) fail("The number of rows is too small.");
  if (cols < min_cols) fail("The number of columns is too small.");
  if (rows != min_rows && cols != min_cols)
    fail("The number of rows or columns is not consistent with the specified d_lower, d_upper, and diagonal.");
  Shape out_shape(diag.shape().begin(), diag.shape().end() - (n > 1 ? 2 : 1));
  const int64_t batch = num_elements(out_shape);
  out_shape.push_back(rows);
  out_shape.push_back(cols);
  Tensor out(diag.dtype(), out_shape);
  with_elem_type(diag.dtype(), [&]<typename E>() {
    const E* src = elems<E>(diag);
    E* dst = elems<E>(out);
    const E fill = fill_value<E>(pad);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j, ++dst) {
          const int64_t d = j - i;
          if (d < band.lower || d > band.upper) {
            *dst = fill;
            continue;
          }
          const int64_t t = j - std::max<int64_t>(d, 0) + band.offset(d, rows, cols, max_len);
          *dst = src[(b * n + (band.upper - d)) * max_len + t];
        }
  });
  c.set_output(0, out);
}

void check_band_in_matrix(const DiagBand& band, int64_t rows, int64_t cols) {
  if ((band.lower != 0 || band.upper != 0) &&
      (band.lower <= -rows || band.lower >= cols || band.upper <= -rows || band.upper >= cols))
    fail("diagonal indices [", band.lower, ", ", band.upper, "] out of bound for a ", rows, "x", cols, " matrix");
}

// The diagonals of matrix batch `x` selected by `band`: batch dims, then the diagonal count
// (only when more than one), then the longest diagonal's length. Shared by DiagPart/SetDiag.
struct DiagLayout {
  Shape shape;
  int64_t rows, cols, n, max_len, batch;
};
DiagLayout diag_layout(const Tensor& x, const DiagBand& band) {
  if (x.rank() < 2) fail("input must be at least 2-dim, received shape: ", shape_str(x.shape()));
  DiagLayout l;
  l.rows = x.dim(x.rank() - 2);
  l.cols = x.dim(x.rank() - 1);
  check_band_in_matrix(band, l.rows, l.cols);
  l.n = band.count();
  l.max_len = std::max<int64_t>(
      0, std::min(l.rows + std::min<int64_t>(band.upper, 0), l.cols - std::max<int64_t>(band.lower, 0)));
  l.shape.assign(x.shape().begin(), x.shape().end() - 2);
  l.batch = num_elements(l.shape);
  if (l.n > 1) l.shape.push_back(l.n);
  l.shape.push_back(l.max_len);
  return l;
}

void matrix_diag_part_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  const bool k_given = has_k(c.node);
  const DiagBand band = diag_band(c.node, k_given ? &c.input(1) : nullptr);
  const Tensor* pad = padding_operand(c, 2);
  const DiagLayout l = diag_layout(x, band);
  const int64_t rows = l.rows, cols = l.cols, n = l.n, max_len = l.max_len, batch = l.batch;
  const Shape& out_shape = l.shape;
  Tensor out(x.dtype(), out_shape);
  with_elem_type(x.dtype(), [&]<typename E>() {
    const E* src = elems<E>(x);
    E* dst = elems<E>(out);
    const E fill = fill_value<E>(pad);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t di = 0; di < n; ++di) {
        const int64_t d = band.upper - di;
        const int64_t len = DiagBand::length(d, rows, cols), off = band.offset(d, rows, cols, max_len);
        for (int64_t m = 0; m < max_len; ++m, ++dst) {
          const int64_t t = m - off;
          if (t < 0 || t >= len) {
            *dst = fill;
            continue;
          }
          const int64_t i = t - std::min<int64_t>(d, 0), j = t + std::max<int64_t>(d, 0);
          *dst = src[(b * rows + i) * cols + j];
        }
      }
  });
  c.set_output(0, out);
}

void matrix_set_diag_kernel(KernelContext& c) {
  const Tensor &x = c.input(0), &diag = c.input(1);
  const bool k_given = has_k(c.node);
  const DiagBand band = diag_band(c.node, k_given ? &c.input(2) : nullptr);
  const DiagLayout l = diag_layout(x, band);
  const int64_t rows = l.rows, cols = l.cols, n = l.n, max_len = l.max_len, batch = l.batch;
  const Shape& want = l.shape;
  if (diag.shape() != want)
    fail("diagonal must have shape ", shape_str(want), " for input of shape ", shape_str(x.shape()), ", got ",
         shape_str(diag.shape()));
  Tensor out = x.clone();
  with_elem_type(x.dtype(), [&]<typename E>() {
    const E* src = elems<E>(diag);
    E* dst = elems<E>(out);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t di = 0; di < n; ++di) {
        const int64_t d = band.upper - di;
        const int64_t len = DiagBand::length(d, rows, cols), off = band.offset(d, rows, cols, max_len);
        for (int64_t t = 0; t < len; ++t) {
          const int64_t i = t - std::min<int64_t>(d, 0), j = t + std::max<int64_t>(d, 0);
          dst[(b * rows + i) * cols + j] = src[(b * n + di) * max_len + t + off];
        }
      }
  });
  c.set_output(0, out);
}

// ---------------------------------------------------------------------------------------------
// Inference: exact when the band (and sizes) are known, else the rank where it is decided.

std::optional<DiagBand> known_band(InferContext& c, size_t k_input) {
  if (!has_k(c.node)) return DiagBand{};
  const Tensor* k = c.input_value(k_input);
  if (!k) return std::nullopt;
  return diag_band(c.node, k);
}

void infer_matrix_diag(InferContext& c) {
  const ValueInfo& diag = c.input(0);
  auto band = known_band(c, 1);
  if (!diag.shape.known_rank || !band) {
    c.set_output(0, diag.dtype, PartialShape::unknown());
    return;
  }
  const int64_t n = band->count();
  const int64_t r = diag.shape.rank();
  if (r < (n > 1 ? 2 : 1)) fail("diagonal must be at least ", n > 1 ? 2 : 1, "-dim");
  std::vector<int64_t> dims(diag.shape.dims.begin(), diag.shape.dims.end() - (n > 1 ? 2 : 1));
  int64_t rows = -1, cols = -1;
  const int64_t max_len = diag.shape.dims.back();
  auto given = [&](size_t i) -> int64_t {
    if (!has_k(c.node)) return -1;
    auto v = ops::known_ints(c, i);
    return v && v->size() == 1 ? (*v)[0] : -2;  // -2: not known at compile time
  };
  const int64_t gr = given(2), gc = given(3);
  if (max_len >= 0 && gr != -2 && gc != -2) {
    const int64_t min_rows = max_len - std::min<int64_t>(band->upper, 0);
    const int64_t min_cols = max_len + std::max<int64_t>(band->lower, 0);
    rows = gr, cols = gc;
    if (rows == -1 && cols == -1) rows = cols = std::max(min_rows, min_cols);
    else if (rows == -1) rows = min_rows;
    else if (cols == -1) cols = min_cols;
  } else {
    rows = gr >= 0 ? gr : -1;
    cols = gc >= 0 ? gc : -1;
  }
  dims.push_back(rows);
  dims.push_back(cols);
  c.set_output(0, diag.dtype, PartialShape(dims));
}

void infer_matrix_diag_part(InferContext& c) {
  const ValueInfo& x = c.input(0);
  auto band = known_band(c, 1);
  if (!x.shape.known_rank || !band) {
    c.set_output(0, x.dtype, PartialShape::unknown());
    return;
  }
  if (x.shape.rank() < 2) fail("input must be at least 2-dim, received shape: ", x.shape.str());
  std::vector<int64_t> dims(x.shape.dims.begin(), x.shape.dims.end() - 2);
  const int64_t rows = x.shape.dims[x.shape.rank() - 2], cols = x.shape.dims.back();
  if (band->count() > 1) dims.push_back(band->count());
  int64_t len = -1;
  if (rows >= 0 && cols >= 0)
    len = std::max<int64_t>(0, std::min(rows + std::min<int64_t>(band->upper, 0), cols - std::max<int64_t>(band->lower, 0)));
  dims.push_back(len);
  c.set_output(0, x.dtype, PartialShape(dims));
}

}  // namespace

void register_matrix_ops(OpRegistry& r) {
  auto same = [](InferContext& c) { ops::infer_same_as_input(c); };
  const AttrMap align = {{"align", std::string("RIGHT_LEFT")}};
  r.add({.name = "MatrixBandPart", .attr_defaults = {{"Tindex", DType::kInt64}}, .infer = same,
         .compute = band_part_kernel});
  for (const char* name : {"MatrixDiag", "MatrixDiagV2", "MatrixDiagV3"})
    r.add({.name = name, .attr_defaults = is_v3_name(name) ? align : AttrMap{}, .infer = infer_matrix_diag,
           .compute = matrix_diag_kernel});
  for (const char* name : {"MatrixDiagPart", "MatrixDiagPartV2", "MatrixDiagPartV3"})
    r.add({.name = name, .attr_defaults = is_v3_name(name) ? align : AttrMap{}, .infer = infer_matrix_diag_part,
           .compute = matrix_diag_part_kernel});
  for (const char* name : {"MatrixSetDiag", "MatrixSetDiagV2", "MatrixSetDiagV3"})
    r.add({.name = name, .attr_defaults = is_v3_name(name) ? align : AttrMap{}, .infer = same,
           .compute = matrix_set_diag_kernel});
}

}  // namespace tessera
