#include "train/losses.h"

namespace tessera::train {
namespace {

constexpr double kEpsilon = 1e-7;  // keras.backend.epsilon()

// The producer of `v`, looking through Identity and IdentityN nodes (exports wrap outputs).
Value through_identity(Value v) {
  for (;;) {
    if (v.node->op == "Identity" && !v.node->inputs.empty()) {
      v = v.node->inputs[0];
    } else if (v.node->op == "IdentityN" && v.index < static_cast<int>(v.node->inputs.size())) {
      v = v.node->inputs[static_cast<size_t>(v.index)];
    } else {
      return v;
    }
  }
}

int64_t last_dim(const Value& v, const std::string& what) {
  const PartialShape& s = pshape_of(v);
  TS_CHECK(s.known_rank && !s.dims.empty() && s.dims.back() > 0, what, ": the output ", v.str(),
           " needs a known last dimension, has shape ", s.str());
  return s.dims.back();
}

Value clip_probs(GraphBuilder& b, Value p) {
  return b.op("ClipByValue", {p, b.scalar(kEpsilon), b.scalar(1.0 - kEpsilon)});
}

// -sum(onehot(labels) * log_softmax(logits), -1)
Value sparse_ce_from_logits(GraphBuilder& b, Value logits, Value labels) {
  int64_t depth = last_dim(logits, "sparse_categorical_crossentropy");
  Value oh = b.op("OneHot", {labels, b.scalar(static_cast<double>(depth), DType::kInt32), b.scalar(1.0), b.scalar(0.0)},
                  {{"T", DType::kFloat32}, {"TI", dtype_of(labels)}, {"axis", int64_t{-1}}});
  Value logp = b.op("LogSoftmax", {logits});
  return b.neg(b.reduce("Sum", b.mul(oh, logp), {-1}));
}

}  // namespace

void check_loss(const LossSpec& s) {
  static const char* kNames[] = {"sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
                                 "mse", "mae"};
  for (const char* n : kNames)
    if (s.name == n) return;
  fail_code(ErrorCode::kInvalidArgument, "unknown loss '", s.name,
            "' (sparse_categorical_crossentropy, categorical_crossentropy, binary_crossentropy, mse, mae)");
}

DType label_dtype(const LossSpec& s) {
  return s.name == "sparse_categorical_crossentropy" ? DType::kInt64 : DType::kFloat32;
}

Value per_sample_loss(GraphBuilder& b, const LossSpec& s, Value output, Value labels) {
  check_loss(s);
  TS_CHECK(dtype_of(output) == DType::kFloat32, "loss '", s.name, "': output ", output.str(), " is ",
           dtype_name(dtype_of(output)), ", float32 expected");
  bool logits = s.from_logits;
  Value src = through_identity(output);
  // Keras reads the logits behind a Softmax/Sigmoid output instead of the probabilities
  // (even with from_logits=True, where it only warns).
  if ((s.name == "sparse_categorical_crossentropy" || s.name == "categorical_crossentropy") &&
      src.node->op == "Softmax") {
    output = src.node->inputs[0];
    logits = true;
  }
  if (s.name == "binary_crossentropy" && src.node->op == "Sigmoid") {
    output = src.node->inputs[0];
    logits = true;
  }
  if (s.name == "sparse_categorical_crossentropy") {
    // From probabilities Keras takes log(clip(p)) as logits (so they are renormalised).
    return sparse_ce_from_logits(b, logits ? output : b.log(clip_probs(b, output)), labels);
  }
  if (s.name == "categorical_crossentropy") {
    if (logits) return b.neg(b.reduce("Sum", b.mul(labels, b.op("LogSoftmax", {output})), {-1}));
    Value p = b.div(output, b.reduce("Sum", output, {-1}, true));
    return b.neg(b.reduce("Sum", b.mul(labels, b.log(clip_probs(b, p))), {-1}));
  }
  if (s.name == "binary_crossentropy") {
    Value per;
    if (logits) {
      // max(x, 0) - x z + log(1 + exp(-|x|)), as sigmoid_cross_entropy_with_logits.
      Value x = output;
      per = b.add(b.sub(b.op("Relu", {x}), b.mul(x, labels)), b.op("Softplus", {b.neg(b.op("Abs", {x}))}));
    } else {
      Value p = clip_probs(b, output);
      Value one = b.scalar(1.0);
      per = b.neg(b.add(b.mul(labels, b.log(p)), b.mul(b.sub(one, labels), b.log(b.sub(one, p)))));
    }
    return b.reduce("Mean", per, {-1});
  }
  Value d = b.sub(output, labels);
  return b.reduce("Mean", s.name == "mse" ? b.square(d) : b.op("Abs", {d}), {-1});
}

Value metric_sum(GraphBuilder& b, const std::string& metric, const LossSpec& s, Value output, Value labels) {
  TS_CHECK(metric == "accuracy" || metric == "acc", "unknown metric '", metric, "' (accuracy)");
  Value hit;
  if (s.name == "sparse_categorical_crossentropy") {
    hit = b.op("Equal", {b.argmax_last(output), b.cast(labels, DType::kInt64)});
  } else if (last_dim(output, "accuracy") == 1) {
    Value pred = b.cast(b.op("Greater", {output, b.scalar(0.5)}), DType::kFloat32);
    return b.sum_all(b.reduce("Mean", b.cast(b.op("Equal", {pred, labels}), DType::kFloat32), {-1}));
  } else {
    hit = b.op("Equal", {b.argmax_last(output), b.argmax_last(labels)});
  }
  return b.sum_all(b.cast(hit, DType::kFloat32));
}

}  // namespace tessera::train
