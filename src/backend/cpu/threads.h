// Intra-op parallelism. Debian's oneDNN 2.6 is built with OpenMP (libgomp, see `ldd
// libdnnl.so`), so our own kernels use the same OpenMP runtime: one pool of threads serves
// both, and one setting (CpuOptions::threads, applied per run on the calling thread with
// omp_set_num_threads) bounds both, with no oversubscription between two pools.
#pragma once
#include <cstdint>
#include <functional>

namespace tessera::cpu {

int default_threads();               // cores available to this process
void set_thread_count(int threads);  // for oneDNN and parallel_for on this thread

// Calls body(begin, end) over [0, n) split into at most `threads` contiguous chunks of at least
// `grain` items; runs inline when one chunk suffices.
void parallel_for(int64_t n, int64_t grain, int threads, const std::function<void(int64_t, int64_t)>& body);

}  // namespace tessera::cpu
