// Whole models: a zoo SavedModel's serving signature as a function-form graph, as imported and
// after the default pass pipeline (fused ops), run on CpuExecutable (one executable, batch 1
// then 8; the optimised graph on every ISA path) and compared with the reference interpreter
// on the same graph and with TensorFlow's outputs stored beside the model. Skips when the zoo
// is not generated.
#include <cstdlib>
#include <filesystem>
#include <unordered_map>

#include "cpu_test_util.h"
#include "io/npy.h"
#include "passes/pass.h"
#include "passes/signature_graph.h"
#include "runtime/model.h"
#include "zoo_test_util.h"

namespace tessera::cpu::testing {
namespace {

namespace fs = std::filesystem;

using tessera::testing::zoo_dir;

class ZooModel : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(ZooModel, MatchesReferenceAndTensorFlow) {
  const auto& [name, optimise] = GetParam();
  const fs::path dir = zoo_dir() / name;
  if (!fs::exists(dir / "saved_model")) GTEST_SKIP() << dir << " not generated";
  auto model = Model::load((dir / "saved_model").string());
  const Signature& sig = model->signature("serving_default");
  std::shared_ptr<Graph> g = signature_graph(model->module(), sig);
  ResourceStore vars;
  vars.restore(model->variables());
  if (optimise) {
    passes::PassContext ctx;
    ctx.variables = &vars;
    passes::run_passes(*g, passes::default_pipeline(), ctx);
  }
  // One executable per ISA, all fed the same batches; the reference runs once per batch.
  std::vector<std::unique_ptr<CpuExecutable>> exes;
  // (Two threads on the best ISA; one on the others, which keeps the suite quick on 2 cores.)
  for (const std::string& isa : optimise ? available_isas() : std::vector<std::string>{""})
    exes.push_back(CpuExecutable::compile(g, {isa.empty() || isa == available_isas()[0] ? 2 : 1, isa}));
  for (const char* batch : {"b1", "b8", "b1"}) {
    const fs::path in_path = dir / (std::string("inputs_") + batch + ".npz");
    if (!fs::exists(in_path)) continue;
    std::map<std::string, Tensor> inputs, tf_out;
    for (auto& [k, t] : npy::load_npz(in_path.string())) inputs[k] = t;
    for (auto& [k, t] : npy::load_npz((dir / (std::string("outputs_") + batch + ".npz")).string())) tf_out[k] = t;
    std::vector<Tensor> args;
    for (const TensorSpec& i : sig.inputs) args.push_back(inputs.at(i.key));
    std::vector<Tensor> ref = call_function(*g, args, &vars);
    for (auto& exe : exes) {
      SCOPED_TRACE(name + (optimise ? " optimised " : " imported ") + batch + " isa=" + exe->isa());
      std::vector<Tensor> got = exe->run(args, &vars);
      ASSERT_EQ(got.size(), sig.outputs.size());
      for (size_t k = 0; k < got.size(); ++k) {
        expect_match(ref[k], got[k], "vs reference: " + sig.outputs[k].key);
        auto it = tf_out.find(sig.outputs[k].key);
        if (it != tf_out.end()) expect_match(it->second, got[k], "vs TensorFlow: " + sig.outputs[k].key);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooModel, ::testing::Combine(
                         ::testing::Values("mlp_k3", "mlp_tfk", "cnn_k3", "cnn_tfk", "mobilenetv2_k3",
                                           "mobilenetv2_tfk", "efficientnetb0_tfk", "encoder_k3", "encoder_tfk",
                                           "resnet50_tfk", "resnet50_k3", "lstm_k3", "gru_tfk"),
                         ::testing::Bool()));

}  // namespace
}  // namespace tessera::cpu::testing
