#include "backend/cpu/row_chunks.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <utility>

#include "ir/batch_rows.h"
#include "ir/op_registry.h"

namespace tessera::cpu {

namespace {

// Bytes per row of a value whose dim 0 is the batch, or -1 when a later dim is unknown.
int64_t row_bytes(const ValueInfo& v) {
  if (!v.shape.known_rank || v.shape.rank() < 1) return -1;
  int64_t n = static_cast<int64_t>(dtype_size(v.dtype));
  for (int64_t i = 1; i < v.shape.rank(); ++i) {
    if (v.shape.dims[i] < 0) return -1;
    n *= v.shape.dims[i];
  }
  return n;
}

const ValueInfo& info(const Value& v) { return v.node->outputs.at(v.index); }

}  // namespace

RowChunkPlan plan_row_chunks(const Graph& g, int chunk_rows) {
  RowChunkPlan plan;
  for (const auto& n : g.nodes())
    if (n->def && n->def->stateful && n->op != "_Arg") return plan;
  BatchRows rows = find_batch_rows(g);
  if (rows.rowwise.empty()) return plan;
  plan.batched_args = rows.batched_args;
  std::set<const Node*> batched_args;
  for (int i : rows.batched_args) batched_args.insert(g.args[i]);
  // Per row-independent node: its batched inputs' and outputs' bytes per row, and its
  // constant inputs' bytes (-1 where a dim other than the batch is unknown).
  struct Traffic {
    const Node* node;
    int64_t activations = 0, weights = 0;
    int64_t positions = 1;  // per row: output elements per channel (H x W for NHWC)
  };
  std::vector<Traffic> traffic;
  int64_t largest = 0;
  for (const Node* n : g.topo_order()) {
    if (!rows.rowwise.count(n)) continue;
    Traffic t{n};
    for (const Value& in : n->inputs) {
      if (in.node->op == "Const") {
        t.weights += static_cast<int64_t>(in.node->attr<Tensor>("value").nbytes());
      } else {
        const int64_t b = row_bytes(info(in));
        t.activations = b < 0 || t.activations < 0 ? -1 : t.activations + b;
      }
    }
    for (const ValueInfo& out : n->outputs) {
      const int64_t b = row_bytes(out);
      t.activations = b < 0 || t.activations < 0 ? -1 : t.activations + b;
    }
    if (t.activations < 0) continue;
    const PartialShape& out0 = n->outputs.at(0).shape;
    for (int64_t i = 1; i + 1 < out0.rank(); ++i) t.positions *= out0.dims[i];
    largest = std::max(largest, t.activations);
    traffic.push_back(t);
  }
  plan.rows = chunk_rows > 0 ? chunk_rows : std::clamp<int64_t>(kChunkBytes / std::max<int64_t>(largest, 1), 1, 64);
  for (const Traffic& t : traffic) {
    // Chunks read a node's weights once per chunk instead of once per batch, and keep its
    // activations in cache: worth it where a chunk's activations outweigh the weights.
    const bool pays = t.activations * plan.rows >= t.weights && t.positions * plan.rows >= kMinChunkPositions;
    if (!pays && t.weights > kSmallWeightBytes) continue;
    bool reads_head = true;
    for (const Value& in : t.node->inputs)
      reads_head = reads_head && (in.node->op == "Const" || batched_args.count(in.node) || plan.head.count(in.node));
    if (!reads_head) continue;
    plan.head.insert(t.node);
    plan.max_row_bytes = std::max(plan.max_row_bytes, t.activations);
    plan.head_row_bytes += t.activations;
  }
  if (chunk_rows <= 0 && plan.head_row_bytes < kMinHeadRowBytes) plan.head.clear();
  if (plan.head.empty()) plan.rows = 0;
  return plan;
}

namespace {

// The head over chunks of rows, then the tail over the whole batch.
class RowChunkedExecutable final : public CpuExecutable {
 public:
  RowChunkedExecutable(std::unique_ptr<CpuExecutable> head, std::unique_ptr<CpuExecutable> tail,
                       std::vector<int> batched_args, std::vector<PartialShape> cut_shapes, int64_t rows,
                       int64_t whole_rows)
      : head_(std::move(head)),
        tail_(std::move(tail)),
        batched_args_(std::move(batched_args)),
        cut_shapes_(std::move(cut_shapes)),
        rows_(rows),
        whole_rows_(whole_rows) {}

  std::vector<Tensor> run(const std::vector<Tensor>& args, ResourceStore* variables) override {
    std::vector<Tensor> tail_args;
    if (const int64_t n = batch_rows(args); n <= whole_rows_) tail_args = head_->run(args, variables);
    else tail_args = run_chunks(args, n, variables);
    tail_args.insert(tail_args.end(), args.begin(), args.end());
    return tail_->run(tail_args, variables);
  }

  std::vector<PackedWeight> packed_weights() const override {
    std::vector<PackedWeight> all = head_->packed_weights();
    for (PackedWeight& w : tail_->packed_weights()) all.push_back(std::move(w));
    return all;
  }
  std::string isa() const override { return head_->isa(); }
  int inter_op() const override { return head_->inter_op(); }
  int64_t chunk_rows() const override { return rows_; }

  // The head's plan for the first chunk's shapes (or the whole batch's), the tail's for the
  // cut values at the whole batch (their other dims are static: the head only has such nodes).
  PlanStats plan_stats(const std::vector<Shape>& arg_shapes) const override {
    std::vector<Shape> head_shapes = arg_shapes, tail_shapes;
    const int64_t n = batch_rows(arg_shapes);
    if (n > whole_rows_) {
      const int64_t chunks = (n + rows_ - 1) / rows_;
      for (int i : batched_args_) head_shapes[i][0] = chunk_size(n, chunks, 0);
    }
    for (const PartialShape& cut : cut_shapes_) {
      Shape s = cut.dims;
      s[0] = n;
      tail_shapes.push_back(s);
    }
    tail_shapes.insert(tail_shapes.end(), arg_shapes.begin(), arg_shapes.end());
    PlanStats h = head_->plan_stats(head_shapes), t = tail_->plan_stats(tail_shapes);
    return {h.arena_bytes + t.arena_bytes, h.requested_bytes + t.requested_bytes, h.in_place + t.in_place};
  }

  std::map<std::string, double> op_seconds() const override {
    std::map<std::string, double> all = head_->op_seconds();
    for (const auto& [op, s] : tail_->op_seconds()) all[op] += s;
    return all;
  }

 private:
  // Dim 0 of an arg (-1 where it has none, or is no fixed-size dtype so rows cannot be sliced).
  static int64_t rows_of(const Shape& s) { return s.empty() ? -1 : s[0]; }
  static int64_t rows_of(const Tensor& t) { return is_pod(t.dtype()) ? rows_of(t.shape()) : -1; }

  // Dim 0 of every batched arg if they agree, else -1 (the head then runs once and checks the
  // args itself).
  template <typename T>
  int64_t batch_rows(const std::vector<T>& args) const {
    int64_t n = -1;
    for (int i : batched_args_) {
      const int64_t r = static_cast<size_t>(i) < args.size() ? rows_of(args[i]) : -1;
      if (r < 0 || (n >= 0 && r != n)) return -1;
      n = r;
    }
    return n;
  }

  // Chunks of nearly equal size: the first n % chunks take one row more (so at most two chunk
  // shapes, and two head plans).
  static int64_t chunk_size(int64_t n, int64_t chunks, int64_t c) { return n / chunks + (c < n % chunks ? 1 : 0); }

  std::vector<Tensor> run_chunks(const std::vector<Tensor>& args, int64_t n, ResourceStore* variables) {
    const int64_t chunks = (n + rows_ - 1) / rows_;
    std::vector<std::shared_ptr<const void>> owners(args.size());
    for (int i : batched_args_) owners[i] = std::make_shared<Tensor>(args[i]);
    std::vector<Tensor> full;
    int64_t r0 = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t take = chunk_size(n, chunks, c);
      std::vector<Tensor> part_args = args;
      for (int i : batched_args_) {
        Shape s = args[i].shape();
        const size_t row = args[i].nbytes() / static_cast<size_t>(s[0]);
        s[0] = take;
        part_args[i] = Tensor::borrow(args[i].dtype(), s, static_cast<const std::byte*>(args[i].raw()) + r0 * row,
                                      owners[i]);
      }
      std::vector<Tensor> part = head_->run(part_args, variables);
      for (size_t k = 0; k < part.size(); ++k) {
        const Tensor& p = part[k];
        TS_CHECK(p.rank() >= 1 && p.dim(0) == take && is_pod(p.dtype()), "row chunks: head output ", k, " is ",
                 shape_str(p.shape()), " for a chunk of ", take, " rows");
        if (full.size() == k) {
          Shape s = p.shape();
          s[0] = n;
          full.push_back(Tensor::uninitialized(p.dtype(), s));
        }
        const size_t row = full[k].nbytes() / static_cast<size_t>(n);
        TS_CHECK(p.nbytes() == row * static_cast<size_t>(take), "row chunks: head output ", k,
                 " changed shape between chunks");
        std::memcpy(static_cast<std::byte*>(full[k].mutable_raw()) + r0 * row, p.raw(), p.nbytes());
      }
      r0 += take;
    }
    return full;
  }

  std::unique_ptr<CpuExecutable> head_, tail_;
  std::vector<int> batched_args_;
  std::vector<PartialShape> cut_shapes_;  // the cut values' shapes (dim 0 the batch)
  int64_t rows_;
  int64_t whole_rows_;  // batches up to this size run the head in one go (they fit in cache)
};

int resolve_chunk_rows(int requested) {
  if (requested >= 0) return requested;
  if (const char* e = std::getenv("TESSERA_CPU_CHUNK_ROWS")) return std::max(-1, std::atoi(e));
  return -1;
}

}  // namespace

std::unique_ptr<CpuExecutable> compile_row_chunked(const std::shared_ptr<const Graph>& graph,
                                                   const CpuOptions& options, const PlanCompiler& compile) {
  const int chunk_rows = resolve_chunk_rows(options.chunk_rows);
  if (chunk_rows == 0) return nullptr;
  RowChunkPlan plan = plan_row_chunks(*graph, chunk_rows);
  if (plan.head.empty()) return nullptr;
  SplitFunction split = split_function(*graph, plan.head);
  // Batches whose head activations fit in twice a chunk's budget gain nothing from chunks
  // (measured: the MobileNetV2 head per image is the same at 8 and 16 rows as at 4).
  const int64_t whole_rows =
      chunk_rows > 0 ? plan.rows : std::max<int64_t>(plan.rows, 2 * kChunkBytes / std::max<int64_t>(plan.max_row_bytes, 1));
  if (std::getenv("TESSERA_CPU_PLAN_STATS"))
    std::fprintf(stderr, "cpu row chunks: head of %zu nodes (up to %lld bytes per row in one node), %zu cut values, %lld rows per chunk\n",
                 plan.head.size(), static_cast<long long>(plan.max_row_bytes), split.cut.size(),
                 static_cast<long long>(plan.rows));
  std::vector<PartialShape> cut_shapes;
  for (const Value& v : split.cut) cut_shapes.push_back(v.node->outputs.at(v.index).shape);
  return std::make_unique<RowChunkedExecutable>(compile(split.head), compile(split.tail), plan.batched_args,
                                                std::move(cut_shapes), plan.rows, whole_rows);
}

}  // namespace tessera::cpu
