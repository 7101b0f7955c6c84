// The passes, one per file; pipeline.cc lists them (with names and summaries) in order.
#pragma once
#include "passes/pass.h"

namespace tessera::passes {

void freeze_variables(Graph& g, const PassContext& ctx);  // freeze_variables.cc
void fold_constants(Graph& g, const PassContext& ctx);    // fold_constants.cc
void prune(Graph& g, const PassContext& ctx);             // prune.cc
void cse(Graph& g, const PassContext& ctx);               // cse.cc
void assign_layout(Graph& g, const PassContext& ctx);     // assign_layout.cc
void simplify_algebra(Graph& g, const PassContext& ctx);  // simplify_algebra.cc
void fold_pad_into_conv(Graph& g, const PassContext& ctx);  // fold_pad_into_conv.cc
void fuse_patterns(Graph& g, const PassContext& ctx);     // fuse_patterns.cc
void fuse_ops(Graph& g, const PassContext& ctx);          // fuse_ops.cc
void fuse_elementwise(Graph& g, const PassContext& ctx);  // fuse_elementwise.cc
void rewrite_dropout(Graph& g, const PassContext& ctx);   // rewrite_dropout.cc (training only)
void fuse_batch_norm_training(Graph& g, const PassContext& ctx);  // fuse_batch_norm_training.cc (training only)
void fold_batch_norm_grad_sum(Graph& g, const PassContext& ctx);  // fuse_batch_norm_training.cc (training only)

}  // namespace tessera::passes
