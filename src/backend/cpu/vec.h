// Our own vectorised float32 loops, compiled three times (vec_avx512.cc, vec_avx2.cc with
// per-file -m flags, vec_scalar.cc with none) from one template (vec_impl.h); vec_table(isa)
// picks the build at run time. Every entry works on one contiguous row; callers split work
// across threads.
#pragma once
#include <cstdint>
#include <string>

#include "backend/cpu/isa.h"

namespace tessera::cpu {

enum class UnaryOp {
  kIdentity, kNeg, kAbs, kExp, kLog, kSqrt, kRsqrt, kSquare, kReciprocal, kTanh, kSigmoid, kRelu,
  kRelu6, kElu, kSelu, kErf, kSoftplus, kFloor, kCeil, kLeakyRelu, kGeluExact, kGeluTanh, kSwish,
  kErfc, kLogicalNot,
};
// Comparisons and logical ops work on floats holding 0/1 (how TsElementwise programs keep
// bool temporaries) and produce 0/1.
enum class BinaryOp {
  kAdd, kSub, kMul, kDiv, kMax, kMin, kPow, kSquaredDifference,
  kGreater, kGreaterEqual, kLess, kLessEqual, kEqual, kNotEqual, kLogicalAnd, kLogicalOr,
};
enum class ReduceOp { kSum, kMax, kMin };

// TF op name -> op ("Exp" -> kExp; also "GeluExact", "GeluTanh", "Swish"); false if unknown.
bool unary_op_from_name(const std::string& name, UnaryOp* op);
bool binary_op_from_name(const std::string& name, BinaryOp* op);

struct VecTable {
  // y[i] = op(x[i]); alpha is LeakyRelu's slope.
  void (*unary)(UnaryOp op, const float* x, float* y, int64_t n, float alpha);
  // y[i] = op(a[i or 0], b[i or 0]): a_scalar/b_scalar broadcast element 0.
  void (*binary)(BinaryOp op, const float* a, bool a_scalar, const float* b, bool b_scalar, float* y, int64_t n);
  // y[i] = c[i or 0] != 0 ? a[i or 0] : b[i or 0] (SelectV2 on a 0/1 condition).
  void (*select)(const float* c, bool c_scalar, const float* a, bool a_scalar, const float* b, bool b_scalar,
                 float* y, int64_t n);
  // One row of softmax (log-softmax when `log`).
  void (*softmax)(const float* x, float* y, int64_t n, bool log);
  float (*reduce)(ReduceOp op, const float* x, int64_t n);
  // y = (x - mean) / sqrt(var + eps) * gamma + beta over one row.
  void (*layer_norm)(const float* x, const float* gamma, const float* beta, float* y, int64_t n, float eps);
};

const VecTable& vec_table(Isa isa);

// Per-ISA builds (each defined in its own file).
const VecTable& vec_table_scalar();
const VecTable& vec_table_avx2();
const VecTable& vec_table_avx512();

}  // namespace tessera::cpu
