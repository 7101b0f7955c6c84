#include "backend/cpu/elementwise_jit.h"

#include <xbyak/xbyak.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <map>

#include "backend/cpu/isa.h"

namespace tessera::cpu {

namespace {

using Xbyak::Zmm;

struct Unsupported {};  // thrown while generating; compile() answers nullptr

// vcmpps predicates, with C++'s NaN behaviour (ordered for < <= > >= ==, unordered for !=).
constexpr uint8_t kEq = 0x00, kLt = 0x11, kLe = 0x12, kNe = 0x04, kUnord = 0x03, kGe = 0x1D, kGt = 0x1E;

class Generator : public Xbyak::CodeGenerator {
 public:
  Generator(const std::vector<Instr>& program, const std::vector<int>& outputs, const std::vector<char>& scalar)
      : Xbyak::CodeGenerator(16384, Xbyak::DontSetProtectRWE), program_(program), outputs_(outputs),
        scalar_(scalar) {
    liveness();
    emit();
  }

 private:
  // ---- registers ----
  Zmm alloc() {
    for (int i = 0; i < 32; ++i)
      if (free_ & (1u << i)) {
        free_ &= ~(1u << i);
        return Zmm(i);
      }
    throw Unsupported{};
  }
  void release(const Zmm& z) { free_ |= 1u << z.getIdx(); }

  // A float literal as a broadcast memory operand (the constant table follows the code).
  Xbyak::Address cst(float v) { return ptr_b[rcx + 4 * constant(std::bit_cast<uint32_t>(v))]; }
  Xbyak::Address csti(uint32_t bits) { return ptr_b[rcx + 4 * constant(bits)]; }
  Xbyak::Address cst32(float v) { return dword[rcx + 4 * constant(std::bit_cast<uint32_t>(v))]; }
  int constant(uint32_t bits) {
    auto [it, fresh] = const_index_.emplace(bits, static_cast<int>(consts_.size()));
    if (fresh) consts_.push_back(bits);
    return it->second;
  }
  Zmm splat(float v) {
    Zmm z = alloc();
    vbroadcastss(z, cst32(v));
    return z;
  }

  // ---- liveness: the instruction after which each entry / input is dead ----
  void liveness() {
    const size_t n_in = scalar_.size();
    last_entry_.assign(program_.size(), -1);
    last_input_.assign(n_in, -1);
    for (size_t i = 0; i < program_.size(); ++i)
      for (const Operand* o : operands_of(program_[i])) {
        if (program_[i].kind == Instr::kFill) continue;  // the operand only gives the shape
        if (o->kind == Operand::kTemp) last_entry_[o->index] = static_cast<int>(i);
        if (o->kind == Operand::kInput) {
          if (static_cast<size_t>(o->index) >= n_in) throw Unsupported{};
          last_input_[o->index] = static_cast<int>(i);
        }
      }
  }

  // ---- the function ----
  void emit() {
    const Xbyak::Reg64 pool[] = {r8, r9, r10, r11, rbx, rbp, r12, r13, r14, r15};
    const size_t n_in = scalar_.size();
    size_t used = 0;
    in_ptr_.assign(n_in, Xbyak::Reg64());
    for (size_t j = 0; j < n_in; ++j)
      if (!scalar_[j] && last_input_[j] >= 0) {
        if (used == std::size(pool)) throw Unsupported{};
        in_ptr_[j] = pool[used++];
      }
    for (size_t k = 0; k < outputs_.size(); ++k) {
      if (used == std::size(pool)) throw Unsupported{};
      out_ptr_.push_back(pool[used++]);
    }
    std::vector<Xbyak::Reg64> saved;
    for (size_t i = 0; i < used; ++i)
      if (pool[i].getIdx() == rbx.getIdx() || pool[i].getIdx() == rbp.getIdx() || pool[i].getIdx() >= 12)
        saved.push_back(pool[i]);
    for (const auto& r : saved) push(r);
    // rdi = in, rsi = out, rdx = n. Scalars are broadcast once per call (one value per row).
    scalar_reg_.assign(n_in, -1);
    for (size_t j = 0; j < n_in; ++j) {
      if (last_input_[j] < 0) continue;
      if (scalar_[j]) {
        Zmm z = alloc();
        mov(rcx, ptr[rdi + 8 * j]);
        vbroadcastss(z, dword[rcx]);
        scalar_reg_[j] = z.getIdx();
      } else {
        mov(in_ptr_[j], ptr[rdi + 8 * j]);
      }
    }
    for (size_t k = 0; k < outputs_.size(); ++k) mov(out_ptr_[k], ptr[rsi + 8 * k]);
    Xbyak::Label table, loop, tail, done;
    lea(rcx, ptr[rip + table]);
    xor_(eax, eax);  // byte offset into every stream
    L(loop);
    cmp(rdx, 16);
    jl(tail, T_NEAR);
    body(false);
    add(rax, 64);
    sub(rdx, 16);
    jmp(loop, T_NEAR);
    L(tail);
    test(rdx, rdx);
    jz(done, T_NEAR);
    mov(edi, 1);
    shlx(edi, edi, edx);
    dec(edi);
    kmovw(k1, edi);
    body(true);
    L(done);
    vzeroupper();
    for (size_t i = saved.size(); i-- > 0;) pop(saved[i]);
    ret();
    align(64);
    L(table);
    for (uint32_t c : consts_) dd(c);
    if (consts_.empty()) dd(0);
  }

  // One vector of every stream (the last `rdx` < 16 lanes under k1 when masked).
  void body(bool masked) {
    const uint32_t free_before = free_;
    masked_ = masked;
    entry_reg_.assign(program_.size(), -1);
    input_reg_.assign(scalar_.size(), -1);
    for (size_t i = 0; i < program_.size(); ++i) {
      Zmm d = alloc();
      instruction(program_[i], d);
      entry_reg_[i] = d.getIdx();
      for (size_t k = 0; k < outputs_.size(); ++k)
        if (outputs_[k] == static_cast<int>(i)) {
          if (masked) vmovups(ptr[out_ptr_[k] + rax] | k1, d);
          else vmovups(ptr[out_ptr_[k] + rax], d);
        }
      // Free what this instruction read for the last time, and its own result if unread.
      for (size_t e = 0; e <= i; ++e)
        if (entry_reg_[e] >= 0 && last_entry_[e] <= static_cast<int>(i)) {
          release(Zmm(entry_reg_[e]));
          entry_reg_[e] = -1;
        }
      for (size_t j = 0; j < scalar_.size(); ++j)
        if (input_reg_[j] >= 0 && last_input_[j] <= static_cast<int>(i)) {
          release(Zmm(input_reg_[j]));
          input_reg_[j] = -1;
        }
    }
    free_ = free_before;
  }

  // The register holding an operand; a literal is broadcast into a scratch register the
  // caller releases (`scratch` set).
  Zmm reg(const Operand& o, std::vector<Zmm>& scratch) {
    switch (o.kind) {
      case Operand::kTemp: return Zmm(entry_reg_[o.index]);
      case Operand::kLiteral: {
        Zmm z = splat(o.literal);
        scratch.push_back(z);
        return z;
      }
      case Operand::kInput: {
        if (scalar_[o.index]) return Zmm(scalar_reg_[o.index]);
        if (input_reg_[o.index] < 0) {
          Zmm z = alloc();
          if (masked_) vmovups(z | k1 | T_z, ptr[in_ptr_[o.index] + rax]);
          else vmovups(z, ptr[in_ptr_[o.index] + rax]);
          input_reg_[o.index] = z.getIdx();
        }
        return Zmm(input_reg_[o.index]);
      }
    }
    throw Unsupported{};
  }
  // A second source: literals stay in memory (embedded broadcast). The reference is good
  // until the next call.
  const Xbyak::Operand& src(const Operand& o, std::vector<Zmm>& scratch) {
    if (o.kind == Operand::kLiteral) {
      src_addr_ = cst(o.literal);
      return src_addr_;
    }
    src_zmm_ = reg(o, scratch);
    return src_zmm_;
  }

  void instruction(const Instr& in, const Zmm& d) {
    std::vector<Zmm> scratch;
    switch (in.kind) {
      case Instr::kFill: vbroadcastss(d, cst32(in.alpha)); break;
      case Instr::kUnary: unary(in.uop, reg(in.a, scratch), d, in.alpha); break;
      case Instr::kBinary: binary(in, d, scratch); break;
      case Instr::kSelect: {
        // d = c != 0 ? a : b
        Zmm c = reg(in.a, scratch);
        vcmpps(k4, c, cst(0.f), kNe);
        if (in.c.kind == Operand::kLiteral && in.c.literal == 0.f && !std::signbit(in.c.literal)) {
          Zmm a = reg(in.b, scratch);
          vmovaps(d | k4 | T_z, a);
        } else {
          Zmm b = reg(in.c, scratch);
          vblendmps(d | k4, b, src(in.b, scratch));
        }
        break;
      }
    }
    for (const Zmm& z : scratch) release(z);
  }

  void binary(const Instr& in, const Zmm& d, std::vector<Zmm>& scratch) {
    const BinaryOp op = in.bop;
    const bool commutes = op == BinaryOp::kAdd || op == BinaryOp::kMul || op == BinaryOp::kEqual ||
                          op == BinaryOp::kNotEqual || op == BinaryOp::kLogicalAnd;
    const Operand* x = &in.a;
    const Operand* y = &in.b;
    if (commutes && x->kind == Operand::kLiteral && y->kind != Operand::kLiteral) std::swap(x, y);
    auto compare = [&](uint8_t pred) {
      Zmm a = reg(*x, scratch);
      vcmpps(k4, a, src(*y, scratch), pred);
      vbroadcastss(d | k4 | T_z, cst32(1.f));
    };
    switch (op) {
      case BinaryOp::kAdd: vaddps(d, reg(*x, scratch), src(*y, scratch)); break;
      case BinaryOp::kSub: vsubps(d, reg(*x, scratch), src(*y, scratch)); break;
      case BinaryOp::kMul: vmulps(d, reg(*x, scratch), src(*y, scratch)); break;
      case BinaryOp::kDiv: vdivps(d, reg(*x, scratch), src(*y, scratch)); break;
      case BinaryOp::kMax:
      case BinaryOp::kMin: {
        // a > b (a < b) or a is NaN ? a : b: NaN propagates from either side, as in TF.
        Zmm a = reg(*x, scratch);
        Zmm b = reg(*y, scratch);
        vcmpps(k4, a, b, op == BinaryOp::kMax ? kGt : kLt);
        vcmpps(k5, a, a, kUnord);
        korw(k4, k4, k5);
        vblendmps(d | k4, b, a);
        break;
      }
      case BinaryOp::kSquaredDifference:
        vsubps(d, reg(*x, scratch), src(*y, scratch));
        vmulps(d, d, d);
        break;
      case BinaryOp::kGreater: compare(kGt); break;
      case BinaryOp::kGreaterEqual: compare(kGe); break;
      case BinaryOp::kLess: compare(kLt); break;
      case BinaryOp::kLessEqual: compare(kLe); break;
      case BinaryOp::kEqual: compare(kEq); break;
      case BinaryOp::kNotEqual: compare(kNe); break;
      case BinaryOp::kLogicalAnd: vmulps(d, reg(*x, scratch), src(*y, scratch)); break;
      case BinaryOp::kLogicalOr: vmaxps(d, reg(*x, scratch), src(*y, scratch)); break;  // a > b ? a : b
      case BinaryOp::kPow: throw Unsupported{};
    }
  }

  void unary(UnaryOp op, const Zmm& x, const Zmm& d, float alpha) {
    switch (op) {
      case UnaryOp::kIdentity: vmovaps(d, x); return;
      case UnaryOp::kNeg: vpxord(d, x, csti(0x80000000u)); return;
      case UnaryOp::kAbs: vpandd(d, x, csti(0x7fffffffu)); return;
      case UnaryOp::kExp: exp(x, d); return;
      case UnaryOp::kSqrt: vsqrtps(d, x); return;
      case UnaryOp::kRsqrt: {
        Zmm s = alloc();
        vsqrtps(s, x);
        divide(1.f, s, d, d);
        release(s);
        return;
      }
      case UnaryOp::kSquare: vmulps(d, x, x); return;
      case UnaryOp::kReciprocal:
        divide(1.f, x, d, d);
        return;
      case UnaryOp::kTanh: tanh(x, d); return;
      case UnaryOp::kSigmoid: sigmoid(x, d); return;
      case UnaryOp::kRelu: vmaxps(d, x, cst(0.f)); return;  // x > 0 ? x : 0
      case UnaryOp::kRelu6:
        vmaxps(d, x, cst(0.f));
        vminps(d, d, cst(6.f));  // r < 6 ? r : 6
        return;
      case UnaryOp::kElu:
      case UnaryOp::kSelu: {
        // x > 0 ? s·x : s·a·(e^x − 1)
        const bool selu = op == UnaryOp::kSelu;
        exp(x, d);
        vsubps(d, d, cst(1.f));
        if (selu) vmulps(d, d, cst(1.05070098735548f * 1.67326324235438f));
        vcmpps(k4, x, cst(0.f), kGt);
        if (selu) vmulps(d | k4, x, cst(1.05070098735548f));
        else vmovaps(d | k4, x);
        return;
      }
      case UnaryOp::kErf: erf(x, d); return;
      case UnaryOp::kFloor: vrndscaleps(d, x, 0x09); return;
      case UnaryOp::kCeil: vrndscaleps(d, x, 0x0A); return;
      case UnaryOp::kLeakyRelu:
        vmulps(d, x, cst(alpha));
        vcmpps(k4, x, cst(0.f), kGt);
        vmovaps(d | k4, x);
        return;
      case UnaryOp::kGeluExact: {
        // 0.5·x·(1 + erf(x/√2))
        Zmm t = alloc();
        vmulps(t, x, cst(0.707106781f));
        erf(t, d);
        vaddps(d, d, cst(1.f));
        vmulps(t, x, cst(0.5f));
        vmulps(d, d, t);
        release(t);
        return;
      }
      case UnaryOp::kGeluTanh: {
        // 0.5·x·(1 + tanh(0.797884561·(x + 0.044715·x³)))
        Zmm t = alloc();
        vmulps(t, x, x);
        vmulps(t, t, x);
        vmulps(t, t, cst(0.044715f));
        vaddps(t, t, x);
        vmulps(t, t, cst(0.797884561f));
        tanh(t, d);
        vaddps(d, d, cst(1.f));
        vmulps(t, x, cst(0.5f));
        vmulps(d, d, t);
        release(t);
        return;
      }
      case UnaryOp::kSwish: sigmoid(x, d); vmulps(d, d, x); return;
      case UnaryOp::kErfc: erfc(x, d); return;
      case UnaryOp::kLogicalNot:
        vbroadcastss(d, cst32(1.f));
        vsubps(d, d, x);
        return;
      case UnaryOp::kLog:
      case UnaryOp::kSoftplus: throw Unsupported{};
    }
    throw Unsupported{};
  }

  // d = num / den, through `scratch` (which may be d; it must not be den).
  void divide(float num, const Zmm& den, const Zmm& d, const Zmm& scratch) {
    if (scratch.getIdx() == den.getIdx()) throw Unsupported{};
    vbroadcastss(scratch, cst32(num));
    vdivps(d, scratch, den);
  }
  // d = num / (e^a + 1), the tail of sigmoid and tanh; `a` is overwritten.
  void over_exp_plus_one(float num, const Zmm& a, const Zmm& d) {
    exp(a, d);
    vaddps(d, d, cst(1.f));
    vbroadcastss(a, cst32(num));
    vdivps(d, a, d);
  }

  // p = c[0]; p = p·t + c[i]: Horner with the coefficients in memory.
  void horner(const Zmm& p, const Zmm& t, std::initializer_list<float> c) {
    auto it = c.begin();
    vbroadcastss(p, cst32(*it++));
    for (; it != c.end(); ++it) vfmadd213ps(p, t, cst(*it));
  }

  // vexp: clamp to [-87.3, 88.7], 2^n · e^r with a degree-7 Taylor polynomial; +inf above
  // 88.7, NaN stays NaN. d must differ from x.
  void exp(const Zmm& x, const Zmm& d) {
    if (d.getIdx() == x.getIdx()) throw Unsupported{};
    Zmm c = alloc(), n = alloc(), r = alloc();
    vmaxps(c, x, cst(-87.3f));
    vminps(c, c, cst(88.7f));
    vmovaps(n, c);
    vbroadcastss(r, cst32(1.44269504f));
    vfmadd213ps(n, r, cst(0.5f));
    vrndscaleps(n, n, 0x09);
    vmovaps(r, c);
    vfnmadd231ps(r, n, cst(0.693359375f));
    vfmadd231ps(r, n, cst(2.12194440e-4f));
    horner(d, r, {1.f / 5040, 1.f / 720, 1.f / 120, 1.f / 24, 1.f / 6, 0.5f, 1.f, 1.f});
    vcvttps2dq(n, n);
    vpaddd(n, n, csti(127));
    vpslld(n, n, 23);
    vmulps(d, d, n);
    vcmpps(k2, x, cst(88.7f), kGt);
    vbroadcastss(d | k2, cst32(INFINITY));
    vcmpps(k3, x, x, kUnord);
    vmovaps(d | k3, x);
    release(c);
    release(n);
    release(r);
  }
  // 1 / (1 + e^{-x})
  void sigmoid(const Zmm& x, const Zmm& d) {
    Zmm t = alloc();
    vpxord(t, x, csti(0x80000000u));
    over_exp_plus_one(1.f, t, d);
    release(t);
  }

  // 1 − 2 / (e^{2|x|} + 1), negated for x < 0
  void tanh(const Zmm& x, const Zmm& d) {
    Zmm a = alloc();
    vpandd(a, x, csti(0x7fffffffu));
    vaddps(a, a, a);
    over_exp_plus_one(2.f, a, d);
    vbroadcastss(a, cst32(1.f));
    vsubps(d, a, d);
    vcmpps(k4, x, cst(0.f), kLt);
    vpxord(d | k4, d, csti(0x80000000u));
    release(a);
  }

  // Abramowitz & Stegun 7.1.26, as verf.
  void erf(const Zmm& x, const Zmm& d) {
    Zmm a = alloc(), t = alloc(), p = alloc();
    vpandd(a, x, csti(0x7fffffffu));
    vmulps(t, a, cst(0.3275911f));
    vaddps(t, t, cst(1.f));
    divide(1.f, t, t, p);
    horner(p, t, {1.061405429f, -1.453152027f, 1.421413741f, -0.284496736f, 0.254829592f});
    vmulps(p, p, t);
    vmulps(a, a, a);
    vpxord(a, a, csti(0x80000000u));
    exp(a, d);
    vmulps(d, d, p);
    vbroadcastss(p, cst32(1.f));
    vsubps(d, p, d);
    vcmpps(k4, x, cst(0.f), kLt);
    vpxord(d | k4, d, csti(0x80000000u));
    release(a);
    release(t);
    release(p);
  }

  // verfc: e^{-x²}·t·Q(t), t = 1/(1 + 0.4|x|), x² split into an exact head and a tail.
  void erfc(const Zmm& x, const Zmm& d) {
    Zmm a = alloc(), t = alloc(), q = alloc(), ah = alloc(), s = alloc();
    vpandd(a, x, csti(0x7fffffffu));
    vmulps(t, a, cst(0.4f));
    vaddps(t, t, cst(1.f));
    divide(1.f, t, t, q);
    horner(q, t, {-0.0308016296f, 0.204605147f, -0.514405906f, 0.568373203f, -0.301914394f, 0.281566918f,
                  0.126363024f, 0.215637669f, 0.224864468f, 0.22571148f});
    vmulps(q, q, t);  // t·Q(t); t is free from here
    vpandd(ah, a, csti(0xfffff000u));
    vsubps(s, a, ah);  // al
    vaddps(t, a, ah);
    vmulps(s, s, t);   // s = al·(a + ah)
    horner(t, s, {-1.f / 120, 1.f / 24, -1.f / 6, 0.5f, -1.f, 1.f});
    vmulps(s, ah, ah);
    vpxord(s, s, csti(0x80000000u));
    exp(s, d);
    vmulps(d, d, t);
    vmulps(d, d, q);
    vcmpps(k4, a, cst(9.34f), kGt);
    vpxord(d | k4, d, d);
    vcmpps(k4, x, cst(0.f), kLt);
    vbroadcastss(t, cst32(2.f));
    vsubps(d | k4, t, d);
    release(a);
    release(t);
    release(q);
    release(ah);
    release(s);
  }

  const std::vector<Instr>& program_;
  const std::vector<int>& outputs_;
  const std::vector<char>& scalar_;
  std::vector<int> last_entry_, last_input_;
  std::vector<Xbyak::Reg64> in_ptr_, out_ptr_;
  std::vector<int> scalar_reg_, entry_reg_, input_reg_;
  uint32_t free_ = 0xffffffffu;
  bool masked_ = false;
  std::vector<uint32_t> consts_;
  std::map<uint32_t, int> const_index_;
  Xbyak::Address src_addr_ = ptr[rcx];
  Zmm src_zmm_;
};

}  // namespace

struct ElementwiseJit::Code {
  std::unique_ptr<Generator> gen;
};

ElementwiseJit::ElementwiseJit(std::unique_ptr<Code> code) : code_(std::move(code)) {
  fn_ = code_->gen->getCode<ElementwiseFn>();
}
ElementwiseJit::~ElementwiseJit() = default;
size_t ElementwiseJit::code_bytes() const { return code_->gen->getSize(); }

std::unique_ptr<ElementwiseJit> ElementwiseJit::compile(const std::vector<Instr>& program,
                                                       const std::vector<int>& outputs,
                                                       const std::vector<char>& scalar) {
  if (detected_isa() != Isa::kAvx512 || program.empty() || outputs.empty()) return nullptr;
  for (int e : outputs)
    if (e < 0 || static_cast<size_t>(e) >= program.size()) return nullptr;
  try {
    auto code = std::make_unique<Code>();
    code->gen = std::make_unique<Generator>(program, outputs, scalar);
    code->gen->ready();
    code->gen->setProtectModeRE();
    return std::unique_ptr<ElementwiseJit>(new ElementwiseJit(std::move(code)));
  } catch (const Unsupported&) {
    return nullptr;
  } catch (const Xbyak::Error&) {
    return nullptr;
  }
}

}  // namespace tessera::cpu
