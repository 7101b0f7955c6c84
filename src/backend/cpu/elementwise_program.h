// A TsElementwise program (docs/fused_ops.md) parsed into instructions: shared by the
// block interpreter (kernels_elementwise.cc) and the AVX-512 code generator
// (elementwise_jit.cc), which must agree on what each entry means.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/cpu/vec.h"

namespace tessera::cpu {

struct Operand {
  enum Kind { kInput, kTemp, kLiteral } kind = kInput;
  int index = 0;
  float literal = 0;
};

struct Instr {
  enum Kind { kUnary, kBinary, kSelect, kFill } kind = kUnary;
  UnaryOp uop = UnaryOp::kIdentity;
  BinaryOp bop = BinaryOp::kAdd;
  float alpha = 0.2f;  // LeakyRelu slope; kFill: the value
  Operand a, b, c;     // kSelect: a ? b : c
};

// Parses TsElementwise's `program` (the op's inference has type-checked it); errors name the
// entry.
std::vector<Instr> parse_program(const std::vector<std::string>& program, int num_inputs);

// The block interpreter: runs the program over `len` elements one instruction at a time, each
// as one vector loop (vec.h). in[k]: input k's floats, or its one value when scalar[k];
// dst[i]: where entry i goes (len floats; exported entries straight into their outputs).
void interpret_block(const std::vector<Instr>& program, const VecTable& vec, const float* const* in,
                     const char* scalar, float* const* dst, int64_t len);

// The operands an instruction reads (a kFill's operand only gives the shape).
std::vector<const Operand*> operands_of(const Instr& in);

}  // namespace tessera::cpu
