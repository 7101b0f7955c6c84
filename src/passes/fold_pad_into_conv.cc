// fold_pad_into_conv: a zero Pad of only the spatial dimensions feeding a VALID or EXPLICIT
// Conv2D / DepthwiseConv2dNative (NHWC) becomes the convolution's explicit padding, so the
// padded copy of the activation is never written (Keras emits ZeroPadding2D before strided
// convs in MobileNetV2, EfficientNet and ResNet). Only when the Pad has no other consumer.
//
// A zero Pad before a VALID/EXPLICIT MaxPool (ResNet's pool1_pad, after a Relu) also folds,
// into the pool's explicit padding, when the padded tensor is known non-negative: a pool
// ignores padded positions, which equals padding with 0 when every element is >= 0 and every
// window keeps at least one real element (TF requires padding < window size, checked here).
#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
namespace {

// Spatial [before, after] pairs of a [4, 2] paddings constant that pads only H and W with 0.
bool spatial_only_paddings(const Node& pad, std::vector<int64_t>& out) {
  if (pad.op != "Pad" && pad.op != "PadV2") return false;
  if (pad.op == "PadV2") {
    const Tensor* fill = pad.inputs.size() > 2 ? const_value(pad.inputs[2]) : nullptr;
    if (!fill || fill->dtype() != DType::kFloat32 || fill->num_elements() != 1 || fill->data<float>()[0] != 0.0f)
      return false;
  }
  const Tensor* p = const_value(pad.inputs.at(1));
  if (!p || p->shape() != Shape{4, 2}) return false;
  std::vector<int64_t> v(8);
  for (int i = 0; i < 8; ++i)
    v[i] = p->dtype() == DType::kInt32 ? p->data<int32_t>()[i] : p->dtype() == DType::kInt64 ? p->data<int64_t>()[i] : -1;
  for (int64_t x : v)
    if (x < 0) return false;
  if (v[0] || v[1] || v[6] || v[7]) return false;  // batch and channel untouched
  out = v;
  return true;
}

// Every element of `v` is >= 0 for finite inputs (Sqrt is left out: it makes NaNs, and a
// window of NaNs pools to 0 with zero padding but to the lowest float with none).
bool non_negative(const Value& v) {
  const Node& n = *v.node;
  static const char* kOps[] = {"Relu", "Relu6", "Sigmoid", "Softplus", "Exp", "Abs", "Square"};
  for (const char* op : kOps)
    if (n.op == op) return true;
  if (n.op == "TsFusedConv2D" || n.op == "TsFusedDepthwiseConv2D" || n.op == "TsFusedMatMul") {
    std::string act = n.attr_or<std::string>("activation", "");
    return act == "Relu" || act == "Relu6" || act == "Sigmoid";
  }
  return false;
}

// Pad(x >= 0) -> MaxPool(VALID|EXPLICIT) becomes MaxPool(EXPLICIT) of x.
bool fold_into_max_pool(Node* pool, const Uses& uses) {
  if (pool->op != "MaxPool" || pool->attr_or<std::string>("data_format", "NHWC") != "NHWC") return false;
  std::string padding = pool->attr<std::string>("padding");
  if (padding != "VALID" && padding != "EXPLICIT") return false;
  Node* pad = pool->inputs.at(0).node;
  std::vector<int64_t> extra;
  if (!spatial_only_paddings(*pad, extra) || !uses.single_consumer(pad->out(0))) return false;
  if (pad->outputs.empty() || pad->outputs[0].dtype != DType::kFloat32 || !non_negative(pad->inputs[0])) return false;
  const auto& ksize = pool->attr<std::vector<int64_t>>("ksize");
  if (ksize.size() != 4) return false;
  std::vector<int64_t> total(8, 0);
  if (padding == "EXPLICIT") total = pool->attr_or<std::vector<int64_t>>("explicit_paddings", {});
  if (total.size() != 8) return false;
  for (int i = 0; i < 8; ++i) total[i] += extra[i];
  for (int d = 1; d <= 2; ++d)  // a window made only of padding would give 0 unfolded, lowest() folded
    if (total[2 * d] >= ksize[d] || total[2 * d + 1] >= ksize[d]) return false;
  pool->inputs[0] = pad->inputs[0];
  pool->attrs["padding"] = std::string("EXPLICIT");
  pool->attrs["explicit_paddings"] = total;
  for (Node* c : pad->control_inputs) pool->control_inputs.push_back(c);
  infer_node(*pool);
  return true;
}

}  // namespace

void fold_pad_into_conv(Graph& g, const PassContext&) {
  Uses uses(g);
  for (Node* conv : g.topo_order()) {
    if (fold_into_max_pool(conv, uses)) continue;
    if (conv->op != "Conv2D" && conv->op != "DepthwiseConv2dNative") continue;
    if (conv->attr_or<std::string>("data_format", "NHWC") != "NHWC") continue;
    if (conv->outputs.empty() || conv->outputs[0].dtype != DType::kFloat32) continue;
    std::string padding = conv->attr<std::string>("padding");
    if (padding != "VALID" && padding != "EXPLICIT") continue;
    Node* pad = conv->inputs.at(0).node;
    std::vector<int64_t> extra;
    if (!spatial_only_paddings(*pad, extra) || !uses.single_consumer(pad->out(0))) continue;
    std::vector<int64_t> total(8, 0);
    if (padding == "EXPLICIT") total = conv->attr<std::vector<int64_t>>("explicit_paddings");
    if (total.size() != 8) continue;
    for (int i = 0; i < 8; ++i) total[i] += extra[i];
    conv->inputs[0] = pad->inputs[0];
    conv->attrs["padding"] = std::string("EXPLICIT");
    conv->attrs["explicit_paddings"] = total;
    for (Node* c : pad->control_inputs) conv->control_inputs.push_back(c);
    infer_node(*conv);
  }
  // The Pads now without consumers go with the next prune.
}

}  // namespace tessera::passes
