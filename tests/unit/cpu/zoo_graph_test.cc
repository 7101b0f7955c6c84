// Whole models: a zoo SavedModel's serving signature as a function-form graph, run on
// CpuExecutable (one executable, batch 1 then 8) and compared with the reference interpreter
// and with TensorFlow's outputs stored beside the model. Skips when the zoo is not generated.
#include <cstdlib>
#include <filesystem>
#include <unordered_map>

#include "cpu_test_util.h"
#include "io/npy.h"
#include "runtime/model.h"

namespace tessera::cpu::testing {
namespace {

namespace fs = std::filesystem;

// The signature's outputs as a function graph over copies of the nodes they need. (The passes
// library has its own signature_graph; this local copy keeps the cpu tests independent of it.)
std::shared_ptr<Graph> local_signature_graph(const Module& m, const Signature& sig) {
  auto g = std::make_shared<Graph>(m.graph->library);
  std::vector<Value> fetches;
  for (const TensorSpec& o : sig.outputs) fetches.push_back(o.value);
  std::vector<const Node*> fed;
  for (const TensorSpec& i : sig.inputs) fed.push_back(i.value.node);
  std::unordered_map<const Node*, Node*> copy;
  std::map<std::pair<const Node*, int>, Value> arg_of;
  for (const TensorSpec& i : sig.inputs) {
    Node* a = g->add(g->unique_name(i.key), "_Arg", {},
                     {{"T", i.dtype}, {"_shape", i.shape}, {"index", int64_t(g->args.size())}});
    infer_node(*a);
    g->args.push_back(a);
    arg_of[{i.value.node, i.value.index}] = a->out();
  }
  auto map_value = [&](const Value& v) -> Value {
    auto it = arg_of.find({v.node, v.index});
    if (it != arg_of.end()) return it->second;
    return {copy.at(v.node), v.index};
  };
  for (Node* n : m.graph->schedule(fetches, sig.targets, fed)) {
    if (std::find(fed.begin(), fed.end(), n) != fed.end()) continue;
    std::vector<Value> in;
    for (const Value& v : n->inputs) in.push_back(map_value(v));
    Node* c = g->add(n->name, n->op, in, n->attrs);
    c->outputs = n->outputs;
    c->known = n->known;
    c->device = n->device;
    for (Node* ci : n->control_inputs)
      if (copy.count(ci)) c->control_inputs.push_back(copy[ci]);
    copy[n] = c;
  }
  for (const TensorSpec& o : sig.outputs) {
    g->results.push_back(map_value(o.value));
    g->result_names.push_back(o.key);
  }
  for (Node* t : sig.targets) g->control_results.push_back(copy.at(t));
  return g;
}

fs::path zoo_dir() {
  if (const char* d = std::getenv("TESSERA_ZOO_DIR")) return d;
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : "/root") / ".cache/tessera/zoo";
}

class ZooModel : public ::testing::TestWithParam<std::string> {};

TEST_P(ZooModel, MatchesReferenceAndTensorFlow) {
  const fs::path dir = zoo_dir() / GetParam();
  if (!fs::exists(dir / "saved_model")) GTEST_SKIP() << dir << " not generated";
  auto model = Model::load((dir / "saved_model").string());
  const Signature& sig = model->signature("serving_default");
  std::shared_ptr<Graph> g = local_signature_graph(model->module(), sig);
  ResourceStore vars;
  vars.restore(model->variables());
  auto exe = CpuExecutable::compile(g, {2, ""});
  for (const char* batch : {"b1", "b8", "b1"}) {
    const fs::path in_path = dir / (std::string("inputs_") + batch + ".npz");
    if (!fs::exists(in_path)) continue;
    SCOPED_TRACE(std::string(GetParam()) + " " + batch);
    std::map<std::string, Tensor> inputs, tf_out;
    for (auto& [k, t] : npy::load_npz(in_path.string())) inputs[k] = t;
    for (auto& [k, t] : npy::load_npz((dir / (std::string("outputs_") + batch + ".npz")).string())) tf_out[k] = t;
    std::vector<Tensor> args;
    for (const TensorSpec& i : sig.inputs) args.push_back(inputs.at(i.key));
    std::vector<Tensor> got = exe->run(args, &vars);
    std::vector<Tensor> ref = call_function(*g, args, &vars);
    ASSERT_EQ(got.size(), sig.outputs.size());
    for (size_t k = 0; k < got.size(); ++k) {
      expect_match(ref[k], got[k], "vs reference: " + sig.outputs[k].key);
      auto it = tf_out.find(sig.outputs[k].key);
      if (it != tf_out.end()) expect_match(it->second, got[k], "vs TensorFlow: " + sig.outputs[k].key);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooModel,
                         ::testing::Values("mlp_k3", "mlp_tfk", "cnn_k3", "cnn_tfk", "mobilenetv2_k3",
                                           "mobilenetv2_tfk", "efficientnetb0_tfk", "encoder_k3", "encoder_tfk",
                                           "resnet50_tfk", "resnet50_k3", "lstm_k3", "gru_tfk"));

}  // namespace
}  // namespace tessera::cpu::testing
