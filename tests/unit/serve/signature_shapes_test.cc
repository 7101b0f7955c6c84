// Shapes and dtypes the way TF Serving treats them: SignatureDef shapes are not enforced (the
// signature graph is re-inferred and compiled for other shapes the graph takes, a bounded cache
// per model), and a SignatureDef dtype is metadata: feeds are checked against the tensor's own.
#include <gtest/gtest.h>

#include <thread>

#include "serve/serve_test_util.h"

namespace tessera::serve {
namespace {

using namespace serve_test;
namespace tfe = ::tensorflow::error;

constexpr const char* kTwo = "saved_model_half_plus_two_cpu/00000123";
constexpr const char* kThree = "saved_model_half_plus_three/00000123";

// A TF1 SavedModel (text form) whose signature declares x as [-1,4] but whose placeholder has
// no shape: y = x @ ones(4,2). Shapes other than [n,4] get past the placeholder and must be
// refused by MatMul's own shape rule.
constexpr const char* kMatMulModel = R"pb(
saved_model_schema_version: 1
meta_graphs {
  meta_info_def { tags: "serve" }
  graph_def {
    node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
    node {
      name: "w" op: "Const"
      attr { key: "dtype" value { type: DT_FLOAT } }
      attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 4 } dim { size: 2 } }
                                           float_val: [1, 1, 1, 1, 1, 1, 1, 1] } } }
    }
    node {
      name: "y" op: "MatMul" input: "x" input: "w"
      attr { key: "T" value { type: DT_FLOAT } }
      attr { key: "transpose_a" value { b: false } }
      attr { key: "transpose_b" value { b: false } }
    }
  }
  signature_def {
    key: "serving_default"
    value {
      inputs { key: "x" value { name: "x:0" dtype: DT_FLOAT tensor_shape { dim { size: -1 } dim { size: 4 } } } }
      outputs { key: "y" value { name: "y:0" dtype: DT_FLOAT tensor_shape { dim { size: -1 } dim { size: 2 } } } }
      method_name: "tensorflow/serving/predict"
    }
  }
}
)pb";

tfs::PredictRequest predict_shaped(const std::string& model, const std::vector<float>& x, const std::vector<int64_t>& shape) {
  tfs::PredictRequest r;
  r.mutable_model_spec()->set_name(model);
  auto& t = (*r.mutable_inputs())["x"];
  t.set_dtype(tensorflow::DT_FLOAT);
  for (int64_t d : shape) t.mutable_tensor_shape()->add_dim()->set_size(d);
  for (float v : x) t.add_float_val(v);
  return r;
}

std::vector<int64_t> dims_of(const tensorflow::TensorProto& t) {
  std::vector<int64_t> out;
  for (const auto& d : t.tensor_shape().dim()) out.push_back(d.size());
  return out;
}

// TF Serving's documented body {"instances": [2.0, 3.0, 4.0]} feeds x as [3] (declared [-1,1]).
void expect_documented_predict(ServerCore& core) {
  tfs::PredictResponse resp;
  ServeStatus st = core.predict(predict_shaped("default", {2, 3, 4}, {3}), &resp, {});
  ASSERT_TRUE(st.ok()) << st.message;
  const auto& y = resp.outputs().at("y");
  EXPECT_EQ(dims_of(y), (std::vector<int64_t>{3}));
  ASSERT_EQ(y.float_val_size(), 3);
  EXPECT_EQ(y.float_val(0), 3.0f);
  EXPECT_EQ(y.float_val(1), 3.5f);
  EXPECT_EQ(y.float_val(2), 4.0f);
  // And a shape the SignatureDef does not declare at all: [2,2].
  tfs::PredictResponse r2;
  st = core.predict(predict_shaped("default", {0, 2, 4, 6}, {2, 2}), &r2, {});
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(dims_of(r2.outputs().at("y")), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(r2.outputs().at("y").float_val(3), 5.0f);
}

TEST(SignatureShapes, UndeclaredShapesRunLikeTfOnEveryTarget) {
  for (const char* target : {"reference", "cpu"}) {
    SCOPED_TRACE(target);
    ServerOptions o = reference_options();
    o.target = target;
    expect_documented_predict(*serve_folder(kServables + "saved_model_half_plus_two_cpu", "default", o));
  }
}

TEST(SignatureShapes, CompileCacheHitImportsItsSourceForOtherShapes) {
  // The second load of a SavedModel on the cpu target comes from the compile cache (a .tsr with
  // no graph of its own); other shapes need the SavedModel's graph, imported on first use.
  LoadOptions lo;
  lo.target = "cpu";
  Model::load(kServables + kTwo, lo);
  auto model = Model::load(kServables + kTwo, lo);
  ASSERT_TRUE(model->cache_hit());
  Session session(model);
  auto out = session.run("serving_default", {{"x", Tensor::from_vector<float>({2, 3, 4}, {3})}});
  EXPECT_EQ(out.at("y").shape(), (Shape{3}));
  EXPECT_EQ(out.at("y").data<float>()[2], 4.0f);
}

TEST(SignatureShapes, BatchedRequestsOfUndeclaredShapesSplitBack) {
  ServerOptions o = reference_options();
  o.enable_batching = true;
  auto core = serve_folder(kServables + "saved_model_half_plus_two_cpu", "default", o);
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      const int n = 1 + i % 3;
      std::vector<float> x(n, static_cast<float>(i));
      // Half of the callers send [n] (undeclared), half [n,1] (declared): never merged together.
      std::vector<int64_t> shape = i % 2 ? std::vector<int64_t>{n} : std::vector<int64_t>{n, 1};
      tfs::PredictResponse resp;
      ServeStatus st = core->predict(predict_shaped("default", x, shape), &resp, {});
      if (st.ok() && dims_of(resp.outputs().at("y")) == shape && resp.outputs().at("y").float_val_size() == n &&
          resp.outputs().at("y").float_val(n - 1) == 0.5f * i + 2)
        ++good;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 8);
}

TEST(SignatureShapes, VariantsAreSharedAcrossBatchSizesAndBounded) {
  LoadOptions lo;
  lo.target = "reference";
  auto model = Model::load(kServables + kTwo, lo);
  auto a = model->compiled_for_shapes("serving_default", {{"x", Shape{3}}});
  auto b = model->compiled_for_shapes("serving_default", {{"x", Shape{5}}});
  EXPECT_EQ(a.get(), b.get()) << "dim 0 is free: one variant serves every batch size";
  // Past kMaxShapeVariants other shapes, the least recently used one is dropped (and its
  // holders keep it alive): asking again compiles a new one.
  for (int64_t k = 2; k < static_cast<int64_t>(Model::kMaxShapeVariants) + 2; ++k)
    model->compiled_for_shapes("serving_default", {{"x", Shape{1, 1, k}}});
  auto c = model->compiled_for_shapes("serving_default", {{"x", Shape{3}}});
  EXPECT_NE(a.get(), c.get());
  Session session(model);
  auto out = session.run("serving_default", {{"x", Tensor::from_vector<float>({4}, {1})}});
  EXPECT_EQ(out.at("y").data<float>()[0], 4.0f);
}

TEST(SignatureShapes, PlaceholderShapesStillBind) {
  // The TF2 export's placeholder is [1]: [2] is refused, naming the input and the placeholder.
  auto core = serve_folder(kServables + "saved_model_half_plus_two_tf2_cpu");
  tfs::PredictResponse resp;
  ServeStatus st = core->predict(predict_shaped("default", {2, 3}, {2}), &resp, {});
  EXPECT_EQ(st.code, tfe::INVALID_ARGUMENT);
  EXPECT_NE(st.message.find("input 'x' expects shape [1]"), std::string::npos) << st.message;
  EXPECT_NE(st.message.find("PlaceholderWithDefault 'serving_default_x'"), std::string::npos) << st.message;
  ASSERT_TRUE(core->predict(predict_shaped("default", {2}, {1}), &resp, {}).ok());
}

TEST(SignatureShapes, ShapesTheGraphCannotTakeFailNamingTheNode) {
  TempDir dir;
  write_file(dir.path / "1" / "saved_model.pbtxt", kMatMulModel);
  for (const char* target : {"reference", "cpu"}) {
    SCOPED_TRACE(target);
    ServerOptions o = reference_options();
    o.target = target;
    auto core = serve_folder(dir.str(), "default", o);
    tfs::PredictResponse resp;
    ServeStatus st = core->predict(predict_shaped("default", std::vector<float>(8, 1), {2, 4}), &resp, {});
    ASSERT_TRUE(st.ok()) << st.message;
    EXPECT_EQ(resp.outputs().at("y").float_val(0), 4.0f);
    for (const std::vector<int64_t>& bad : {std::vector<int64_t>{2, 5}, std::vector<int64_t>{10}}) {
      st = core->predict(predict_shaped("default", std::vector<float>(10, 1), bad), &resp, {});
      EXPECT_EQ(st.code, tfe::INVALID_ARGUMENT) << st.message;
      EXPECT_NE(st.message.find("MatMul"), std::string::npos) << st.message;
      EXPECT_NE(st.message.find("declared shapes differ"), std::string::npos) << st.message;
    }
    // A failed variant is remembered: the same error again, and good shapes still serve.
    st = core->predict(predict_shaped("default", std::vector<float>(10, 1), {2, 5}), &resp, {});
    EXPECT_NE(st.message.find("MatMul"), std::string::npos) << st.message;
    EXPECT_TRUE(core->predict(predict_shaped("default", std::vector<float>(4, 1), {1, 4}), &resp, {}).ok());
  }
}

TEST(SignatureShapes, TsrArtifactsRunOnlyTheirCompiledShapes) {
  TempDir dir;
  const std::string file = (dir.path / "m.tsr").string();
  write_reference_tsr(kTwo, file);
  auto model = Model::load(file);
  Session session(model);
  try {
    session.run("serving_default", {{"x", Tensor::from_vector<float>({2, 3, 4}, {3})}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("compiled artifact"), std::string::npos) << e.what();
  }
}

TEST(SignatureDtypes, Tf1RegressSignatureWhoseDefDisagreesWithItsPlaceholder) {
  // half_plus_three's regress signature declares its input DT_FLOAT; the tensor it names is the
  // DT_STRING tf_example placeholder. TF Serving feeds it serialized examples (the SignatureDef
  // dtype is not checked), and so does Tessera, from the SavedModel and from a .tsr.
  TempDir dir;
  write_reference_tsr(kThree, dir.path / "2" / "model.tsr");
  add_version(dir.path, 1, kThree);
  auto core = serve_folder(dir.str());
  tfs::ReloadConfigRequest rr;  // serve both versions
  *rr.mutable_config() = config_for(dir.str(), "model_version_policy { all {} }", "default");
  tfs::ReloadConfigResponse rresp;
  ASSERT_TRUE(core->reload_config(rr, &rresp).ok());
  for (int64_t version : {1, 2}) {  // the SavedModel, then the .tsr
    SCOPED_TRACE(version);
    auto req = examples_x<tfs::RegressionRequest>("default", "tensorflow/serving/regress", {2.0f}, version);
    tfs::RegressionResponse resp;
    ServeStatus st = core->regress(req, &resp, {});
    ASSERT_TRUE(st.ok()) << st.message;
    ASSERT_EQ(resp.result().regressions_size(), 1);
    EXPECT_EQ(resp.result().regressions(0).value(), 4.0f);  // 0.5 * 2 + 3, as TF computes
    // Metadata still reports the SignatureDef as written (DT_FLOAT), as TF Serving does.
    auto mreq = metadata_request("default", version);
    tfs::GetModelMetadataResponse mresp;
    ASSERT_TRUE(core->get_model_metadata(mreq, &mresp).ok());
    tfs::SignatureDefMap map;
    ASSERT_TRUE(mresp.metadata().at("signature_def").UnpackTo(&map));
    EXPECT_EQ(map.signature_def().at("tensorflow/serving/regress").inputs().at("inputs").dtype(),
              tensorflow::DT_FLOAT);
  }
}

TEST(ModelService, ListModelNamesListsModelsThatServe) {
  TempDir dir;
  add_version(dir.path / "a", 1, kTwo);
  fs::create_directories(dir.path / "b");  // no version yet: not listed
  tfs::ReloadConfigRequest rr;
  for (const char* name : {"b", "a"})
    rr.mutable_config()->mutable_model_config_list()->MergeFrom(
        config_for((dir.path / name).string(), "", name).model_config_list());
  auto core = serve_folder((dir.path / "a").string());
  tfs::ListModelNamesResponse names;
  ASSERT_TRUE(core->list_model_names({}, &names).ok());
  EXPECT_EQ(std::vector<std::string>(names.model_names().begin(), names.model_names().end()),
            std::vector<std::string>{"default"});
  tfs::ReloadConfigResponse rresp;
  ASSERT_TRUE(core->reload_config(rr, &rresp).ok());
  add_version(dir.path / "b", 7, kThree);
  names.Clear();
  ASSERT_TRUE(core->list_model_names({}, &names).ok());
  EXPECT_EQ(std::vector<std::string>(names.model_names().begin(), names.model_names().end()),
            std::vector<std::string>{"a"}) << "b's version is not loaded until a poll";
  ASSERT_TRUE(core->reload_config(rr, &rresp).ok());
  names.Clear();
  ASSERT_TRUE(core->list_model_names({}, &names).ok());
  EXPECT_EQ(std::vector<std::string>(names.model_names().begin(), names.model_names().end()),
            (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace tessera::serve
