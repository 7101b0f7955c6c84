// `tessera train --data SPEC`: the data-source spelling of the command line, turned into an
// input pipeline (train/dataset.h) that yields {feature..., labels} batches.
//
// SPEC forms (parts separated by ':'):
//   mnist:IMAGES[.gz],LABELS[.gz][:START-END]
//   npz:FILE[:x=KEY,y=KEY][:START-END]          (default keys x and y)
//   npy:X.npy,Y.npy[:START-END]
//   csv:FILE:label=COL[:START-END]
//   tfrecord:GLOB:FEATURE[,FEATURE...]:label=NAME[:gzip|:zlib]
//       FEATURE is example.h's `name:dtype:shape[:default]`; the label feature must be one of
//       them, the others are the model's inputs in the order given.
// START-END keeps rows [START, END) of an in-memory source. A permutation file selects rows in
// an explicit order instead (DataOptions::take_indices, `--take-indices PERM.npy:START:END`):
// rows perm[START:END], which is how tests split MNIST 8000/2000 identically for TF and us.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/dataset.h"

namespace tessera::train {

struct DataSpec {
  std::string kind;                // mnist | npz | npy | csv | tfrecord
  std::vector<std::string> files;  // the file list (tfrecord: the expanded glob)
  std::string x_key = "x", y_key = "y";  // npz members
  std::string label;                     // csv column / tfrecord feature
  std::vector<FeatureSpec> features;     // tfrecord
  Compression compression = Compression::kNone;
  int64_t start = 0, end = -1;           // row range; end -1 = all
};

// Parses a SPEC (errors name the spec and the part at fault).
DataSpec parse_data_spec(const std::string& spec);

struct TakeIndices {
  std::string perm_file;  // .npy of integer row indices; "" = identity
  int64_t start = 0, end = -1;
};
// "PERM.npy:START:END", "PERM.npy" or "START:END".
TakeIndices parse_take_indices(const std::string& text);

struct DataOptions {
  int64_t batch = 32;
  bool drop_remainder = true;
  int64_t repeat = -1;           // -1: forever
  size_t shuffle_buffer = 0;     // 0: no shuffle
  uint64_t seed = 0;
  float normalize = 0;           // > 0: features become float32(x) / normalize
  Shape feature_shape;           // non-empty: reshape each example's first feature to this
  TakeIndices take;
  int map_parallelism = 1;
  size_t prefetch = 2;
  OnCorrupt on_corrupt = OnCorrupt::kStop;
};

// Loads an in-memory source ({features..., labels}) with the spec's range and the take indices
// applied. Not for tfrecord.
std::vector<Tensor> load_data_arrays(const DataSpec& spec, const TakeIndices& take = {});

// The whole pipeline: source -> [take] -> shuffle(seed) -> map(normalise, reshape) ->
// batch(drop_remainder) -> repeat -> prefetch. Elements are {features..., labels}.
DatasetPtr make_dataset(const DataSpec& spec, const DataOptions& options);

// Rows `indices` of t along dimension 0 (bounds-checked).
Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& indices);

}  // namespace tessera::train
