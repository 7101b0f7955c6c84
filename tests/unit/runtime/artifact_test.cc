// The .tsr artifact: round trips through encode/parse and a file, compiled signatures keep
// their state semantics, and damaged bytes (every truncation, every flipped byte of a small
// artifact) give a tessera::Error naming the problem, never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "ops/tensor_list.h"
#include "runtime/artifact.h"
#include "runtime/compiler.h"
#include "runtime/model.h"
#include "runtime/version.h"
#include "support/file.h"

namespace tessera {
namespace {

const std::string kServables = std::string(TESSERA_SOURCE_DIR) +
                               "/../shared/testdata/tf/serving/tensorflow_serving/servables/tensorflow/testdata/";
const std::string kCounter = kServables + "saved_model_counter/00000123";
const std::string kHalfPlusTwo = kServables + "saved_model_half_plus_two_cpu/00000123";

float scalar(const TensorMap& out) { return out.at("output").data<float>()[0]; }

ArtifactInfo info_for(const std::string& source) {
  ArtifactInfo info;
  info.target = "reference";
  info.tessera_version = kTesseraVersion;
  info.onednn_version = onednn_version_string();
  info.source = source;
  return info;
}

std::string encode_model(const std::string& path, const std::string& target = "reference") {
  LoadOptions o;
  o.target = target;
  o.passes = std::vector<std::string>{};
  o.use_cache = false;
  auto model = Model::load(path, o);
  ArtifactInfo info = info_for(path);
  info.target = target;
  // Packed for another ISA than this machine's best: the loader repacks from the constants.
  if (target == "cpu") info.isa = "scalar";
  return encode_artifact(info, model->compile_all(), model->variables());
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "." + std::to_string(::getpid()) + ".tsr")).string();
}

TEST(Artifact, CounterSignaturesKeepSessionState) {
  std::string path = temp_path("counter");
  LoadOptions o;
  o.target = "reference";
  o.passes = std::vector<std::string>{};
  o.use_cache = false;
  auto source = Model::load(kCounter, o);
  write_artifact(path, info_for(kCounter), source->compile_all(), source->variables());
  ASSERT_TRUE(is_artifact_file(path));
  auto model = Model::load(path);
  std::filesystem::remove(path);  // the mapping stays valid after unlink
  EXPECT_TRUE(model->compiled());
  EXPECT_EQ(model->target(), "reference");
  ASSERT_TRUE(model->artifact_info());
  EXPECT_EQ(model->artifact_info()->source, kCounter);
  Session session(model);
  EXPECT_EQ(scalar(session.run("get_counter", {})), 0.0f);
  EXPECT_EQ(scalar(session.run("incr_counter", {})), 1.0f);
  EXPECT_EQ(scalar(session.run("incr_counter_by", {{"delta", Tensor::scalar<float>(3.0f)}})), 4.0f);
  EXPECT_EQ(scalar(session.run("get_counter", {})), 4.0f);
  Session fresh(model);
  EXPECT_EQ(scalar(fresh.run("get_counter", {})), 0.0f);
}

TEST(Artifact, HalfPlusTwoRunsAnyBatchOnCpuTarget) {
  std::string bytes = encode_model(kHalfPlusTwo, "cpu");
  auto owner = std::make_shared<std::string>(bytes);
  Artifact a = parse_artifact(owner->data(), owner->size(), "hp2.tsr", owner);
  ASSERT_TRUE(a.signatures.count("serving_default"));
  std::string path = temp_path("hp2");
  write_file(path, bytes);
  auto model = Model::load(path);
  std::filesystem::remove(path);
  EXPECT_EQ(model->target(), "cpu");
  Session session(model);
  for (int64_t batch : {1, 3, 32}) {
    std::vector<float> x(batch);
    for (int64_t i = 0; i < batch; ++i) x[i] = static_cast<float>(i) - 1.5f;
    TensorMap out = session.run("serving_default", {{"x", Tensor::from_vector(x, {batch, 1})}});
    const Tensor& y = out.at("y");
    ASSERT_EQ(y.shape(), (Shape{batch, 1}));
    for (int64_t i = 0; i < batch; ++i) EXPECT_FLOAT_EQ(y.data<float>()[i], x[i] / 2 + 2);
  }
}

TEST(Artifact, EncodingIsDeterministic) {
  EXPECT_EQ(encode_model(kHalfPlusTwo), encode_model(kHalfPlusTwo));
}

void expect_error(const std::string& bytes, const std::string& needle) {
  auto owner = std::make_shared<std::string>(bytes);
  try {
    parse_artifact(owner->data(), owner->size(), "bad.tsr", owner);
    FAIL() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.tsr"), std::string::npos) << e.what();
  }
}

TEST(Artifact, ClearErrors) {
  std::string good = encode_model(kHalfPlusTwo);
  expect_error("hello world, not an artifact", "not a Tessera artifact");
  expect_error(good.substr(0, 40), "truncated");
  expect_error(good.substr(0, good.size() - 1), "truncated");
  std::string v = good;
  v[8] = 7;
  expect_error(v, "format version 7");
  std::string h = good;
  h[20] ^= 1;
  expect_error(h, "header checksum");
  // A byte in the middle of every section: the section's checksum names it.
  for (const char* section : {"meta", "graphs", "variables", "packed", "blobs"}) {
    uint32_t count;
    std::memcpy(&count, good.data() + 12, 4);
    bool found = false;
    for (uint32_t i = 0; i < count; ++i) {
      const char* e = good.data() + 64 + i * 32;
      uint32_t kind;
      uint64_t off, len;
      std::memcpy(&kind, e, 4);
      std::memcpy(&off, e + 8, 8);
      std::memcpy(&len, e + 16, 8);
      static const char* names[] = {"", "meta", "graphs", "variables", "packed", "blobs"};
      if (std::string(names[kind]) != section) continue;
      found = true;
      if (len == 0) break;
      std::string c = good;
      c[off + len / 2] ^= 0x40;
      expect_error(c, std::string("(") + section + "): checksum mismatch");
    }
    EXPECT_TRUE(found) << section;
  }
}

TEST(Artifact, EveryTruncationAndByteFlipIsAnErrorNotACrash) {
  std::string good = encode_model(kHalfPlusTwo);
  ASSERT_LT(good.size(), 64u * 1024);
  for (size_t n = 0; n < good.size(); ++n) {
    auto owner = std::make_shared<std::string>(good.substr(0, n));
    EXPECT_THROW(parse_artifact(owner->data(), owner->size(), "t.tsr", owner), Error) << "prefix " << n;
  }
  for (size_t i = 0; i < good.size(); ++i) {
    auto owner = std::make_shared<std::string>(good);
    (*owner)[i] ^= 0x5a;
    try {
      parse_artifact(owner->data(), owner->size(), "f.tsr", owner);
      // Only alignment padding between sections is not checksummed.
    } catch (const Error&) {
    }
  }
}

TEST(Artifact, CompileCacheHitSkipsCompilation) {
  std::string dir = (std::filesystem::temp_directory_path() / ("tsr_cache." + std::to_string(::getpid()))).string();
  setenv("TESSERA_CACHE_DIR", dir.c_str(), 1);
  LoadOptions o;
  o.target = "cpu";
  auto first = Model::load(kHalfPlusTwo, o);
  EXPECT_FALSE(first->cache_hit());
  auto second = Model::load(kHalfPlusTwo, o);
  EXPECT_TRUE(second->cache_hit());
  EXPECT_EQ(second->compile_seconds(), 0.0);
  Session s(second);
  EXPECT_FLOAT_EQ(s.run("serving_default", {{"x", Tensor::from_vector<float>({4.0f}, {1, 1})}}).at("y").data<float>()[0],
                  4.0f);
  o.isa = "scalar";  // other options, other key
  EXPECT_FALSE(Model::load(kHalfPlusTwo, o)->cache_hit());
  unsetenv("TESSERA_CACHE_DIR");
  std::filesystem::remove_all(dir);
}

TEST(Artifact, FuzzRegressionMalformedNodeIsAnError) {
  // Found by tsr_fuzzer: a node with too few inputs made an op's shape inference throw
  // std::out_of_range (a crash for the CLI); the loader reports it as a malformed node.
  std::string bytes =
      read_file(std::string(TESSERA_SOURCE_DIR) + "/fuzz/corpus/tsr_fuzzer/regression_infer_out_of_range.tsr");
  auto owner = std::make_shared<std::string>(bytes);
  EXPECT_THROW(parse_artifact(owner->data(), owner->size(), "r.tsr", owner, /*verify_checksums=*/false), Error);
}

TEST(Artifact, FoldedTensorListConstantsRoundTrip) {
  // Constant folding can turn a Keras RNN's accumulator into a Const holding a TensorList.
  auto g = std::make_shared<Graph>();
  g->name = "serving_default";
  Node* x = g->add("x", "_Arg", {}, {{"T", DType::kFloat32}, {"index", int64_t{0}}, {"_shape", PartialShape({-1})}});
  infer_node(*x);
  auto list = std::make_shared<TensorList>();
  list->element_dtype = DType::kFloat32;
  list->element_shape = PartialShape({2});
  list->tensors = {Tensor::from_vector<float>({1.5f, -2.0f}), Tensor()};
  Tensor handle = make_tensor_list_handle(list);
  Node* c = g->add("list", "Const", {}, {{"dtype", DType::kVariant}, {"value", handle}});
  infer_node(*c);
  g->args = {x};
  g->results = {x->out(0)};
  g->result_names = {"y"};
  g->control_results = {c};
  Signature sig;
  sig.key = "serving_default";
  sig.inputs = {{"x", "x:0", {}, DType::kFloat32, PartialShape({-1})}};
  sig.outputs = {{"y", "x:0", {}, DType::kFloat32, PartialShape({-1})}};
  CompiledSignature cs{bind_signature(sig, *g), g, nullptr};
  auto owner = std::make_shared<std::string>(encode_artifact(info_for("synthetic"), {{"serving_default", cs}}, {}));
  Artifact a = parse_artifact(owner->data(), owner->size(), "list.tsr", owner);
  const Graph& back = *a.signatures.at("serving_default").graph;
  const TensorList& got = tensor_list_of(back.find("list")->attr<Tensor>("value"));
  EXPECT_EQ(got.element_dtype, DType::kFloat32);
  EXPECT_EQ(got.element_shape, PartialShape({2}));
  ASSERT_EQ(got.tensors.size(), 2u);
  EXPECT_EQ(got.tensors[0].data<float>()[1], -2.0f);
  EXPECT_FALSE(got.tensors[1].valid());
}

TEST(CompiledModel, ConcurrentFirstRunsCompileOnce) {
  LoadOptions o;
  o.target = "cpu";
  o.use_cache = false;
  auto model = Model::load(kHalfPlusTwo, o);
  EXPECT_TRUE(model->compiled());
  std::vector<std::thread> threads;
  std::vector<float> got(8);
  std::vector<const CompiledSignature*> seen(8);
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      Session s(model);
      seen[i] = &model->compiled_signature("serving_default");
      got[i] = s.run("serving_default", {{"x", Tensor::from_vector<float>({2.0f * i}, {1, 1})}}).at("y").data<float>()[0];
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    EXPECT_FLOAT_EQ(got[i], i + 2.0f);
    EXPECT_EQ(seen[i], seen[0]);  // one compiled signature shared by every session
  }
  EXPECT_THROW(model->compiled_signature("no_such_signature"), Error);
}

TEST(CompiledModel, ReferenceTargetWithoutPassesInterpretsTheImportedGraph) {
  auto model = Model::load(kHalfPlusTwo);  // the C++ API default: reference, no compilation
  EXPECT_FALSE(model->compiled());
  EXPECT_EQ(model->target(), "reference");
  Session s(model);
  EXPECT_FLOAT_EQ(s.run("serving_default", {{"x", Tensor::from_vector<float>({1.0f}, {1, 1})}}).at("y").data<float>()[0],
                  2.5f);
}

}  // namespace
}  // namespace tessera
