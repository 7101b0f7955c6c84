#include "train/sources.h"

#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "io/npy.h"
#include "support/error.h"
#include "support/file.h"

namespace tessera::train {
namespace {

std::string gunzip(const std::string& bytes, const std::string& name) {
  z_stream z{};
  if (inflateInit2(&z, MAX_WBITS + 16) != Z_OK) fail_code(ErrorCode::kInternal, "zlib init failed");
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  int rc = Z_OK;
  char buf[1 << 16];
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&z);
      fail_code(ErrorCode::kDataLoss, "'", name, "': corrupt or truncated gzip data");
    }
    out.append(buf, sizeof(buf) - z.avail_out);
    if (out.size() > max_tensor_bytes() + 1024) {
      inflateEnd(&z);
      fail_code(ErrorCode::kResourceExhausted, "'", name, "' decompresses to more than the tensor limit");
    }
  }
  inflateEnd(&z);
  return out;
}

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

}  // namespace

Tensor parse_idx(const std::string& raw, const std::string& name) {
  const std::string bytes = raw.size() >= 2 && static_cast<unsigned char>(raw[0]) == 0x1f &&
                                    static_cast<unsigned char>(raw[1]) == 0x8b
                                ? gunzip(raw, name)
                                : raw;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  TS_CHECK(bytes.size() >= 4 && p[0] == 0 && p[1] == 0, "'", name, "' is not an IDX file (bad magic)");
  DType dtype;
  switch (p[2]) {
    case 0x08: dtype = DType::kUInt8; break;
    case 0x09: dtype = DType::kInt8; break;
    case 0x0B: dtype = DType::kInt16; break;
    case 0x0C: dtype = DType::kInt32; break;
    case 0x0D: dtype = DType::kFloat32; break;
    case 0x0E: dtype = DType::kFloat64; break;
    default: fail("'", name, "': unknown IDX element type 0x", std::hex, int{p[2]});
  }
  const size_t rank = p[3];
  TS_CHECK(rank >= 1 && bytes.size() >= 4 + 4 * rank, "'", name, "': truncated IDX header");
  Shape shape;
  for (size_t i = 0; i < rank; ++i) shape.push_back(be32(p + 4 + 4 * i));
  const size_t header = 4 + 4 * rank;
  const uint64_t count = static_cast<uint64_t>(num_elements(shape));
  const size_t elem = dtype_size(dtype);
  if (count > (bytes.size() - header) / elem || count * elem != bytes.size() - header)
    fail_code(ErrorCode::kDataLoss, "'", name, "': IDX header says ", shape_str(shape), " (",
              count * elem, " bytes) but ", bytes.size() - header, " bytes follow");
  Tensor t(dtype, shape);
  auto* out = static_cast<unsigned char*>(t.mutable_raw());
  const unsigned char* in = p + header;
  if (elem == 1) {
    std::memcpy(out, in, count);
  } else {  // big-endian elements
    for (uint64_t i = 0; i < count; ++i)
      for (size_t b = 0; b < elem; ++b) out[i * elem + b] = in[i * elem + elem - 1 - b];
  }
  return t;
}

Tensor load_idx(const std::string& path) { return parse_idx(read_file(path), path); }

std::vector<Tensor> load_mnist(const std::string& images_path, const std::string& labels_path) {
  Tensor images = load_idx(images_path);
  Tensor labels = load_idx(labels_path);
  TS_CHECK(images.dtype() == DType::kUInt8 && images.rank() == 3, "'", images_path,
           "': MNIST images must be uint8 [N, rows, cols], got ", dtype_name(images.dtype()), " ",
           shape_str(images.shape()));
  TS_CHECK(labels.dtype() == DType::kUInt8 && labels.rank() == 1, "'", labels_path,
           "': MNIST labels must be uint8 [N]");
  TS_CHECK(images.dim(0) == labels.dim(0), "MNIST: ", images.dim(0), " images in '", images_path,
           "' but ", labels.dim(0), " labels in '", labels_path, "'");
  return {images, labels};
}

std::vector<Tensor> load_numpy(const std::string& path, const std::vector<std::string>& names) {
  std::vector<Tensor> out;
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".npy") == 0) {
    TS_CHECK(names.empty(), "'", path, "' is a single array; component names apply to .npz");
    out.push_back(npy::load_npy(path));
  } else {
    auto members = npy::load_npz(path);
    if (names.empty()) {
      for (auto& [n, t] : members) out.push_back(t);
    } else {
      for (const auto& want : names) {
        bool found = false;
        for (auto& [n, t] : members)
          if (n == want) {
            out.push_back(t);
            found = true;
          }
        if (!found) fail_code(ErrorCode::kNotFound, "'", path, "' has no array '", want, "'");
      }
    }
  }
  TS_CHECK(!out.empty(), "'", path, "' holds no arrays");
  for (const auto& t : out)
    TS_CHECK(t.rank() >= 1 && t.dim(0) == out[0].dim(0), "'", path,
             "': arrays must share their first dimension (", shape_str(t.shape()), " vs ",
             shape_str(out[0].shape()), ")");
  return out;
}

std::vector<Tensor> parse_csv(const std::string& text, const std::string& label_column,
                              const std::string& name) {
  // Split into lines (\n or \r\n), skipping blank ones.
  std::vector<std::pair<size_t, std::string>> lines;  // (line number, content)
  size_t start = 0, lineno = 1;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.emplace_back(lineno, line);
    start = end + 1;
    ++lineno;
  }
  TS_CHECK(!lines.empty(), "'", name, "': empty CSV (a header row is required)");
  auto split = [](const std::string& line) {
    std::vector<std::string> cells;
    size_t s = 0;
    for (;;) {
      size_t c = line.find(',', s);
      std::string cell = line.substr(s, c == std::string::npos ? std::string::npos : c - s);
      while (!cell.empty() && cell.front() == ' ') cell.erase(0, 1);
      while (!cell.empty() && cell.back() == ' ') cell.pop_back();
      if (cell.size() >= 2 && cell.front() == '"' && cell.back() == '"') cell = cell.substr(1, cell.size() - 2);
      cells.push_back(cell);
      if (c == std::string::npos) break;
      s = c + 1;
    }
    return cells;
  };
  const auto header = split(lines[0].second);
  int label = -1;
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == label_column) label = static_cast<int>(i);
  if (label < 0) fail_code(ErrorCode::kNotFound, "'", name, "': no column named '", label_column, "' in the header");
  const int64_t rows = static_cast<int64_t>(lines.size()) - 1;
  const int64_t cols = static_cast<int64_t>(header.size()) - 1;
  Tensor features(DType::kFloat32, {rows, cols});
  std::vector<double> labels(static_cast<size_t>(rows));
  bool integral = true;
  for (int64_t r = 0; r < rows; ++r) {
    const auto& [ln, line] = lines[static_cast<size_t>(r) + 1];
    const auto cells = split(line);
    if (cells.size() != header.size())
      fail("'", name, "' line ", ln, ": ", cells.size(), " cells, the header has ", header.size());
    int64_t c = 0;
    for (size_t i = 0; i < cells.size(); ++i) {
      char* end = nullptr;
      const double v = std::strtod(cells[i].c_str(), &end);
      if (cells[i].empty() || *end != '\0')
        fail("'", name, "' line ", ln, " column ", i + 1, " ('", header[i], "'): '", cells[i],
             "' is not a number");
      if (static_cast<int>(i) == label) {
        labels[static_cast<size_t>(r)] = v;
        integral = integral && std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15;
      } else {
        features.data<float>()[r * cols + c++] = static_cast<float>(v);
      }
    }
  }
  Tensor out_labels(integral ? DType::kInt64 : DType::kFloat32, {rows});
  for (int64_t r = 0; r < rows; ++r) {
    if (integral) out_labels.data<int64_t>()[r] = static_cast<int64_t>(labels[static_cast<size_t>(r)]);
    else out_labels.data<float>()[r] = static_cast<float>(labels[static_cast<size_t>(r)]);
  }
  return {features, out_labels};
}

std::vector<Tensor> load_csv(const std::string& path, const std::string& label_column) {
  return parse_csv(read_file(path), label_column, path);
}

}  // namespace tessera::train
