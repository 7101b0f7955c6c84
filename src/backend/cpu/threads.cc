#include "backend/cpu/threads.h"

#include <omp.h>

#include <algorithm>

namespace tessera::cpu {

int default_threads() { return std::max(1, omp_get_num_procs()); }

void set_thread_count(int threads) { omp_set_num_threads(std::max(1, threads)); }

void parallel_for(int64_t n, int64_t grain, int threads, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  int64_t chunks = std::min<int64_t>(threads, (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1));
  if (chunks <= 1) return body(0, n);
#pragma omp parallel for num_threads(chunks) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
    body(b, e);
  }
}

}  // namespace tessera::cpu
