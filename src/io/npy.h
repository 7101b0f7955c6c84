// NumPy .npy (format versions 1.0, 2.0, 3.0) and .npz (zip archives of .npy members, stored or
// DEFLATE-compressed, ZIP64 included) to and from tessera::Tensor.
//
// Element types: f2/f4/f8, i1/i2/i4/i8, u1/u2/u4/u8, b1, c8/c16, plus fixed-width strings:
// bytes ('|S<n>') and unicode ('<U<n>', converted to UTF-8) both become DT_STRING with
// NumPy's semantics of dropping trailing NULs. Big-endian data, object (pickle) arrays,
// structured and datetime dtypes are rejected with a clear error. Fortran-ordered arrays are
// transposed into Tessera's row-major layout.
//
// Writing uses the narrowest header version that fits (1.0, else 2.0); DT_STRING is written
// as '|S<max length>'. NumPy has no bfloat16, so writing one is an error (convert first).
//
// Input is untrusted: sizes are checked against the actual byte count before anything is
// allocated, and member CRC-32s are verified (ErrorCode::kDataLoss on mismatch).
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ir/tensor.h"

namespace tessera::npy {

// `name` (a file path or member name) labels errors.
Tensor parse_npy(std::string_view bytes, const std::string& name = "<npy>");
std::string serialize_npy(const Tensor& t);
Tensor load_npy(const std::string& path);
void save_npy(const std::string& path, const Tensor& t);

// Arrays in archive order; names are member names without the ".npy" suffix (NumPy's keys).
// Members not ending in ".npy" are skipped.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
NamedTensors parse_npz(std::string_view bytes, const std::string& name = "<npz>");
std::string serialize_npz(const NamedTensors& tensors, bool compress = false);
NamedTensors load_npz(const std::string& path);
void save_npz(const std::string& path, const NamedTensors& tensors, bool compress = false);

}  // namespace tessera::npy
