// `tessera data-dump MODE ...` (hidden; for tests and debugging of the training I/O layer):
//   records FILE [--compression C] [--on-corrupt stop|skip]
//       one line per record: "<length> <hex bytes>"; skipped corruptions go to stderr
//   examples FILE --feature NAME:DTYPE:SHAPE[:DEFAULT]... --output OUT.npz [--compression C]
//       parses every record as a tf.train.Example (VarLen shape "var" is padded)
//   write-records FILE [--compression C] RECORD...      (records given as text)
//   write-checkpoint IN.npz PREFIX [--update-state] [--fault-stage K]
//       a TensorBundle with one tensor per array; --update-state also points the directory's
//       `checkpoint` file at it; --fault-stage dies right after stage K (see
//       io/tensor_bundle_writer.h)
//   rewrite-checkpoint IN_PREFIX OUT_PREFIX [--scale X]
//       reads a TensorBundle with our reader and writes it back with our writer (float tensors
//       multiplied by X); the keys, including TF2's object graph, are kept
//   write-events LOGDIR [--scalar TAG=STEP:VALUE]... [--graph GRAPH.pb] [--tensor-form]
//   pipeline (--mnist IMAGES LABELS | --numpy FILE | --csv FILE --label COL |
//             --tfrecord FILE --feature SPEC...) [--batch N] [--shuffle B] [--seed S]
//             [--parallel P] [--prefetch K] [--epochs E] [--scale X]
//       runs the input pipeline and prints batches, samples/s and the consumer's wait time
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "io/npy.h"
#include "io/tensor_bundle.h"
#include "io/tensor_bundle_writer.h"
#include "support/error.h"
#include "support/file.h"
#include "tools/cli.h"
#include "train/dataset.h"
#include "train/events.h"
#include "train/sources.h"
#include "train/example.h"
#include "train/tfrecord.h"

namespace tessera::cli {
namespace {

using namespace tessera::train;

const char* kUsage =
    "usage: tessera data-dump records FILE [--compression NONE|GZIP|ZLIB] [--on-corrupt stop|skip]\n"
    "       tessera data-dump examples FILE --feature NAME:DTYPE:SHAPE[:DEFAULT]... --output OUT.npz\n"
    "       tessera data-dump write-records FILE [--compression C] RECORD...\n"
    "       tessera data-dump write-checkpoint IN.npz PREFIX [--update-state] [--fault-stage K]\n"
    "       tessera data-dump rewrite-checkpoint IN_PREFIX OUT_PREFIX [--scale X]\n"
    "       tessera data-dump write-events LOGDIR [--scalar TAG=STEP:VALUE]... [--graph G.pb]\n"
    "                                     [--tensor-form]\n"
    "       tessera data-dump pipeline (--mnist IMAGES LABELS | --numpy FILE | --csv FILE --label COL\n"
    "                                  | --tfrecord FILE --feature SPEC...) [--batch N] [--shuffle B]\n"
    "                                  [--seed S] [--parallel P] [--prefetch K] [--epochs E] [--scale X]\n";

OnCorrupt on_corrupt_flag(const Args& args) {
  const std::string v = args.get("--on-corrupt", "stop");
  if (v == "stop") return OnCorrupt::kStop;
  if (v == "skip") return OnCorrupt::kSkip;
  fail("--on-corrupt must be stop or skip, not '", v, "'");
}

int dump_records(const Args& args) {
  TS_CHECK(args.positional.size() == 2, kUsage);
  TFRecordReader r(args.positional[1], compression_from_name(args.get("--compression")),
                   on_corrupt_flag(args));
  std::string rec;
  static const char* hex = "0123456789abcdef";
  while (r.next(&rec)) {
    std::string line = std::to_string(rec.size()) + " ";
    for (unsigned char c : rec) {
      line.push_back(hex[c >> 4]);
      line.push_back(hex[c & 15]);
    }
    std::printf("%s\n", line.c_str());
  }
  for (const auto& s : r.skipped()) std::fprintf(stderr, "skipped: '%s': %s\n", r.path().c_str(), s.c_str());
  return 0;
}

int dump_examples(const Args& args) {
  TS_CHECK(args.positional.size() == 2 && args.has("--output"), kUsage);
  std::vector<FeatureSpec> specs;
  for (const auto& f : args.all("--feature")) specs.push_back(parse_feature_spec(f));
  TS_CHECK(!specs.empty(), "data-dump examples: give at least one --feature");
  TFRecordReader r(args.positional[1], compression_from_name(args.get("--compression")));
  std::vector<std::string> records;
  std::string rec;
  while (r.next(&rec)) records.push_back(rec);
  std::vector<std::string_view> views(records.begin(), records.end());
  auto tensors = with_context(str_cat("'", args.positional[1], "'"), [&] { return parse_examples(views, specs); });
  npy::NamedTensors out;
  for (size_t i = 0; i < specs.size(); ++i) out.emplace_back(specs[i].name, tensors[i]);
  npy::save_npz(args.get("--output"), out);
  return 0;
}

int write_records(const Args& args) {
  TS_CHECK(args.positional.size() >= 2, kUsage);
  TFRecordWriter w(args.positional[1], compression_from_name(args.get("--compression")));
  for (size_t i = 2; i < args.positional.size(); ++i) w.write(args.positional[i]);
  w.close();
  return 0;
}

int write_checkpoint(const Args& args) {
  TS_CHECK(args.positional.size() == 3, kUsage);
  if (args.has("--fault-stage")) setenv("TESSERA_CHECKPOINT_FAULT_STAGE", args.get("--fault-stage").c_str(), 1);
  std::map<std::string, Tensor> tensors;
  for (auto& [name, t] : npy::load_npz(args.positional[1])) tensors[name] = t;
  const std::string prefix = args.positional[2];
  write_tensor_bundle(prefix, tensors);
  if (args.has("--update-state")) {
    const std::filesystem::path p(prefix);
    const std::string dir = p.parent_path().empty() ? "." : p.parent_path().string();
    // Keep the checkpoints already listed, then add this one (TF's CheckpointState order).
    std::vector<std::string> all;
    const std::string state = join_path(dir, "checkpoint");
    if (file_exists(state)) {
      const std::string text = read_file(state);
      const std::string field = "all_model_checkpoint_paths: \"";
      for (size_t pos = text.find(field); pos != std::string::npos; pos = text.find(field, pos + 1)) {
        const size_t start = pos + field.size();
        const size_t end = text.find('"', start);
        if (end != std::string::npos) all.push_back(text.substr(start, end - start));
      }
    }
    const std::string name = p.filename().string();
    std::erase(all, name);
    all.push_back(name);
    write_checkpoint_state(dir, name, all);
  }
  return 0;
}

int rewrite_checkpoint(const Args& args) {
  TS_CHECK(args.positional.size() == 3, kUsage);
  const float scale = std::stof(args.get("--scale", "1"));
  TensorBundleReader reader(args.positional[1]);
  TensorBundleWriter writer(args.positional[2]);
  for (const auto& key : reader.keys()) {
    Tensor t = reader.read(key);
    if (t.dtype() == DType::kFloat32) {
      t = t.clone();
      for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] *= scale;
    }
    writer.add(key, t);
  }
  writer.finish();
  return 0;
}

int write_events(const Args& args) {
  TS_CHECK(args.positional.size() == 2, kUsage);
  EventWriter w(args.positional[1], "",
                args.has("--tensor-form") ? EventWriter::ScalarForm::kTensor
                                          : EventWriter::ScalarForm::kSimpleValue);
  for (const auto& s : args.all("--scalar")) {
    const size_t eq = s.rfind('='), colon = s.rfind(':');
    TS_CHECK(eq != std::string::npos && colon != std::string::npos && colon > eq,
             "--scalar '", s, "': expected TAG=STEP:VALUE");
    w.add_scalar(s.substr(0, eq), std::stoll(s.substr(eq + 1, colon - eq - 1)),
                 std::stod(s.substr(colon + 1)));
  }
  if (args.has("--graph")) w.add_graph(read_file(args.get("--graph")));
  w.close();
  std::printf("%s\n", w.path().c_str());
  return 0;
}

int run_pipeline(const Args& args) {
  DatasetPtr ds;
  if (args.has("--mnist")) {
    TS_CHECK(args.positional.size() == 2, "--mnist IMAGES LABELS: give the labels file too");
    ds = Dataset::from_tensors(load_mnist(args.get("--mnist"), args.positional[1]));
  } else if (args.has("--numpy")) {
    ds = Dataset::from_tensors(load_numpy(args.get("--numpy")));
  } else if (args.has("--csv")) {
    ds = Dataset::from_tensors(load_csv(args.get("--csv"), args.get("--label", "label")));
  } else if (args.has("--tfrecord")) {
    ds = Dataset::tfrecord({args.get("--tfrecord")}, compression_from_name(args.get("--compression")));
  } else {
    fail(kUsage);
  }
  const int parallel = std::stoi(args.get("--parallel", "1"));
  const int64_t batch = std::stoll(args.get("--batch", "32"));
  if (args.has("--shuffle"))
    ds = ds->shuffle(std::stoull(args.get("--shuffle")), std::stoull(args.get("--seed", "0")));
  if (args.has("--tfrecord")) {
    std::vector<FeatureSpec> specs;
    for (const auto& f : args.all("--feature")) specs.push_back(parse_feature_spec(f));
    ds = ds->batch(batch)->map(parse_example(specs), parallel, "parse");
  } else {
    // Normalising whole batches amortises the per-call overhead (as tf.data guides advise).
    ds = ds->batch(batch)->map(normalize(0, std::stof(args.get("--scale", "1"))), parallel, "normalize");
  }
  ds = ds->repeat(std::stoll(args.get("--epochs", "1")))->prefetch(std::stoull(args.get("--prefetch", "2")));
  Pipeline p(ds);
  Element e;
  int64_t samples = 0, batches = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (p.next(&e)) {
    samples += e[0].dim(0);
    ++batches;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("batches %lld samples %lld seconds %.4f samples_per_s %.0f wait_s %.4f\n",
              static_cast<long long>(batches), static_cast<long long>(samples), secs,
              samples / std::max(secs, 1e-9), p.stats().wait_seconds);
  return 0;
}

}  // namespace

int cmd_data_dump(int argc, char** argv) {
  Args args = parse_args(argc, argv, {"--compression", "--on-corrupt", "--feature", "--output",
                                      "--fault-stage", "--scalar", "--graph", "--mnist", "--numpy",
                                      "--csv", "--label", "--tfrecord", "--batch", "--shuffle",
                                      "--seed", "--parallel", "--prefetch", "--epochs", "--scale"});
  if (args.has("--help") || args.positional.empty()) {
    std::fputs(kUsage, args.positional.empty() && !args.has("--help") ? stderr : stdout);
    return args.has("--help") ? 0 : 2;
  }
  const std::string& mode = args.positional[0];
  if (mode == "records") return dump_records(args);
  if (mode == "examples") return dump_examples(args);
  if (mode == "write-records") return write_records(args);
  if (mode == "write-checkpoint") return write_checkpoint(args);
  if (mode == "write-events") return write_events(args);
  if (mode == "rewrite-checkpoint") return rewrite_checkpoint(args);
  if (mode == "pipeline") return run_pipeline(args);
  fail("data-dump: unknown mode '", mode, "'\n", kUsage);
}

}  // namespace tessera::cli
