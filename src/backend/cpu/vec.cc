#include "backend/cpu/vec.h"

#include <map>

namespace tessera::cpu {

bool unary_op_from_name(const std::string& name, UnaryOp* op) {
  static const std::map<std::string, UnaryOp> names = {
      {"Identity", UnaryOp::kIdentity}, {"Neg", UnaryOp::kNeg}, {"Abs", UnaryOp::kAbs},
      {"Exp", UnaryOp::kExp}, {"Log", UnaryOp::kLog}, {"Sqrt", UnaryOp::kSqrt},
      {"Rsqrt", UnaryOp::kRsqrt}, {"Square", UnaryOp::kSquare}, {"Reciprocal", UnaryOp::kReciprocal},
      {"Tanh", UnaryOp::kTanh}, {"Sigmoid", UnaryOp::kSigmoid}, {"Relu", UnaryOp::kRelu},
      {"Relu6", UnaryOp::kRelu6}, {"Elu", UnaryOp::kElu}, {"Selu", UnaryOp::kSelu}, {"Erf", UnaryOp::kErf},
      {"Softplus", UnaryOp::kSoftplus}, {"Floor", UnaryOp::kFloor}, {"Ceil", UnaryOp::kCeil},
      {"LeakyRelu", UnaryOp::kLeakyRelu}, {"GeluExact", UnaryOp::kGeluExact},
      {"GeluTanh", UnaryOp::kGeluTanh}, {"Swish", UnaryOp::kSwish}, {"Erfc", UnaryOp::kErfc},
      {"LogicalNot", UnaryOp::kLogicalNot}};
  auto it = names.find(name);
  if (it == names.end()) return false;
  *op = it->second;
  return true;
}

bool binary_op_from_name(const std::string& name, BinaryOp* op) {
  static const std::map<std::string, BinaryOp> names = {
      {"AddV2", BinaryOp::kAdd}, {"Add", BinaryOp::kAdd}, {"BiasAdd", BinaryOp::kAdd},
      {"Sub", BinaryOp::kSub}, {"Mul", BinaryOp::kMul}, {"RealDiv", BinaryOp::kDiv},
      {"Maximum", BinaryOp::kMax}, {"Minimum", BinaryOp::kMin}, {"Pow", BinaryOp::kPow},
      {"SquaredDifference", BinaryOp::kSquaredDifference}, {"Greater", BinaryOp::kGreater},
      {"GreaterEqual", BinaryOp::kGreaterEqual}, {"Less", BinaryOp::kLess}, {"LessEqual", BinaryOp::kLessEqual},
      {"Equal", BinaryOp::kEqual}, {"NotEqual", BinaryOp::kNotEqual}, {"LogicalAnd", BinaryOp::kLogicalAnd},
      {"LogicalOr", BinaryOp::kLogicalOr}};
  auto it = names.find(name);
  if (it == names.end()) return false;
  *op = it->second;
  return true;
}

const VecTable& vec_table(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return vec_table_avx512();
    case Isa::kAvx2: return vec_table_avx2();
    case Isa::kScalar: break;
  }
  return vec_table_scalar();
}

}  // namespace tessera::cpu
