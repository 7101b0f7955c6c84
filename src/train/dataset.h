// An input pipeline in the style of tf.data: immutable Dataset nodes composed with shuffle,
// batch, repeat, cache, map and prefetch, iterated by a Pipeline that records how long the
// consumer waited and can save and restore its position.
//
// Determinism and resume: every iterator is a pure function of the pipeline, its seeds and
// the pass ("epoch") it is created for. Shuffle seeds its generator from (seed, epoch), so it
// reshuffles each epoch yet repeats exactly across runs; parallel map keeps input order. The
// complete position of a pipeline is therefore the number of elements the consumer has taken
// (plus a fingerprint of the pipeline's structure and seeds, to refuse restoring into a
// different pipeline). Restoring rebuilds the iterators and fast-forwards: sources, map,
// batch and prefetch skip without doing work, repeat moves to the right epoch directly, and a
// shuffle replays at most the part of the current epoch already consumed. A resumed run sees
// exactly the batches an uninterrupted one would.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ir/tensor.h"
#include "train/example.h"
#include "train/tfrecord.h"

namespace tessera::train {

using Element = std::vector<Tensor>;  // one example (or batch): its components
using MapFn = std::function<Element(Element)>;

class Iterator {
 public:
  virtual ~Iterator() = default;
  // The next element; false at the end of the sequence.
  virtual bool next(Element* out) = 0;
  // Discards up to n elements; returns how many were discarded (< n only at the end).
  virtual uint64_t skip(uint64_t n);
};

class Dataset;
using DatasetPtr = std::shared_ptr<const Dataset>;

constexpr int64_t kUnknownCardinality = -1;
constexpr int64_t kInfiniteCardinality = -2;

class Dataset : public std::enable_shared_from_this<Dataset> {
 public:
  virtual ~Dataset() = default;
  // An iterator for one pass; `epoch` numbers the pass (it seeds shuffles).
  virtual std::unique_ptr<Iterator> make_iterator(uint64_t epoch) const = 0;
  // Elements per pass, or kUnknownCardinality / kInfiniteCardinality.
  virtual int64_t cardinality() const { return kUnknownCardinality; }
  // The pipeline's structure and parameters (fingerprinted by Pipeline state).
  virtual std::string describe() const = 0;

  // Sources.
  // Slices of `components` along dimension 0 (all must share it): element i = {c[i] ...}.
  static DatasetPtr from_tensors(std::vector<Tensor> components);
  // Each record of each file in turn, as a string scalar (see tfrecord.h for on_corrupt).
  static DatasetPtr tfrecord(std::vector<std::string> files, Compression compression = Compression::kNone,
                             OnCorrupt on_corrupt = OnCorrupt::kStop);

  // Operators.
  // TF's shuffle: a buffer of `buffer` elements; each output is a uniformly chosen buffer
  // element, whose slot is refilled from the input. Reshuffled each epoch unless told not to.
  DatasetPtr shuffle(size_t buffer, uint64_t seed, bool reshuffle_each_iteration = true) const;
  // Stacks n consecutive elements (components must agree in dtype and shape); the last
  // batch may be short unless drop_remainder.
  DatasetPtr batch(int64_t n, bool drop_remainder = false) const;
  // count passes (-1 = forever); pass e of the input is created with epoch e.
  DatasetPtr repeat(int64_t count = -1) const;
  // Keeps the first complete pass in memory and replays it for later passes.
  DatasetPtr cache() const;
  // Applies fn on `parallelism` worker threads, delivering results in input order. `name`
  // identifies fn in describe() (so a resumed pipeline must use the same name).
  DatasetPtr map(MapFn fn, int parallelism = 1, std::string name = "fn") const;
  // Produces up to k elements ahead on a background thread.
  DatasetPtr prefetch(size_t k) const;
  // The first n elements.
  DatasetPtr take(int64_t n) const;
};

// Map functions for the common cases.
// x -> float32(x) * scale + offset, for component `index` (e.g. pixels / 255).
MapFn normalize(size_t index, float scale, float offset = 0.0f);
// Converts component `index` to `dtype` (numeric dtypes; float -> int truncates toward 0).
MapFn cast(size_t index, DType dtype);
// Component 0 holds serialized Examples (a scalar, or a [batch] vector after batch()): the
// element becomes the parsed features, in spec order (see example.h).
MapFn parse_example(std::vector<FeatureSpec> specs);

// Numeric dtype conversion (as static_cast per element).
Tensor cast_tensor(const Tensor& t, DType dtype);

struct PipelineState {
  uint64_t elements = 0;     // elements the consumer has taken
  uint64_t fingerprint = 0;  // of the pipeline's describe()
  // As an int64 [2] tensor, to store in a checkpoint, and back.
  Tensor to_tensor() const;
  static PipelineState from_tensor(const Tensor& t);
};

struct PipelineStats {
  uint64_t elements = 0;
  double wait_seconds = 0;       // total time the consumer spent inside next()
  double last_wait_seconds = 0;  // of the latest next()
};

class Pipeline {
 public:
  // Starts at the beginning, or at `resume_from` (which must come from the same pipeline).
  explicit Pipeline(DatasetPtr dataset);
  Pipeline(DatasetPtr dataset, const PipelineState& resume_from);

  bool next(Element* out);
  PipelineState state() const { return {stats_.elements, fingerprint_}; }
  const PipelineStats& stats() const { return stats_; }

 private:
  DatasetPtr dataset_;
  uint64_t fingerprint_;
  std::unique_ptr<Iterator> it_;
  PipelineStats stats_;
};

uint64_t fingerprint(const std::string& text);  // FNV-1a 64

}  // namespace tessera::train
