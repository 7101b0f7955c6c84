// Gradient graphs of the zoo's recurrent models (Keras 3 and tf_keras LSTM/GRU: While loops
// reading their kernels through handles, sequences in TensorLists) through the default pass
// pipeline and the cpu target: the optimised graph on the reference interpreter and the cpu
// executable must numerically match the unoptimised graph, at batch 1 and 3. (Agreement with
// TensorFlow is tests/py/test_autodiff_models.py.) Skipped without the zoo ($TESSERA_ZOO_DIR).
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "backend/cpu/cpu_executable.h"
#include "io/npy.h"
#include "passes/autodiff.h"
#include "passes/pass.h"
#include "passes/pass_test_util.h"
#include "passes/pass_util.h"
#include "passes/signature_graph.h"
#include "runtime/model.h"
#include "autodiff_zoo_util.h"
#include "zoo_test_util.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

class WhileZoo : public ::testing::TestWithParam<std::string> {};

TEST_P(WhileZoo, GradientGraphSurvivesThePipelineAndTheCpuTarget) {
  const std::string name = GetParam();
  fs::path dir = testing::zoo_dir() / name;
  if (!fs::exists(dir / "saved_model")) GTEST_SKIP() << dir << " not generated";
  auto model = Model::load((dir / "saved_model").string());
  ResourceStore vars;
  vars.restore(model->variables());
  passes::PassContext ctx;
  ctx.variables = &vars;
  std::set<std::string> written = passes::written_variables(model->module());
  ctx.written_variables = &written;
  size_t grads = 0;
  auto base = testing::sum_loss_gradient_graph(*model, &grads);
  EXPECT_EQ(grads, 8u);  // 2 recurrent layers x (kernel, recurrent kernel, bias) + dense
  auto opt = testing::sum_loss_gradient_graph(*model, &grads);
  passes::run_passes(*opt, passes::default_pipeline(), ctx);
  auto exe = cpu::CpuExecutable::compile(opt, {2, ""});
  for (const char* batch : {"inputs_b1.npz", "inputs_b3.npz"}) {
    SCOPED_TRACE(batch);
    std::vector<Tensor> args;
    npy::NamedTensors named = npy::load_npz((dir / batch).string());
    for (const TensorSpec& spec : model->signature("serving_default").inputs)
      for (const auto& [k, t] : named)
        if (k == spec.key) args.push_back(t);
    ASSERT_EQ(args.size(), base->args.size());
    std::vector<Tensor> ref = testing::call(*base, args, &vars);
    std::vector<Tensor> got = testing::call(*opt, args, &vars);
    std::vector<Tensor> cpu = exe->run(args, &vars);
    ASSERT_EQ(ref.size(), got.size());
    ASSERT_EQ(ref.size(), cpu.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_NUMERIC_MATCH(ref[i], got[i]) << "optimised, result " << base->result_names[i];
      EXPECT_NUMERIC_MATCH(ref[i], cpu[i]) << "cpu, result " << base->result_names[i];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Recurrent, WhileZoo, ::testing::Values("lstm_k3", "lstm_tfk", "gru_k3", "gru_tfk"));

}  // namespace
}  // namespace tessera
