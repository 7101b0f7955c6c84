// Running a convolutional network's first layers a few batch rows at a time.
//
// Early layers of an image model have small filters and large activations (MobileNetV2 at
// 96x96: up to 1 MiB per image for one layer's input and output). At batch 64 each layer's
// activations went through DRAM on their way to the next, and those layers ran 1.5-2.5x
// slower per image than at batch 4; late layers are the opposite (large weights, few
// positions) and gain from the whole batch. So the executable splits the graph
// (ir/batch_rows.h) into a head of row-independent nodes, run over chunks of rows that keep
// a layer's input and output in cache, and a tail run once on the whole batch.
//
// The rule, per row-independent node in order (its batched inputs read only args and head
// nodes): rows per chunk = kChunkBytes / the largest node's input + output bytes per row; a
// node joins the head if a chunk's activations outweigh its weights and give its matrix
// multiply kMinChunkPositions rows, or if its weights are tiny (kSmallWeightBytes). Batches
// of at most twice a chunk's budget run the head in one go.
//
// Measured (2 threads, samples/s, chunked vs one plan, medians of interleaved runs on the
// shared machine): MobileNetV2 96x96 b64 1420-1478 vs 1109-1137; the bench's MobileNetV2
// 224x224 b32 239 vs 172, EfficientNetB0 224x224 b32 141 vs 112; ResNet50 within noise.
#pragma once
#include <functional>
#include <memory>
#include <unordered_set>
#include <vector>

#include "backend/cpu/cpu_executable.h"

namespace tessera::cpu {

// Rows per chunk hold at most this many bytes of one node's inputs and outputs: MobileNetV2
// 96x96's first 20 layers (~1 MiB per row at most) ran at the same speed per image from 4 to
// 16 rows and 1.6x slower at 32 (this machine: 2 x 2 MiB L2, 32 MiB L3).
inline constexpr int64_t kChunkBytes = int64_t{8} << 20;
// A node with larger weights joins the head only if a chunk still gives its matrix multiply
// this many rows (output positions x rows per chunk): fewer make oneDNN's kernels slow.
inline constexpr int64_t kMinChunkPositions = 1024;
// Weights this small cost nothing to read again per chunk (they stay in L2): such nodes (e.g.
// EfficientNet's squeeze-and-excite convolutions on [n, 1, 1, c]) may join the head whatever
// their activations, so they do not cut it short.
inline constexpr int64_t kSmallWeightBytes = int64_t{16} << 10;
// A head moving fewer bytes per row than this (all its nodes' inputs and outputs) is not
// worth the split: small models keep one plan.
inline constexpr int64_t kMinHeadRowBytes = int64_t{1} << 20;

struct RowChunkPlan {
  std::unordered_set<const Node*> head;  // empty: no split
  std::vector<int> batched_args;         // the args whose rows the chunks take
  int64_t rows = 0;                      // rows per chunk
  int64_t max_row_bytes = 0;             // the largest head node's input + output bytes per row
  int64_t head_row_bytes = 0;            // all head nodes' input + output bytes per row
};

// The head the cache rule picks for `g` (see above); `chunk_rows` > 0 fixes the rows per chunk
// and takes any non-empty head. Graphs with stateful nodes (variables) are never split.
RowChunkPlan plan_row_chunks(const Graph& g, int chunk_rows = -1);

using PlanCompiler = std::function<std::unique_ptr<CpuExecutable>(std::shared_ptr<const Graph>)>;

// The two-part executable for `graph`, or nullptr when plan_row_chunks finds no head (or
// options.chunk_rows is 0). `compile` builds each part's plan.
std::unique_ptr<CpuExecutable> compile_row_chunked(const std::shared_ptr<const Graph>& graph,
                                                   const CpuOptions& options, const PlanCompiler& compile);

}  // namespace tessera::cpu
