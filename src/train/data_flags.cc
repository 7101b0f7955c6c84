#include "train/data_flags.h"

#include <glob.h>

#include <algorithm>
#include <cstring>

#include "io/npy.h"
#include "support/error.h"
#include "train/sources.h"

namespace tessera::train {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    size_t next = s.find(sep, pos);
    out.push_back(s.substr(pos, next == std::string::npos ? std::string::npos : next - pos));
    if (next == std::string::npos) return out;
    pos = next + 1;
  }
}

int64_t parse_int(const std::string& s, const std::string& what) {
  TS_CHECK(!s.empty(), what, ": expected an integer");
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  TS_CHECK(used == s.size(), what, ": '", s, "' is not an integer");
  return v;
}

// "START-END" -> true and the bounds; anything else -> false.
bool parse_range(const std::string& part, int64_t* start, int64_t* end) {
  size_t dash = part.find('-');
  if (dash == std::string::npos || dash == 0) return false;
  for (size_t i = 0; i < part.size(); ++i)
    if (i != dash && !std::isdigit(static_cast<unsigned char>(part[i]))) return false;
  *start = std::stoll(part.substr(0, dash));
  *end = dash + 1 < part.size() ? std::stoll(part.substr(dash + 1)) : -1;
  TS_CHECK(*end < 0 || *end >= *start, "range '", part, "': END is before START");
  return true;
}

std::vector<std::string> expand_glob(const std::string& pattern) {
  glob_t g{};
  int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> files;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) files.push_back(g.gl_pathv[i]);
  globfree(&g);
  if (files.empty()) fail_code(ErrorCode::kNotFound, "no file matches '", pattern, "'");
  std::sort(files.begin(), files.end());
  return files;
}

Tensor slice_rows(const Tensor& t, int64_t start, int64_t end) {
  TS_CHECK(t.rank() >= 1, "data: a component has no batch dimension");
  int64_t n = t.dim(0);
  if (end < 0) end = n;
  TS_CHECK(start <= n && end <= n, "data: range ", start, "-", end, " exceeds the ", n, " rows");
  std::vector<int64_t> idx;
  for (int64_t i = start; i < end; ++i) idx.push_back(i);
  return gather_rows(t, idx);
}

}  // namespace

Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& indices) {
  TS_CHECK(t.rank() >= 1, "gather_rows: a scalar has no rows");
  TS_CHECK(t.dtype() != DType::kString && t.dtype() != DType::kVariant && t.dtype() != DType::kResource,
           "gather_rows: numeric tensors only");
  Shape shape = t.shape();
  const int64_t n = shape[0];
  shape[0] = static_cast<int64_t>(indices.size());
  Tensor out(t.dtype(), shape);
  const size_t row = n ? t.nbytes() / static_cast<size_t>(n) : 0;
  auto* dst = static_cast<char*>(out.mutable_raw());
  const auto* src = static_cast<const char*>(t.raw());
  for (size_t i = 0; i < indices.size(); ++i) {
    int64_t r = indices[i];
    TS_CHECK(r >= 0 && r < n, "row index ", r, " (position ", i, ") is outside [0, ", n, ")");
    std::memcpy(dst + i * row, src + static_cast<size_t>(r) * row, row);
  }
  return out;
}

DataSpec parse_data_spec(const std::string& text) {
  return with_context(str_cat("--data '", text, "'"), [&] {
    DataSpec spec;
    auto parts = split(text, ':');
    TS_CHECK(parts.size() >= 2, "expected KIND:FILES[...] (kinds: mnist, npz, npy, csv, tfrecord)");
    spec.kind = parts[0];
    if (spec.kind == "tfrecord") {
      spec.files = expand_glob(parts[1]);
      // The feature list has colons of its own: everything up to the label= part.
      size_t i = 2;
      std::string features;
      for (; i < parts.size() && parts[i].rfind("label=", 0) != 0; ++i)
        features += (features.empty() ? "" : ":") + parts[i];
      TS_CHECK(i < parts.size(), "tfrecord needs :label=NAME after the features");
      spec.label = parts[i].substr(6);
      for (++i; i < parts.size(); ++i) spec.compression = compression_from_name(parts[i]);
      TS_CHECK(!features.empty(), "tfrecord needs a feature spec (name:dtype:shape,...)");
      bool has_label = false;
      for (const std::string& f : split(features, ',')) {
        spec.features.push_back(parse_feature_spec(f));
        has_label |= spec.features.back().name == spec.label;
      }
      TS_CHECK(has_label, "the label '", spec.label, "' is not among the features");
      TS_CHECK(spec.features.size() >= 2, "tfrecord needs at least one feature besides the label");
      return spec;
    }
    spec.files = split(parts[1], ',');
    for (size_t i = 2; i < parts.size(); ++i) {
      const std::string& p = parts[i];
      if (parse_range(p, &spec.start, &spec.end)) continue;
      if (p.rfind("label=", 0) == 0) {
        spec.label = p.substr(6);
        continue;
      }
      bool keys = false;
      for (const std::string& kv : split(p, ',')) {
        if (kv.rfind("x=", 0) == 0) spec.x_key = kv.substr(2), keys = true;
        else if (kv.rfind("y=", 0) == 0) spec.y_key = kv.substr(2), keys = true;
        else keys = false;
      }
      TS_CHECK(keys, "unknown part '", p, "' (expected START-END, label=COL or x=KEY,y=KEY)");
    }
    if (spec.kind == "mnist" || spec.kind == "npy") {
      TS_CHECK(spec.files.size() == 2, spec.kind, " needs two files: FEATURES,LABELS");
    } else if (spec.kind == "npz") {
      TS_CHECK(spec.files.size() == 1, "npz takes one file");
    } else if (spec.kind == "csv") {
      TS_CHECK(spec.files.size() == 1, "csv takes one file");
      TS_CHECK(!spec.label.empty(), "csv needs :label=COLUMN");
    } else {
      fail("unknown kind '", spec.kind, "' (mnist, npz, npy, csv, tfrecord)");
    }
    return spec;
  });
}

TakeIndices parse_take_indices(const std::string& text) {
  TakeIndices t;
  auto parts = split(text, ':');
  auto is_int = [](const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '-'; });
  };
  size_t i = 0;
  if (!is_int(parts[0])) t.perm_file = parts[i++];
  const size_t rest = parts.size() - i;
  TS_CHECK(rest == 0 || rest == 2, "--take-indices '", text, "': expected PERM.npy:START:END, PERM.npy or START:END");
  if (rest == 2) {
    t.start = parse_int(parts[i], "--take-indices START");
    t.end = parts[i + 1].empty() ? -1 : parse_int(parts[i + 1], "--take-indices END");
    TS_CHECK(t.start >= 0 && (t.end < 0 || t.end >= t.start), "--take-indices '", text, "': bad range");
  }
  return t;
}

std::vector<Tensor> load_data_arrays(const DataSpec& spec, const TakeIndices& take) {
  std::vector<Tensor> arrays;
  if (spec.kind == "mnist") {
    arrays = load_mnist(spec.files[0], spec.files[1]);
  } else if (spec.kind == "npy") {
    arrays = {npy::load_npy(spec.files[0]), npy::load_npy(spec.files[1])};
  } else if (spec.kind == "npz") {
    arrays = load_numpy(spec.files[0], {spec.x_key, spec.y_key});
  } else if (spec.kind == "csv") {
    arrays = load_csv(spec.files[0], spec.label);
  } else {
    fail("data kind '", spec.kind, "' is not an in-memory source");
  }
  TS_CHECK(arrays.size() == 2 && arrays[0].rank() >= 1 && arrays[1].rank() >= 1 &&
               arrays[0].dim(0) == arrays[1].dim(0),
           "data '", spec.files[0], "': features and labels must share their first dimension");
  if (spec.start != 0 || spec.end >= 0)
    for (Tensor& a : arrays) a = slice_rows(a, spec.start, spec.end);
  if (!take.perm_file.empty() || take.start != 0 || take.end >= 0) {
    std::vector<int64_t> idx;
    if (!take.perm_file.empty()) {
      idx = with_context(str_cat("--take-indices '", take.perm_file, "'"),
                         [&] { return npy::load_npy(take.perm_file).to_int_vector(); });
    } else {
      for (int64_t i = 0; i < arrays[0].dim(0); ++i) idx.push_back(i);
    }
    int64_t n = static_cast<int64_t>(idx.size());
    int64_t end = take.end < 0 ? n : take.end;
    TS_CHECK(take.start <= n && end <= n, "--take-indices: ", take.start, ":", end, " exceeds the ", n, " indices");
    std::vector<int64_t> sel(idx.begin() + take.start, idx.begin() + end);
    for (Tensor& a : arrays) a = gather_rows(a, sel);
  }
  return arrays;
}

DatasetPtr make_dataset(const DataSpec& spec, const DataOptions& o) {
  DatasetPtr ds;
  size_t num_features = 1;
  if (spec.kind == "tfrecord") {
    TS_CHECK(o.take.perm_file.empty() && o.take.start == 0 && o.take.end < 0,
             "--take-indices needs an in-memory source, not tfrecord");
    ds = Dataset::tfrecord(spec.files, spec.compression, o.on_corrupt);
    // Parse one example at a time, then put the label last.
    std::vector<FeatureSpec> specs = spec.features;
    size_t label_at = 0;
    for (size_t i = 0; i < specs.size(); ++i)
      if (specs[i].name == spec.label) label_at = i;
    num_features = specs.size() - 1;
    MapFn parse = parse_example(specs);
    ds = ds->map(
        [parse, label_at](Element e) {
          Element parsed = parse(std::move(e));
          Element out;
          for (size_t i = 0; i < parsed.size(); ++i)
            if (i != label_at) out.push_back(parsed[i]);
          out.push_back(parsed[label_at]);
          return out;
        },
        o.map_parallelism, "parse_example(label=" + spec.label + ")");
  } else {
    std::vector<Tensor> arrays = load_data_arrays(spec, o.take);
    // Small integer labels (MNIST's uint8) become int64, the dtype Keras' sparse losses see.
    DType ld = arrays[1].dtype();
    if (ld == DType::kUInt8 || ld == DType::kInt8 || ld == DType::kUInt16 || ld == DType::kInt16)
      arrays[1] = cast_tensor(arrays[1], DType::kInt64);
    ds = Dataset::from_tensors(std::move(arrays));
  }
  if (o.shuffle_buffer > 0) ds = ds->shuffle(o.shuffle_buffer, o.seed);
  // Normalise and reshape whole batches: one call per batch instead of per example.
  ds = ds->batch(o.batch, o.drop_remainder);
  if (o.normalize > 0) {
    const float scale = 1.0f / o.normalize;
    for (size_t i = 0; i < num_features; ++i)
      ds = ds->map(normalize(i, scale), o.map_parallelism, str_cat("normalize", i, "/", o.normalize));
  }
  if (!o.feature_shape.empty()) {
    const Shape shape = o.feature_shape;
    ds = ds->map(
        [shape](Element e) {
          Shape want = shape;
          want.insert(want.begin(), e.at(0).dim(0));
          TS_CHECK(e[0].num_elements() == num_elements(want), "data: a batch of shape ", shape_str(e[0].shape()),
                   " cannot become the model's input shape ", shape_str(want));
          e[0] = e[0].reshaped(want);
          return e;
        },
        1, "reshape" + shape_str(shape));
  }
  if (o.repeat != 1) ds = ds->repeat(o.repeat);
  if (o.prefetch > 0) ds = ds->prefetch(o.prefetch);
  return ds;
}

}  // namespace tessera::train
