// Machine code for one TsElementwise program (AVX-512, generated with Xbyak). The block
// interpreter in kernels_elementwise.cc runs each instruction as its own loop over a block
// and goes through L1 between instructions; this runs the whole program on one vector of 16
// floats at a time with every temporary in a register, so a chain like the Adam update costs
// its loads and stores plus its arithmetic. Entries mean exactly what the interpreter
// computes (vec_impl.h); the tests compare the two.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/cpu/elementwise_program.h"

namespace tessera::cpu {

// out[k][i] = entry outputs[k] of the program at element i, for i < n. in[j] points at input
// j's n floats, or at its one value when scalar[j] (a value broadcast along the row).
// Output 0 may alias an input the program no longer reads after the entry it exports
// (ElementwiseKernel::in_place): every output is stored right after its entry is computed.
using ElementwiseFn = void (*)(const float* const* in, float* const* out, int64_t n);

class ElementwiseJit {
 public:
  // nullptr when this processor lacks AVX-512, the program uses an entry the generator does
  // not emit (Log, Softplus, Pow), needs more than 32 vector registers or 10 streams.
  static std::unique_ptr<ElementwiseJit> compile(const std::vector<Instr>& program, const std::vector<int>& outputs,
                                                 const std::vector<char>& scalar);
  ~ElementwiseJit();
  ElementwiseFn fn() const { return fn_; }
  size_t code_bytes() const;

 private:
  struct Code;
  explicit ElementwiseJit(std::unique_ptr<Code> code);
  std::unique_ptr<Code> code_;
  ElementwiseFn fn_ = nullptr;
};

}  // namespace tessera::cpu
