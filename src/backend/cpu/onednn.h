// Shared oneDNN (2.6, Debian's libdnnl) plumbing: the engine, the ISA cap, memory wrapping,
// activations as eltwise post-ops, and a printable name for a packed (blocked) layout.
//
// oneDNN reads its ISA cap once per process, before its first JIT kernel, so the cap is a
// process setting: init() (called by every CpuExecutable::compile) applies the ISA that
// TESSERA_ISA selects (or the processor's best) via dnnl::set_max_cpu_isa, unless
// ONEDNN_MAX_CPU_ISA is already in the environment. CpuOptions::isa still selects our own
// kernels per executable, but cannot lower oneDNN's ISA after the first call; to run the whole
// backend on a lower ISA, start the process with TESSERA_ISA set.
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
