// Shared pieces of the channels-last batch-norm kernels (kernels_norm.cc, kernels_norm_grad.cc):
// row blocking, Chan's merge of (count, mean, M2) statistics, and the split of a reduction
// over rows into parts whose results are combined in a fixed order (so the result does not
// depend on which thread ran which part).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "backend/cpu/threads.h"

namespace tessera::cpu {

void register_norm_grad_kernels();  // kernels_norm_grad.cc, called by register_norm_kernels

namespace norm {

constexpr int kLanes = 16;  // channels per accumulator block (one AVX-512 vector)

// 16 floats as one GCC vector: the kernels' inner loops over 16 channels are written with it,
// because GCC leaves fully unrolled 16-iteration loops with selects or accumulator arrays
// scalar or spilled. Compiled per target clone (AVX-512: one register; AVX2: two; SSE: four).
// Only used in always-inline helpers, so the vector-ABI note GCC gives does not apply.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float F16 __attribute__((vector_size(64)));
inline __attribute__((always_inline)) F16 load16(const float* p) {
  F16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline __attribute__((always_inline)) void store16(float* p, F16 v) { std::memcpy(p, &v, sizeof(v)); }
#pragma GCC diagnostic pop

// Rows per block so a block of x stays in L1 (16 KiB) across the block's passes.
inline int64_t block_rows(int64_t c) { return std::max<int64_t>(8, 4096 / std::max<int64_t>(c, 1)); }

// Merges a block of nb rows with mean mb and sum of squared deviations qb into running
// (count, mean, m2) — Chan et al.'s pairwise update.
inline void chan_merge(double count, double& mean, double& m2, int64_t nb, double mb, double qb) {
  const double n = count + static_cast<double>(nb);
  const double delta = mb - mean;
  mean += delta * static_cast<double>(nb) / n;
  m2 += qb + delta * delta * count * static_cast<double>(nb) / n;
}

// Parts of [0, rows) for a per-part reduction: a few per thread, at least a block each.
inline int64_t parts_for(int64_t rows, int64_t c, int threads) {
  const int64_t blocks = (rows + block_rows(c) - 1) / block_rows(c);
  return std::max<int64_t>(1, std::min<int64_t>(blocks, static_cast<int64_t>(std::max(threads, 1)) * 4));
}
inline int64_t part_begin(int64_t p, int64_t parts, int64_t rows) { return rows * p / parts; }

// Per-channel mean and population variance of x [rows, c]: `part(r0, r1, mean, m2)` fills
// zeroed double arrays for rows [r0, r1); parts merge in order.
template <typename Part>
void batch_moments(int64_t rows, int64_t c, int threads, double* mean, double* var, const Part& part) {
  const int64_t parts = parts_for(rows, c, threads);
  std::vector<double> pm(static_cast<size_t>(parts * c), 0.0), pq(static_cast<size_t>(parts * c), 0.0);
  parallel_for(parts, 1, threads, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p)
      part(part_begin(p, parts, rows), part_begin(p + 1, parts, rows), pm.data() + p * c, pq.data() + p * c);
  });
  std::fill(mean, mean + c, 0.0);
  std::fill(var, var + c, 0.0);  // holds M2 until the end
  double count = 0;
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t nb = part_begin(p + 1, parts, rows) - part_begin(p, parts, rows);
    if (nb == 0) continue;
    for (int64_t j = 0; j < c; ++j) chan_merge(count, mean[j], var[j], nb, pm[p * c + j], pq[p * c + j]);
    count += static_cast<double>(nb);
  }
  for (int64_t j = 0; j < c; ++j) var[j] = rows ? var[j] / static_cast<double>(rows) : 0.0;
}

}  // namespace norm
}  // namespace tessera::cpu
