// Shared oneDNN (2.6, Debian's libdnnl) plumbing: the engine, the ISA cap, memory wrapping,
// activations as eltwise post-ops, and a printable name for a packed (blocked) layout.
//
// oneDNN reads its ISA cap once per process, before its first JIT kernel, so the cap is a
// process setting: init() (called by every CpuExecutable::compile) applies the ISA that
// TESSERA_ISA selects (or the processor's best) via dnnl::set_max_cpu_isa, unless
// ONEDNN_MAX_CPU_ISA is already in the environment. CpuOptions::isa still selects our own
// kernels per executable, but cannot lower oneDNN's ISA after the first call; to run the whole
// backend on a lower ISA, start the process with TESSERA_ISA set.
//
// bf16 execution (CpuOptions::precision, docs/bf16.md): matmul/conv kernels take bf16 src and
// weights, accumulate in f32 and write f32. The cap is raised to avx512_core_bf16 for the
// avx512 level so those primitives get oneDNN's native bf16 kernels; its f32 kernels are the
// avx512_core ones either way.
#pragma once
#include <cstdint>
#include <string>

#include <oneapi/dnnl/dnnl.hpp>

#include "backend/cpu/isa.h"
#include "ir/tensor.h"

namespace tessera::cpu::onednn {

void init(Isa isa);
dnnl::engine& engine();
// The ISA oneDNN actually dispatches to (after the cap), e.g. "avx512".
std::string effective_isa();

// True when oneDNN (after init) dispatches to AVX-512 BF16 or above.
bool bf16_supported();
// Fails (kFailedPrecondition, naming the fix) unless bf16 can run with our kernels at `isa`.
void require_bf16(Isa isa);
// src[0, n) rounded to bf16 (nearest even) into dst, over `threads` threads.
void to_bf16(const float* src, uint16_t* dst, int64_t n, int threads);
// The same descriptor (dims, strides, blocking) with another element type.
dnnl::memory::desc retype(const dnnl::memory::desc& md, dnnl::memory::data_type type);

// t's elements (storage order) converted into this thread's bf16 scratch buffer `slot` (0 or
// 1: a kernel may need two at once); valid until the next conversion into that slot on this
// thread. One pair of buffers per thread, shared by every kernel, so bf16 activations cost
// the largest one rather than one buffer per layer.
const void* bf16_scratch(const Tensor& t, int slot, int threads);

// Grow-only per-thread byte buffers, one per use, shared by every kernel on the thread (so a
// model pays for the largest need, not one buffer per layer). Valid until the next request
// for the same buffer on this thread.
enum class ThreadBuffer { kBf16First, kBf16Second, kBlockedSrc, kBlockedDst, kScratchpad, kCount };
void* thread_buffer(ThreadBuffer which, size_t bytes);

// Primitives get their scratchpad from us, not from oneDNN's library-managed one, which crashed
// (null scratchpad writes) when a primitive ran on another thread than before, or on two
// threads at once (inter-op, a server's request threads): tests/unit/cpu/thread_hop_test.cc.
void use_own_scratchpad(dnnl::primitive_attr& attr);
// This thread's scratchpad memory for `md` (grow-only, shared by every kernel on the thread);
// pass it as DNNL_ARG_SCRATCHPAD.
dnnl::memory thread_scratchpad(const dnnl::memory::desc& md);

dnnl::memory::dims dims_of(const Shape& s);
// Plain row-major descriptor of a float tensor with these dims.
dnnl::memory::desc plain_desc(const dnnl::memory::dims& dims);
dnnl::memory wrap(const dnnl::memory::desc& md, const void* data);

// Appends act (attribute `activation`, `alpha`: see docs/fused_ops.md) as post-ops; "" adds
// nothing. Errors for an unknown name.
void append_activation(dnnl::post_ops& ops, const std::string& activation, float alpha);

// "tag-ish" description of a (possibly blocked) layout: dims, strides and inner blocks, plus
// the element type when it is not f32.
std::string layout_string(const dnnl::memory::desc& md);

}  // namespace tessera::cpu::onednn
