#include <sstream>

#include "ir/verifier.h"
#include "passes/pass.h"
#include "passes/passes.h"
#include "support/error.h"

namespace tessera::passes {

const std::vector<Pass>& all_passes() {
  static const std::vector<Pass> passes = {
      {"freeze_variables", "read-only variables become constants (values from the session)", freeze_variables},
      {"fold_constants", "evaluate nodes whose inputs are all constants", fold_constants},
      {"prune", "remove Identity/NoOp/StopGradient, pure control edges and dead nodes", prune},
      {"cse", "merge nodes computing the same value", cse},
      {"assign_layout", "NCHW convs/pools/BiasAdd/FusedBatchNorm -> NHWC; transposes pushed down and cancelled", assign_layout},
      {"simplify_algebra", "fold batch norms and scales into conv/matmul weights; drop x*1, x+0, reshape/transpose chains", simplify_algebra},
      {"fold_pad_into_conv", "zero spatial Pad before a VALID/EXPLICIT conv -> the conv's explicit padding", fold_pad_into_conv},
      {"fuse_patterns", "layer norm, gelu and attention blocks -> TsLayerNorm/TsGelu/TsAttention", fuse_patterns},
      {"fuse_ops", "matmul/conv + bias + residual + activation -> TsFused*", fuse_ops},
      {"fuse_elementwise", "chains of float32 elementwise ops -> TsElementwise", fuse_elementwise},
      // Training only (the step builder runs it on the training endpoint); not in the default pipeline.
      {"rewrite_dropout", "dropout masks -> TsRandomUniformIndexed keyed on (seed, layer, global sample index)", rewrite_dropout},
      {"fuse_batch_norm_training", "Keras 3 training-mode BatchNormalization (moments + batch_normalization [+ Relu]) -> TsBatchNormTraining", fuse_batch_norm_training},
      {"fold_batch_norm_grad_sum", "Sum of TsBatchNormTrainingGrad's dx over the batch axes (a bias gradient) -> its dx_sum output", fold_batch_norm_grad_sum},
  };
  return passes;
}

const Pass& find_pass(const std::string& name) {
  std::ostringstream known;
  for (const Pass& p : all_passes()) {
    if (p.name == name) return p;
    known << " " << p.name;
  }
  fail_code(ErrorCode::kInvalidArgument, "unknown pass '", name, "'; known passes:", known.str());
}

std::vector<std::string> default_pipeline() {
  return {"freeze_variables", "fold_constants", "prune",         "cse",              "assign_layout",
          "simplify_algebra", "fold_pad_into_conv", "fold_constants", "prune", "fuse_patterns",
          "fuse_ops",         "fuse_elementwise", "prune"};
}

void run_passes(Graph& graph, const std::vector<std::string>& names, const PassContext& ctx) {
  for (const std::string& name : names) {
    const Pass& pass = find_pass(name);
    with_context("pass " + name, [&] {
      pass.run(graph, ctx);
      if (ctx.verify) verify_graph(graph);
    });
    if (ctx.after_pass) ctx.after_pass(name, graph);
  }
}

}  // namespace tessera::passes
