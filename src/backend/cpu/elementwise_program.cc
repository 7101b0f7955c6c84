#include "backend/cpu/elementwise_program.h"

#include <algorithm>
#include <cstdlib>

#include "support/error.h"

namespace tessera::cpu {

namespace {

Operand parse_operand(const std::string& s, int num_inputs, int num_prior) {
  TS_CHECK(!s.empty(), "empty operand");
  Operand o;
  if (s[0] == '$' || s[0] == '%') {
    char* end = nullptr;
    long i = std::strtol(s.c_str() + 1, &end, 10);
    TS_CHECK(end && *end == 0 && s.size() > 1, "bad operand '", s, "'");
    o.kind = s[0] == '$' ? Operand::kInput : Operand::kTemp;
    o.index = static_cast<int>(i);
    TS_CHECK(i >= 0 && i < (s[0] == '$' ? num_inputs : num_prior), "operand '", s, "' out of range");
    return o;
  }
  char* end = nullptr;
  o.kind = Operand::kLiteral;
  o.literal = std::strtof(s.c_str(), &end);
  TS_CHECK(end && *end == 0, "bad operand '", s, "'");
  return o;
}

}  // namespace

std::vector<Instr> parse_program(const std::vector<std::string>& program, int num_inputs) {
  std::vector<Instr> out;
  for (const std::string& line : program) {
    std::vector<std::string> tok;
    size_t p = 0;
    while (p < line.size()) {
      size_t q = line.find(' ', p);
      if (q == std::string::npos) q = line.size();
      if (q > p) tok.push_back(line.substr(p, q - p));
      p = q + 1;
    }
    TS_CHECK(!tok.empty(), "empty program entry");
    Instr in;
    const int prior = static_cast<int>(out.size());
    auto operand = [&](size_t i) { return parse_operand(tok[i], num_inputs, prior); };
    if (tok[0] == "LeakyRelu" && tok.size() == 3) {
      in.uop = UnaryOp::kLeakyRelu;
      in.a = operand(1);
      Operand al = operand(2);
      TS_CHECK(al.kind == Operand::kLiteral, "LeakyRelu alpha must be a literal in '", line, "'");
      in.alpha = al.literal;
    } else if (tok[0] == "SelectV2" && tok.size() == 4) {
      in.kind = Instr::kSelect;
      in.a = operand(1);
      in.b = operand(2);
      in.c = operand(3);
    } else if ((tok[0] == "ZerosLike" || tok[0] == "OnesLike") && tok.size() == 2) {
      in.kind = Instr::kFill;  // the operand only gives the shape
      in.a = operand(1);
      in.alpha = tok[0] == "OnesLike" ? 1.f : 0.f;
    } else if (tok[0] == "Cast" && tok.size() == 2) {
      in.a = operand(1);  // bool -> float32: already 0/1
    } else if (unary_op_from_name(tok[0], &in.uop) && tok.size() == 2) {
      in.a = operand(1);
    } else if (binary_op_from_name(tok[0], &in.bop) && tok.size() == 3) {
      in.kind = Instr::kBinary;
      in.a = operand(1);
      in.b = operand(2);
    } else {
      fail("unsupported program entry '", line, "'");
    }
    out.push_back(in);
  }
  TS_CHECK(!out.empty(), "empty program");
  return out;
}

std::vector<const Operand*> operands_of(const Instr& in) {
  switch (in.kind) {
    case Instr::kUnary:
    case Instr::kFill: return {&in.a};
    case Instr::kBinary: return {&in.a, &in.b};
    case Instr::kSelect: return {&in.a, &in.b, &in.c};
  }
  return {};
}

void interpret_block(const std::vector<Instr>& program, const VecTable& vec, const float* const* in,
                     const char* scalar, float* const* dst, int64_t len) {
  auto resolve = [&](const Operand& o, bool* is_scalar) -> const float* {
    switch (o.kind) {
      case Operand::kInput: *is_scalar = scalar[o.index]; return in[o.index];
      case Operand::kTemp: *is_scalar = false; return dst[o.index];
      case Operand::kLiteral: *is_scalar = true; return &o.literal;
    }
    return nullptr;
  };
  for (size_t i = 0; i < program.size(); ++i) {
    const Instr& p = program[i];
    float* y = dst[i];
    bool sa = false, sb = false, sc = false;
    const float* a = resolve(p.a, &sa);
    switch (p.kind) {
      case Instr::kFill: std::fill(y, y + len, p.alpha); break;
      case Instr::kUnary:
        if (sa) {  // a broadcast value: compute once, then fill
          float v;
          vec.unary(p.uop, a, &v, 1, p.alpha);
          std::fill(y, y + len, v);
        } else {
          vec.unary(p.uop, a, y, len, p.alpha);
        }
        break;
      case Instr::kBinary: {
        const float* b = resolve(p.b, &sb);
        vec.binary(p.bop, a, sa, b, sb, y, len);
        break;
      }
      case Instr::kSelect: {
        const float* b = resolve(p.b, &sb);
        const float* c = resolve(p.c, &sc);
        vec.select(a, sa, b, sb, c, sc, y, len);
        break;
      }
    }
  }
}

}  // namespace tessera::cpu
