// Gradient graphs of the zoo's MLP and CNN (Keras 3 and tf_keras exports) through the default
// pass pipeline: the optimised forward+backward graph must numerically match the unoptimised
// one on the reference interpreter, at batch 1 and 8 (so fusions and folding respect the
// values the backward pass reuses). Skipped without the zoo ($TESSERA_ZOO_DIR).
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "io/npy.h"
#include "ir/interpreter.h"
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

TEST(AutodiffZoo, GradientGraphsSurviveThePipeline) {
  fs::path dir = testing::zoo_dir();
  int ran = 0;
  for (const char* name : {"mlp_k3", "mlp_tfk", "cnn_k3", "cnn_tfk"}) {
    if (!fs::exists(dir / name / "saved_model")) continue;
    SCOPED_TRACE(name);
    auto model = Model::load((dir / name / "saved_model").string());
    ResourceStore vars;
    vars.restore(model->variables());
    passes::PassContext ctx;
    ctx.variables = &vars;
    std::set<std::string> written = passes::written_variables(model->module());
    ctx.written_variables = &written;
    size_t grads = 0;
    auto base = testing::sum_loss_gradient_graph(*model, &grads);
    auto opt = testing::sum_loss_gradient_graph(*model, &grads);
    EXPECT_GE(grads, 6u);
    passes::run_passes(*opt, passes::default_pipeline(), ctx);
    for (const char* batch : {"inputs_b1.npz", "inputs_b8.npz"}) {
      SCOPED_TRACE(batch);
      std::vector<Tensor> args;
      npy::NamedTensors named = npy::load_npz((dir / name / batch).string());
      for (const TensorSpec& spec : model->signature("serving_default").inputs)
        for (const auto& [k, t] : named)
          if (k == spec.key) args.push_back(t);
      ASSERT_EQ(args.size(), base->args.size());
      std::vector<Tensor> ref = testing::call(*base, args, &vars), got = testing::call(*opt, args, &vars);
      ASSERT_EQ(ref.size(), got.size());
      for (size_t i = 0; i < ref.size(); ++i) EXPECT_NUMERIC_MATCH(ref[i], got[i]) << "result " << base->result_names[i];
    }
    ++ran;
  }
  if (!ran) GTEST_SKIP() << "no zoo MLP/CNN at " << dir;
}

}  // namespace
}  // namespace tessera
