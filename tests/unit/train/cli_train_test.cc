// The `tessera train` plumbing with a fake Trainer: data specs, the loop, checkpoints
// (layout, keep, resume == uninterrupted, crash at every writer stage), export, progress, stats.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "io/npy.h"
#include "io/tensor_bundle.h"
#include "support/error.h"
#include "support/file.h"
#include "tensorflow/core/protobuf/trackable_object_graph.pb.h"
#include "train/checkpoint.h"
#include "train/cli_fake_trainer.h"
#include "train/data_flags.h"
#include "train/export.h"
#include "train/progress.h"
#include "train/train_loop.h"
#include "train/train_test_util.h"

namespace tessera::train {
namespace {

using testing::FakeTrainer;
using testing::TempDir;

// y = 2 x0 - x1 + 0.5 over n rows, saved as an npz with members x and y.
std::string write_regression(const TempDir& dir, int64_t n) {
  Tensor x(DType::kFloat32, {n, 2}), y(DType::kFloat32, {n});
  for (int64_t i = 0; i < n; ++i) {
    float a = static_cast<float>((i * 37) % 17) / 17.0f, b = static_cast<float>((i * 11) % 13) / 13.0f;
    x.data<float>()[2 * i] = a;
    x.data<float>()[2 * i + 1] = b;
    y.data<float>()[i] = 2 * a - b + 0.5f;
  }
  std::string path = dir.file("reg.npz");
  npy::save_npz(path, {{"x", x}, {"y", y}});
  return path;
}

DatasetPtr regression_data(const std::string& npz, uint64_t seed = 3) {
  DataOptions o;
  o.batch = 8;
  o.shuffle_buffer = 50;
  o.seed = seed;
  return make_dataset(parse_data_spec("npz:" + npz), o);
}

LoopOptions quiet_loop(int64_t steps) {
  LoopOptions o;
  o.steps = steps;
  o.quiet = true;
  return o;
}

TEST(CliDataSpec, ParsesEveryForm) {
  DataSpec m = parse_data_spec("mnist:a.gz,b.gz:0-8000");
  EXPECT_EQ(m.kind, "mnist");
  EXPECT_EQ(m.files, (std::vector<std::string>{"a.gz", "b.gz"}));
  EXPECT_EQ(m.start, 0);
  EXPECT_EQ(m.end, 8000);
  DataSpec z = parse_data_spec("npz:d.npz:x=img,y=lab");
  EXPECT_EQ(z.x_key, "img");
  EXPECT_EQ(z.y_key, "lab");
  DataSpec c = parse_data_spec("csv:t.csv:label=target");
  EXPECT_EQ(c.label, "target");
  EXPECT_THROW(parse_data_spec("csv:t.csv"), Error);
  EXPECT_THROW(parse_data_spec("parquet:x"), Error);
  EXPECT_THROW(parse_data_spec("npy:only_one.npy"), Error);
  EXPECT_THROW(parse_data_spec("npz:d.npz:bogus"), Error);
  TakeIndices t = parse_take_indices("perm.npy:8000:10000");
  EXPECT_EQ(t.perm_file, "perm.npy");
  EXPECT_EQ(t.start, 8000);
  EXPECT_EQ(t.end, 10000);
  TakeIndices r = parse_take_indices("5:9");
  EXPECT_TRUE(r.perm_file.empty());
  EXPECT_EQ(r.start, 5);
  EXPECT_THROW(parse_take_indices("perm.npy:5"), Error);
}

TEST(CliDataSpec, TfrecordFeatureSpecWithColons) {
  TempDir dir;
  write_file(dir.file("a.tfrecord"), "");
  DataSpec s = parse_data_spec("tfrecord:" + dir.file("*.tfrecord") + ":x:float32:2x3,y:int64::label=y:gzip");
  ASSERT_EQ(s.features.size(), 2u);
  EXPECT_EQ(s.features[0].name, "x");
  EXPECT_EQ(s.features[0].shape, (Shape{2, 3}));
  EXPECT_EQ(s.features[1].dtype, DType::kInt64);
  EXPECT_EQ(s.label, "y");
  EXPECT_EQ(s.compression, Compression::kGzip);
  EXPECT_THROW(parse_data_spec("tfrecord:" + dir.file("*.tfrecord") + ":x:float32:2:label=z"), Error);
  EXPECT_THROW(parse_data_spec("tfrecord:" + dir.file("none*.rec") + ":x:float32:2,y:int64::label=y"), Error);
}

TEST(CliDataSpec, PermutationSliceNormaliseReshape) {
  TempDir dir;
  Tensor x(DType::kUInt8, {6, 2, 2}), y(DType::kUInt8, {6});
  for (int i = 0; i < 24; ++i) x.data<uint8_t>()[i] = static_cast<uint8_t>(i * 10);
  for (int i = 0; i < 6; ++i) y.data<uint8_t>()[i] = static_cast<uint8_t>(i);
  npy::save_npy(dir.file("x.npy"), x);
  npy::save_npy(dir.file("y.npy"), y);
  npy::save_npy(dir.file("perm.npy"), Tensor::from_vector<int64_t>({5, 3, 1, 0, 2, 4}, {6}));
  DataOptions o;
  o.batch = 2;
  o.repeat = 1;
  o.normalize = 255;
  o.feature_shape = {4};
  o.take = parse_take_indices(dir.file("perm.npy") + ":1:5");  // rows 3, 1, 0, 2
  Pipeline p(make_dataset(parse_data_spec("npy:" + dir.file("x.npy") + "," + dir.file("y.npy")), o));
  Element e;
  ASSERT_TRUE(p.next(&e));
  EXPECT_EQ(e[0].shape(), (Shape{2, 4}));
  EXPECT_EQ(e[0].dtype(), DType::kFloat32);
  EXPECT_FLOAT_EQ(e[0].data<float>()[0], 120.0f / 255.0f);  // row 3 starts at element 12
  EXPECT_EQ(e[1].dtype(), DType::kInt64);
  EXPECT_EQ(e[1].data<int64_t>()[0], 3);
  EXPECT_EQ(e[1].data<int64_t>()[1], 1);
  ASSERT_TRUE(p.next(&e));
  EXPECT_EQ(e[1].data<int64_t>()[0], 0);
  EXPECT_FALSE(p.next(&e));
  // A permutation entry out of range is an error naming it.
  npy::save_npy(dir.file("bad.npy"), Tensor::from_vector<int64_t>({0, 9}, {2}));
  o.take = parse_take_indices(dir.file("bad.npy"));
  EXPECT_THROW(make_dataset(parse_data_spec("npy:" + dir.file("x.npy") + "," + dir.file("y.npy")), o), Error);
}

TEST(CliLoop, TrainsAndEvaluates) {
  TempDir dir;
  const std::string npz = write_regression(dir, 200);
  FakeTrainer t(2);
  DataOptions vo;
  vo.batch = 64;
  vo.repeat = 1;
  vo.drop_remainder = false;
  LoopOptions o = quiet_loop(150);
  o.stats_json = dir.file("stats.json");
  LoopResult r = run_training(t, regression_data(npz), make_dataset(parse_data_spec("npz:" + npz), vo), o);
  EXPECT_EQ(r.stats.steps(), 150);
  EXPECT_LT(r.stats.losses().back(), 0.1 * r.stats.losses().front());
  ASSERT_TRUE(r.has_eval);
  EXPECT_EQ(r.eval.samples, 200);  // 64 * 3 + 8: the last partial batch is evaluated too
  EXPECT_EQ(t.evals_run, 4);
  const std::string json = read_file(o.stats_json);
  for (const char* field : {"\"steps\": 150", "\"final_loss\"", "\"eval_loss\"", "\"eval_accuracy\"",
                            "\"samples_per_second\"", "\"input_wait_fraction\"", "\"peak_rss_bytes\"", "\"losses\""})
    EXPECT_NE(json.find(field), std::string::npos) << field;
}

TEST(CliCheckpoint, LayoutKeysAndObjectGraph) {
  FakeTrainer t(3);
  TrainState s = t.state();
  s.step = 7;
  s.seed = ~uint64_t{0} - 5;  // above INT64_MAX: stored as its bits
  s.samples_seen = 56;
  PipelineState pos{7, 1234567};
  auto tensors = checkpoint_tensors(s, pos, {}, 1);
  EXPECT_TRUE(tensors.count(FakeTrainer::kW));
  EXPECT_TRUE(tensors.count("variables/0/.OPTIMIZER_SLOT/optimizer/momentum/.ATTRIBUTES/VARIABLE_VALUE"));
  EXPECT_EQ(tensors.at(kIterationsKey).scalar_int(), 7);
  tensorflow::TrackableObjectGraph g;
  ASSERT_TRUE(g.ParseFromString(tensors.at(kObjectGraphKey).strings().at(0)));
  // Root children: the two variables, optimizer, save_counter, tessera.
  std::map<std::string, int> root;
  for (const auto& c : g.nodes(0).children()) root[c.local_name()] = c.node_id();
  ASSERT_TRUE(root.count("optimizer"));
  const auto& opt = g.nodes(root["optimizer"]);
  ASSERT_EQ(opt.slot_variables_size(), 2);
  for (const auto& sv : opt.slot_variables()) {
    EXPECT_EQ(sv.slot_name(), "momentum");
    const std::string key = g.nodes(sv.slot_variable_node_id()).attributes(0).checkpoint_key();
    const std::string var = g.nodes(sv.original_variable_node_id()).attributes(0).checkpoint_key();
    EXPECT_EQ(key, checkpoint_slot_key(var, "momentum"));
    EXPECT_TRUE(tensors.count(key));
  }
  // Round trip through the writer and reader.
  TempDir dir;
  write_tensor_bundle(dir.file("c"), tensors);
  TrainState back = t.state();
  PipelineState pos2;
  read_checkpoint(dir.file("c"), &back, &pos2);
  EXPECT_EQ(back.step, 7);
  EXPECT_EQ(back.seed, s.seed);
  EXPECT_EQ(back.samples_seen, 56);
  EXPECT_EQ(pos2.elements, 7u);
  EXPECT_EQ(pos2.fingerprint, 1234567u);
  // A model whose variable has another shape is refused, naming the key.
  FakeTrainer other(4);
  TrainState wrong = other.state();
  try {
    read_checkpoint(dir.file("c"), &wrong, nullptr);
    FAIL() << "expected a shape mismatch";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("variables/0"), std::string::npos) << e.what();
  }
}

TEST(CliCheckpoint, AliasesFromTheModelObjectGraph) {
  // A Keras 3 style bundle: the same variable under variables/0 and _all_variables/0.
  tensorflow::TrackableObjectGraph g;
  g.add_nodes();
  auto add = [&](const std::string& key, const std::string& full) {
    auto* n = g.add_nodes();
    auto* a = n->add_attributes();
    a->set_name("VARIABLE_VALUE");
    a->set_full_name(full);
    a->set_checkpoint_key(key);
  };
  add("variables/0/.ATTRIBUTES/VARIABLE_VALUE", "dense/kernel");
  add("_all_variables/0/.ATTRIBUTES/VARIABLE_VALUE", "dense/kernel");
  add("variables/1/.ATTRIBUTES/VARIABLE_VALUE", "dense/bias");
  std::string bytes;
  g.SerializeToString(&bytes);
  Tensor k = Tensor::from_vector<float>({1, 2}, {2});
  std::map<std::string, Tensor> bundle = {{kObjectGraphKey, Tensor::string_scalar(bytes)},
                                          {"variables/0/.ATTRIBUTES/VARIABLE_VALUE", k},
                                          {"_all_variables/0/.ATTRIBUTES/VARIABLE_VALUE", k.clone()},
                                          {"variables/1/.ATTRIBUTES/VARIABLE_VALUE", Tensor::scalar<float>(0)}};
  ModelLayout layout = model_layout_from_bundle(bundle);
  ASSERT_EQ(layout.aliases.size(), 2u);
  EXPECT_EQ(layout.aliases.at("variables/0/.ATTRIBUTES/VARIABLE_VALUE"),
            std::vector<std::string>{"_all_variables/0/.ATTRIBUTES/VARIABLE_VALUE"});

  // Export substitutes trained values under both keys and keeps everything else.
  TempDir dir;
  const std::string src = dir.file("model");
  std::filesystem::create_directories(src + "/variables");
  std::filesystem::create_directories(src + "/assets");
  write_file(src + "/saved_model.pb", "graph bytes");
  write_file(src + "/fingerprint.pb", "stale");
  write_file(src + "/assets/vocab.txt", "a\nb\n");
  write_tensor_bundle(src + "/variables/variables", bundle);
  Tensor trained = Tensor::from_vector<float>({5, 6}, {2});
  export_saved_model(src, dir.file("out"), {{"variables/0/.ATTRIBUTES/VARIABLE_VALUE", trained}});
  EXPECT_EQ(read_file(dir.file("out/saved_model.pb")), "graph bytes");
  EXPECT_EQ(read_file(dir.file("out/assets/vocab.txt")), "a\nb\n");
  EXPECT_FALSE(file_exists(dir.file("out/fingerprint.pb")));
  TensorBundleReader r(dir.file("out/variables/variables"));
  EXPECT_EQ(r.keys().size(), 4u);
  for (const char* key : {"variables/0/.ATTRIBUTES/VARIABLE_VALUE", "_all_variables/0/.ATTRIBUTES/VARIABLE_VALUE"})
    EXPECT_EQ(r.read(key).data<float>()[1], 6.0f) << key;
  EXPECT_EQ(r.read(kObjectGraphKey).strings().at(0), bytes);
  // A key the model does not have is refused; the previous export stays.
  EXPECT_THROW(export_saved_model(src, dir.file("out"), {{"nope", trained}}), Error);
  EXPECT_TRUE(file_exists(dir.file("out/saved_model.pb")));
}

TEST(CliCheckpoint, ResumeContinuesTheSameCurveAndKeepsN) {
  TempDir dir;
  const std::string npz = write_regression(dir, 100);
  FakeTrainer whole(2);
  LoopResult full = run_training(whole, regression_data(npz), nullptr, quiet_loop(60));

  LoopOptions o = quiet_loop(25);
  o.checkpoint_dir = dir.file("ckpt");
  o.checkpoint_every = 10;
  o.keep = 2;
  FakeTrainer first(2);
  run_training(first, regression_data(npz), nullptr, o);
  // Saved at 10, 20 and 25 (the end); keep 2.
  EXPECT_EQ(listed_checkpoints(o.checkpoint_dir), (std::vector<std::string>{"ckpt-20", "ckpt-25"}));
  EXPECT_FALSE(file_exists(dir.file("ckpt/ckpt-10.index")));

  FakeTrainer second(2);
  o.steps = 60;
  o.resume = true;
  LoopResult rest = run_training(second, regression_data(npz), nullptr, o);
  EXPECT_TRUE(rest.resumed);
  EXPECT_EQ(rest.first_step, 25);
  ASSERT_EQ(rest.stats.steps(), 35);
  for (int i = 0; i < 35; ++i)
    EXPECT_EQ(rest.stats.losses()[static_cast<size_t>(i)], full.stats.losses()[static_cast<size_t>(25 + i)]) << i;
  EXPECT_EQ(std::memcmp(second.state().variables.at(FakeTrainer::kW).raw(),
                        whole.state().variables.at(FakeTrainer::kW).raw(), 8),
            0);
}

TEST(CliCheckpoint, CrashAtEveryStageKeepsThePreviousCheckpoint) {
  TempDir dir;
  const std::string npz = write_regression(dir, 100);
  FakeTrainer whole(2);
  LoopResult full = run_training(whole, regression_data(npz), nullptr, quiet_loop(30));
  for (int stage = 1; stage <= kNumCheckpointStages; ++stage) {
    SCOPED_TRACE(checkpoint_stage_name(static_cast<CheckpointStage>(stage)));
    const std::string ck = dir.file("crash" + std::to_string(stage));
    LoopOptions o = quiet_loop(20);
    o.checkpoint_dir = ck;
    o.checkpoint_every = 10;
    // Crash while writing the second checkpoint (step 20).
    int saves = 0;
    o.checkpoint_options.after_stage = [&](CheckpointStage s) {
      if (static_cast<int>(s) == kNumCheckpointStages) ++saves;
      if (saves == 1 && static_cast<int>(s) == stage && s != CheckpointStage::kStateRenamed) throw std::runtime_error("crash");
      if (saves == 2 && static_cast<int>(s) == stage) throw std::runtime_error("crash");
    };
    FakeTrainer t(2);
    EXPECT_THROW(run_training(t, regression_data(npz), nullptr, o), std::runtime_error);
    const std::string latest = latest_checkpoint(ck);
    // Before the state file is replaced the latest is still ckpt-10; after, ckpt-20.
    EXPECT_EQ(latest, ck + (stage == kNumCheckpointStages ? "/ckpt-20" : "/ckpt-10"));
    FakeTrainer resumed(2);
    LoopOptions r = quiet_loop(30);
    r.checkpoint_dir = ck;
    r.resume = true;
    LoopResult rest = run_training(resumed, regression_data(npz), nullptr, r);
    const size_t from = static_cast<size_t>(rest.first_step);
    ASSERT_EQ(from + static_cast<size_t>(rest.stats.steps()), 30u);
    for (size_t i = 0; i < static_cast<size_t>(rest.stats.steps()); ++i)
      EXPECT_EQ(rest.stats.losses()[i], full.stats.losses()[from + i]);
  }
}

TEST(CliProgress, FormatsAndSummarises) {
  StepReport r;
  r.step = 50;
  r.total = 200;
  r.loss = 0.25;
  r.accuracy = 0.9;
  r.samples_per_second = 1234;
  r.eta_seconds = 75;
  r.input_wait_fraction = 0.031;
  const std::string line = ProgressBar::format(r, 0);
  for (const char* part : {"step 50/200", "loss 0.2500", "acc 0.9000", "1234 samples/s", "ETA 1:15", "input wait 3.1%"})
    EXPECT_NE(line.find(part), std::string::npos) << line;
  EXPECT_EQ(format_duration(3725), "1:02:05");
  RunStats s;
  s.add_step(1, 0.5, 10, 100.0, 0);  // warm-up outlier
  for (int i = 0; i < 5; ++i) s.add_step(1, 0.5, 10, 0.5, 0.5);
  EXPECT_DOUBLE_EQ(s.samples_per_second(1), 10.0);
  EXPECT_NEAR(s.input_wait_fraction(), 2.5 / 105.0, 1e-12);
  EXPECT_GT(peak_rss_bytes(), 0);
}

}  // namespace
}  // namespace tessera::train
