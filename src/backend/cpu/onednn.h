// Shared oneDNN (2.6, Debian's libdnnl) plumbing: the engine, the ISA cap, memory wrapping,
// activations as eltwise post-ops, and a printable name for a packed (blocked) layout.
//
// oneDNN reads its ISA cap once per process, before its first JIT kernel: init() applies the
// first resolved ISA (ONEDNN_MAX_CPU_ISA in the environment wins if already set). Executables
// compiled later with a lower Tessera ISA still get that ISA for our own kernels, but oneDNN
// keeps the first cap, so tests that need oneDNN's AVX2 path run a process with TESSERA_ISA set.
#pragma once
#include <string>

#include <oneapi/dnnl/dnnl.hpp>

#include "backend/cpu/isa.h"
#include "ir/tensor.h"

namespace tessera::cpu::onednn {

void init(Isa isa);
dnnl::engine& engine();
// The ISA oneDNN actually dispatches to (after the cap), e.g. "avx512".
std::string effective_isa();

dnnl::memory::dims dims_of(const Shape& s);
// Plain row-major descriptor of a float tensor with these dims.
dnnl::memory::desc plain_desc(const dnnl::memory::dims& dims);
dnnl::memory wrap(const dnnl::memory::desc& md, const void* data);

// Appends act (attribute `activation`, `alpha`: see docs/fused_ops.md) as post-ops; "" adds
// nothing. Errors for an unknown name.
void append_activation(dnnl::post_ops& ops, const std::string& activation, float alpha);

// "tag-ish" description of a (possibly blocked) layout: dims, strides and inner blocks.
std::string layout_string(const dnnl::memory::desc& md);

}  // namespace tessera::cpu::onednn
