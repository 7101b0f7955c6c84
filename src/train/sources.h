// Whole-array data sources, loaded into memory and sliced along dimension 0 by
// Dataset::from_tensors: NumPy .npy/.npz, MNIST's IDX files (optionally gzipped) and CSV.
#pragma once
#include <string>
#include <vector>

#include "ir/tensor.h"

namespace tessera::train {

// An IDX file (MNIST's format; big-endian header: 0, 0, type code, rank, then rank u32 dims).
// Files starting with the gzip magic are decompressed first. u8 images stay uint8.
Tensor load_idx(const std::string& path);
Tensor parse_idx(const std::string& bytes, const std::string& name);

// MNIST: images uint8 [N, rows, cols] and labels uint8 [N]; the counts must agree.
std::vector<Tensor> load_mnist(const std::string& images_path, const std::string& labels_path);

// .npy: one component; .npz: the named members in that order (all members, in archive order,
// when `names` is empty). All components must share dimension 0.
std::vector<Tensor> load_numpy(const std::string& path, const std::vector<std::string>& names = {});

// CSV with a header row and numeric cells: {features float32 [N, C-1], labels [N]} where the
// label column is found by name; labels are int64 when every value is integral, else float32.
// Errors name the file, line and column.
std::vector<Tensor> load_csv(const std::string& path, const std::string& label_column);
std::vector<Tensor> parse_csv(const std::string& text, const std::string& label_column,
                              const std::string& name);

}  // namespace tessera::train
