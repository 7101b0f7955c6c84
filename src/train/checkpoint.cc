#include "train/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "io/tensor_bundle.h"
#include "support/error.h"
#include "support/file.h"
#include "tensorflow/core/protobuf/trackable_object_graph.pb.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;
using tensorflow::TrackableObjectGraph;
using TrackableObject = tensorflow::TrackableObjectGraph::TrackableObject;

constexpr const char* kAttrSuffix = "/.ATTRIBUTES/VARIABLE_VALUE";

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.dtype() != DType::kString &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// A new node holding one VARIABLE_VALUE attribute, child `name` of `parent`.
int add_value_node(TrackableObjectGraph& g, int parent, const std::string& name, const std::string& full_name,
                   const std::string& key) {
  int id = g.nodes_size();
  TrackableObject* node = g.add_nodes();
  auto* attr = node->add_attributes();
  attr->set_name("VARIABLE_VALUE");
  attr->set_full_name(full_name);
  attr->set_checkpoint_key(key);
  node->mutable_has_checkpoint_values()->set_value(true);
  auto* ref = g.mutable_nodes(parent)->add_children();
  ref->set_node_id(id);
  ref->set_local_name(name);
  return id;
}

int add_child_node(TrackableObjectGraph& g, int parent, const std::string& name) {
  int id = g.nodes_size();
  g.add_nodes()->mutable_has_checkpoint_values()->set_value(true);
  auto* ref = g.mutable_nodes(parent)->add_children();
  ref->set_node_id(id);
  ref->set_local_name(name);
  return id;
}

Tensor int64_scalar(int64_t v) { return Tensor::scalar<int64_t>(v); }

}  // namespace

std::string variable_path(const std::string& key) {
  const size_t n = std::strlen(kAttrSuffix);
  if (key.size() > n && key.compare(key.size() - n, n, kAttrSuffix) == 0) return key.substr(0, key.size() - n);
  return key;
}

std::string checkpoint_slot_key(const std::string& variable_key, const std::string& slot) {
  return variable_path(variable_key) + "/.OPTIMIZER_SLOT/optimizer/" + slot + kAttrSuffix;
}

ModelLayout model_layout_from_bundle(const std::map<std::string, Tensor>& bundle) {
  ModelLayout layout;
  auto it = bundle.find(kObjectGraphKey);
  if (it == bundle.end()) {
    for (const auto& [k, t] : bundle) layout.original_fingerprints[k] = tensor_fingerprint(t);
    return layout;
  }
  TS_CHECK(it->second.dtype() == DType::kString && it->second.num_elements() == 1,
           kObjectGraphKey, " must be a string scalar");
  layout.object_graph = it->second.strings().at(0);
  TrackableObjectGraph g;
  TS_CHECK(g.ParseFromString(layout.object_graph), "the variables bundle's ", kObjectGraphKey, " does not parse");
  // Group VARIABLE_VALUE keys by full_name; equal full names holding equal bits are one variable.
  std::map<std::string, std::vector<std::string>> by_name;
  for (const auto& node : g.nodes())
    for (const auto& attr : node.attributes())
      if (attr.name() == "VARIABLE_VALUE" && !attr.full_name().empty() && bundle.count(attr.checkpoint_key()))
        by_name[attr.full_name()].push_back(attr.checkpoint_key());
  for (const auto& [name, keys] : by_name)
    for (const std::string& a : keys)
      for (const std::string& b : keys)
        if (a != b && same_bits(bundle.at(a), bundle.at(b))) layout.aliases[a].push_back(b);
  for (const auto& [k, t] : bundle)
    if (k != kObjectGraphKey) layout.original_fingerprints[k] = tensor_fingerprint(t);
  return layout;
}

std::string primary_bundle_key(const ModelLayout& layout, const std::string& key) {
  auto it = layout.bundle_keys.find(key);
  if (it == layout.bundle_keys.end() || it->second.empty()) return key;
  for (const std::string& k : it->second)
    if (!k.starts_with("_")) return k;
  return it->second.front();
}

std::vector<std::string> all_bundle_keys(const ModelLayout& layout, const std::string& key) {
  std::vector<std::string> out = {primary_bundle_key(layout, key)};
  auto add = [&](const std::string& k) {
    if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
  };
  auto it = layout.bundle_keys.find(key);
  if (it != layout.bundle_keys.end())
    for (const std::string& k : it->second) add(k);
  for (size_t i = 0; i < out.size(); ++i) {
    auto al = layout.aliases.find(out[i]);
    if (al != layout.aliases.end())
      for (const std::string& k : al->second) add(k);
  }
  return out;
}

uint64_t tensor_fingerprint(const Tensor& t) {
  std::string bytes = str_cat(static_cast<int>(t.dtype()), shape_str(t.shape()), ":");
  if (t.dtype() != DType::kString && t.dtype() != DType::kVariant && t.dtype() != DType::kResource)
    bytes.append(static_cast<const char*>(t.raw()), t.nbytes());
  return fingerprint(bytes);
}

std::map<std::string, Tensor> variables_by_bundle_key(const std::map<std::string, Tensor>& variables,
                                                      const ModelLayout& layout) {
  std::map<std::string, std::pair<int, Tensor>> best;  // key -> (precedence, value)
  for (const auto& [rk, value] : variables) {
    const bool trained = std::find(layout.trainable.begin(), layout.trainable.end(), rk) != layout.trainable.end();
    const std::string primary = primary_bundle_key(layout, rk);
    auto orig = layout.original_fingerprints.find(primary);
    const bool changed = orig != layout.original_fingerprints.end() && orig->second != tensor_fingerprint(value);
    const int precedence = trained ? 2 : changed ? 1 : 0;
    for (const std::string& key : all_bundle_keys(layout, rk)) {
      auto it = best.find(key);
      if (it == best.end() || it->second.first < precedence) best[key] = {precedence, value};
    }
  }
  std::map<std::string, Tensor> out;
  for (auto& [k, v] : best) out[k] = v.second;
  return out;
}

ModelLayout read_model_layout(const std::string& saved_model_dir) {
  const std::string prefix = join_path(join_path(saved_model_dir, "variables"), "variables");
  if (!file_exists(prefix + ".index")) return {};
  return with_context(str_cat("'", prefix, "'"), [&] {
    TensorBundleReader reader(prefix);
    std::map<std::string, Tensor> bundle;
    for (const std::string& k : reader.keys()) bundle[k] = reader.read(k);
    return model_layout_from_bundle(bundle);
  });
}

std::string checkpoint_object_graph(const TrainState& state, const ModelLayout& layout) {
  TrackableObjectGraph g;
  if (!layout.object_graph.empty()) {
    TS_CHECK(g.ParseFromString(layout.object_graph), kObjectGraphKey, " does not parse");
  }
  if (g.nodes_size() == 0) g.add_nodes();  // the root
  std::map<std::string, int> node_of;  // checkpoint key -> node id
  for (int i = 0; i < g.nodes_size(); ++i)
    for (const auto& attr : g.nodes(i).attributes()) node_of[attr.checkpoint_key()] = i;
  // Variables the model's graph does not list (e.g. a TF1 model) become children of the root.
  for (const auto& [rk, value] : state.variables) {
    const std::string key = primary_bundle_key(layout, rk);
    if (!node_of.count(key)) node_of[key] = add_value_node(g, 0, variable_path(key), variable_path(key), key);
  }

  const int optimizer = add_child_node(g, 0, "optimizer");
  add_value_node(g, optimizer, "iter", "iter", kIterationsKey);
  for (const auto& [rk, slots] : state.slots) {
    const std::string key = primary_bundle_key(layout, rk);
    auto var = node_of.find(key);
    TS_CHECK(var != node_of.end(), "optimizer slots for '", rk, "', which is not a variable");
    for (const auto& [slot, value] : slots) {
      int id = g.nodes_size();
      TrackableObject* node = g.add_nodes();
      auto* attr = node->add_attributes();
      attr->set_name("VARIABLE_VALUE");
      attr->set_full_name(variable_path(key) + "/" + slot);
      attr->set_checkpoint_key(checkpoint_slot_key(key, slot));
      node->mutable_has_checkpoint_values()->set_value(true);
      auto* ref = g.mutable_nodes(optimizer)->add_slot_variables();
      ref->set_original_variable_node_id(var->second);
      ref->set_slot_name(slot);
      ref->set_slot_variable_node_id(id);
    }
  }
  add_value_node(g, 0, "save_counter", "save_counter", kSaveCounterKey);
  const int ts = add_child_node(g, 0, "tessera");
  add_value_node(g, ts, "dropout_seed", "tessera/dropout_seed", kDropoutSeedKey);
  add_value_node(g, ts, "samples_seen", "tessera/samples_seen", kSamplesSeenKey);
  add_value_node(g, ts, "input_position", "tessera/input_position", kInputPositionKey);
  std::string out;
  g.SerializeToString(&out);
  return out;
}

std::map<std::string, Tensor> checkpoint_tensors(const TrainState& state, const PipelineState& input,
                                                 const ModelLayout& layout, int64_t save_counter) {
  std::map<std::string, Tensor> t;
  t = variables_by_bundle_key(state.variables, layout);
  for (const auto& [rk, slots] : state.slots)
    for (const auto& [slot, value] : slots) t[checkpoint_slot_key(primary_bundle_key(layout, rk), slot)] = value;
  t[kIterationsKey] = int64_scalar(state.step);
  t[kSaveCounterKey] = int64_scalar(save_counter);
  int64_t seed_bits;
  std::memcpy(&seed_bits, &state.seed, sizeof seed_bits);
  t[kDropoutSeedKey] = int64_scalar(seed_bits);
  t[kSamplesSeenKey] = int64_scalar(state.samples_seen);
  t[kInputPositionKey] = input.to_tensor();
  t[kObjectGraphKey] = Tensor::string_scalar(checkpoint_object_graph(state, layout));
  return t;
}

void read_checkpoint(const std::string& prefix, TrainState* state, PipelineState* input, const ModelLayout& layout) {
  with_context(str_cat("checkpoint '", prefix, "'"), [&] {
    TensorBundleReader r(prefix);
    auto read = [&](const std::string& key, const Tensor* like) {
      if (!r.contains(key)) fail_code(ErrorCode::kNotFound, "has no key '", key, "'");
      Tensor v = r.read(key);
      if (like && (v.dtype() != like->dtype() || v.shape() != like->shape()))
        fail("key '", key, "' holds ", dtype_name(v.dtype()), shape_str(v.shape()), ", the model has ",
             dtype_name(like->dtype()), shape_str(like->shape()));
      return v;
    };
    for (auto& [rk, value] : state->variables) value = read(primary_bundle_key(layout, rk), &value);
    for (auto& [rk, slots] : state->slots)
      for (auto& [slot, value] : slots) value = read(checkpoint_slot_key(primary_bundle_key(layout, rk), slot), &value);
    state->step = read(kIterationsKey, nullptr).scalar_int();
    int64_t seed_bits = read(kDropoutSeedKey, nullptr).scalar_int();
    std::memcpy(&state->seed, &seed_bits, sizeof seed_bits);
    state->samples_seen = read(kSamplesSeenKey, nullptr).scalar_int();
    if (input) *input = PipelineState::from_tensor(read(kInputPositionKey, nullptr));
  });
}

std::vector<std::string> listed_checkpoints(const std::string& dir) {
  std::vector<std::string> all;
  const std::string path = join_path(dir, "checkpoint");
  if (!file_exists(path)) return all;
  const std::string text = read_file(path);
  const std::string field = "all_model_checkpoint_paths: \"";
  for (size_t pos = text.find(field); pos != std::string::npos; pos = text.find(field, pos + 1)) {
    size_t start = pos + field.size(), end = text.find('"', start);
    if (end == std::string::npos) break;
    all.push_back(text.substr(start, end - start));
  }
  return all;
}

CheckpointManager::CheckpointManager(std::string dir, int keep, ModelLayout layout, CheckpointWriteOptions options)
    : dir_(std::move(dir)), keep_(keep), layout_(std::move(layout)), options_(std::move(options)) {
  fs::create_directories(dir_);
  all_ = listed_checkpoints(dir_);
  // Continue the save counter of the latest checkpoint.
  const std::string latest_prefix = latest();
  if (!latest_prefix.empty() && file_exists(latest_prefix + ".index")) {
    try {
      TensorBundleReader r(latest_prefix);
      if (r.contains(kSaveCounterKey)) save_counter_ = r.read(kSaveCounterKey).scalar_int();
    } catch (const Error&) {
      // An unreadable previous checkpoint does not stop new ones from being written.
    }
  }
}

std::string CheckpointManager::latest() const { return latest_checkpoint(dir_); }

std::string CheckpointManager::save(const TrainState& state, const PipelineState& input) {
  const std::string name = "ckpt-" + std::to_string(state.step);
  const std::string prefix = join_path(dir_, name);
  ++save_counter_;
  write_tensor_bundle(prefix, checkpoint_tensors(state, input, layout_, save_counter_), options_);
  std::erase(all_, name);
  all_.push_back(name);
  std::vector<std::string> drop;
  if (keep_ > 0)
    while (static_cast<int>(all_.size()) > keep_) {
      drop.push_back(all_.front());
      all_.erase(all_.begin());
    }
  write_checkpoint_state(dir_, name, all_, options_);
  // Only once the state file no longer lists them: a crash before this leaves extra files, never
  // a listed checkpoint without its files.
  for (const std::string& d : drop) {
    std::error_code ec;
    const std::string p = join_path(dir_, d);
    fs::remove(p + ".index", ec);
    fs::remove(p + ".data-00000-of-00001", ec);
  }
  return prefix;
}

}  // namespace tessera::train
