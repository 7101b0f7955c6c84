#include "frontend/tf/model_import.h"

#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "frontend/tf/proto_convert.h"
#include "frontend/tf/training_function.h"
#include "support/file.h"
#include "tensorflow/core/protobuf/saved_model.pb.h"

namespace tessera::tf {
namespace {

namespace fs = std::filesystem;

// Protobuf's own log lines (e.g. about invalid UTF-8) would duplicate the error we report.
void silence_protobuf_logging() {
  static const bool once = [] {
    google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
    return true;
  }();
  (void)once;
}

template <typename Proto>
void parse_proto(const std::string& path, Proto& proto, bool text) {
  silence_protobuf_logging();
  std::string bytes = read_file(path);
  bool ok = text ? google::protobuf::TextFormat::ParseFromString(bytes, &proto)
                 : proto.ParseFromString(bytes);
  if (!ok)
    fail_code(ErrorCode::kDataLoss, "'", path, "' is not a valid ", proto.GetTypeName(),
              text ? " text proto" : " (truncated or corrupted protobuf)");
}

bool looks_like_text(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  return ext == ".pbtxt" || ext == ".txt" || ext == ".prototxt";
}

void reject_foreign_file(const std::string& path) {
  std::string head = read_file(path).substr(0, 8);
  if (head.size() >= 8 && head.compare(4, 4, "TFL3") == 0)
    fail_code(ErrorCode::kUnimplemented, "'", path, "' is a TFLite flatbuffer; TFLite models are not supported (use the SavedModel)");
}

Value resolve_tensor(const Graph& graph, const std::string& name, const std::string& what) {
  TensorRef ref = parse_tensor_ref(name);
  Node* node = graph.find(ref.node);
  if (!node) fail(what, " refers to tensor '", name, "', which is not in the graph");
  if (ref.index >= node->num_outputs())
    fail(what, " refers to tensor '", name, "', but ", node->label(), " has ", node->num_outputs(), " outputs");
  return {node, ref.index};
}

TensorSpec make_spec(const Graph& graph, const std::string& key, const tensorflow::TensorInfo& info,
                     const std::string& what) {
  if (info.encoding_case() != tensorflow::TensorInfo::kName)
    fail_code(ErrorCode::kUnimplemented, what, " '", key, "' is a sparse or composite tensor, which is not supported");
  TensorSpec spec;
  spec.key = key;
  spec.tensor = info.name();
  spec.value = resolve_tensor(graph, info.name(), what + " '" + key + "'");
  spec.dtype = convert_dtype(info.dtype());
  // An absent shape (older exporters) means unknown, not scalar.
  spec.shape = info.has_tensor_shape() ? convert_shape(info.tensor_shape()) : PartialShape::unknown();
  return spec;
}

std::vector<std::string> collection_nodes(const tensorflow::MetaGraphDef& mg, const std::string& key) {
  auto it = mg.collection_def().find(key);
  if (it == mg.collection_def().end()) return {};
  const auto& list = it->second.node_list().value();
  return {list.begin(), list.end()};
}

std::string tags_str(const google::protobuf::RepeatedPtrField<std::string>& tags) {
  std::vector<std::string> sorted(tags.begin(), tags.end());
  std::sort(sorted.begin(), sorted.end());
  std::string out = "{";
  for (size_t i = 0; i < sorted.size(); ++i) out += (i ? "," : "") + sorted[i];
  return out + "}";
}

tensorflow::MetaGraphDef& select_meta_graph(tensorflow::SavedModel& sm, const std::string& path,
                                            const std::vector<std::string>& tags) {
  TS_CHECK(sm.meta_graphs_size() > 0, "'", path, "' holds no MetaGraph");
  std::set<std::string> want(tags.begin(), tags.end());
  std::string available;
  for (auto& mg : *sm.mutable_meta_graphs()) {
    const auto& t = mg.meta_info_def().tags();
    if (std::set<std::string>(t.begin(), t.end()) == want) return mg;
    available += " " + tags_str(t);
  }
  std::string wanted;
  for (const auto& t : want) wanted += (wanted.empty() ? "" : ",") + t;
  fail_code(ErrorCode::kNotFound, "'", path, "' has no MetaGraph with tags {", wanted, "}; available:", available);
}

ModelImport import_meta_graph(const std::string& dir, const tensorflow::MetaGraphDef& mg,
                              const ModelImportOptions& options);

ModelImport import_saved_model(const std::string& dir, const ModelImportOptions& options) {
  std::string pb = join_path(dir, "saved_model.pb");
  std::string pbtxt = join_path(dir, "saved_model.pbtxt");
  tensorflow::SavedModel sm;
  if (file_exists(pb)) {
    parse_proto(pb, sm, false);
  } else if (file_exists(pbtxt)) {
    parse_proto(pbtxt, sm, true);
  } else {
    std::string hint;
    if (file_exists(join_path(dir, "export.meta")))
      hint = "; found export.meta: a legacy Saver/SessionBundle export, which is not supported (re-export it as a SavedModel)";
    else if (file_exists(join_path(dir, "model.tflite")))
      hint = "; found model.tflite: TFLite models are not supported";
    fail_code(ErrorCode::kNotFound, "'", dir, "' is not a SavedModel: missing saved_model.pb (or saved_model.pbtxt)", hint);
  }
  tensorflow::MetaGraphDef& selected = select_meta_graph(sm, dir, options.tags);
  if (options.training_signature) {  // tf_keras: the training-mode call as a signature
    tensorflow::MetaGraphDef patched = selected;
    if (add_training_signature(patched)) {
      try {
        return import_meta_graph(dir, patched, options);
      } catch (const Error& e) {
        // The model still serves and trains as exported (serving_default); say why not more.
        std::fprintf(stderr, "tessera: note: '%s': the tf_keras training-mode call was not imported: %s\n",
                     dir.c_str(), e.what());
      }
    }
  }
  return import_meta_graph(dir, selected, options);
}

ModelImport import_meta_graph(const std::string& dir, const tensorflow::MetaGraphDef& mg,
                              const ModelImportOptions& options) {

  // Roots: everything a signature, the restore or the init path needs.
  std::vector<std::string> roots;
  std::vector<std::string> init_ops;
  for (const auto& [key, sig] : mg.signature_def()) {
    if (key == "__saved_model_init_op") {
      for (const auto& [k, info] : sig.outputs()) init_ops.push_back(info.name());
      continue;
    }
    for (const auto& [k, info] : sig.inputs()) roots.push_back(info.name());
    for (const auto& [k, info] : sig.outputs()) roots.push_back(info.name());
  }
  for (const auto& key : {"saved_model_main_op", "legacy_init_op"}) {
    if (!init_ops.empty()) break;
    init_ops = collection_nodes(mg, key);
  }
  // Assets: TF2 lists them in asset_file_def, TF1 in the "saved_model_assets" collection.
  std::vector<std::pair<std::string, std::string>> assets;  // tensor name -> file name
  for (const auto& a : mg.asset_file_def()) assets.push_back({a.tensor_info().name(), a.filename()});
  if (auto it = mg.collection_def().find("saved_model_assets"); assets.empty() && it != mg.collection_def().end()) {
    for (const auto& any : it->second.any_list().value()) {
      tensorflow::AssetFileDef a;
      if (any.UnpackTo(&a)) assets.push_back({a.tensor_info().name(), a.filename()});
    }
  }
  for (const auto& [tensor, file] : assets) roots.push_back(tensor);
  const auto& saver = mg.saver_def();
  bool has_saver = !saver.restore_op_name().empty() && !saver.filename_tensor_name().empty();
  if (has_saver) {
    roots.push_back(saver.restore_op_name());
    roots.push_back(saver.filename_tensor_name());
  }
  roots.insert(roots.end(), init_ops.begin(), init_ops.end());

  ImportResult imported = with_context("'" + dir + "'", [&] {
    return import_graph(mg.graph_def(), roots, {options.allow_unsupported});
  });
  ModelImport out;
  out.unsupported = imported.unsupported;
  Module& m = out.module;
  m.graph = imported.graph;
  m.source = dir;
  m.tf_version = mg.meta_info_def().tensorflow_version();
  m.format = mg.has_object_graph_def() && mg.object_graph_def().nodes_size() > 0 ? "saved_model (TF2)" : "saved_model (TF1)";
  const Graph& g = *m.graph;

  with_context("'" + dir + "'", [&] {
    for (const auto& [key, sig_def] : mg.signature_def()) {
      if (key == "__saved_model_init_op") continue;
      Signature sig;
      sig.key = key;
      sig.method_name = sig_def.method_name();
      for (const auto& [k, info] : sig_def.inputs())
        sig.inputs.push_back(make_spec(g, k, info, "signature '" + key + "' input"));
      for (const auto& [k, info] : sig_def.outputs())
        sig.outputs.push_back(make_spec(g, k, info, "signature '" + key + "' output"));
      m.signatures[key] = std::move(sig);
    }
    for (const auto& [tensor, file] : assets) {
      TS_CHECK(file.find("..") == std::string::npos && (file.empty() || file[0] != '/'),
               "asset file name '", file, "' escapes the assets folder");
      m.asset_paths.push_back({resolve_tensor(g, tensor, "asset '" + file + "'"),
                               join_path(join_path(dir, "assets"), file)});
    }
    for (const std::string& name : init_ops) {
      Node* n = g.find(parse_tensor_ref(name).node);
      TS_CHECK(n, "init op '", name, "' is not in the graph");
      m.init_targets.push_back(n);
    }
  });

  bool has_variables = false;
  for (const auto& n : g.nodes()) has_variables = has_variables || n->op == "VarHandleOp";
  std::string prefix = join_path(join_path(dir, "variables"), "variables");
  if (has_variables && !options.skip_variables) {
    if (!file_exists(prefix + ".index"))
      fail_code(ErrorCode::kNotFound, "'", dir, "': missing variables: '", prefix,
                ".index' not found, but the graph has variables");
    if (!has_saver)
      fail_code(ErrorCode::kUnimplemented, "'", dir, "': the graph has variables but no SaverDef to restore them");
    RestoreSpec restore;
    restore.filename = resolve_tensor(g, saver.filename_tensor_name(), "SaverDef filename tensor");
    Node* target = g.find(parse_tensor_ref(saver.restore_op_name()).node);
    TS_CHECK(target, "'", dir, "': restore op '", saver.restore_op_name(), "' is not in the graph");
    restore.target = target;
    restore.prefix = prefix;
    m.restore = restore;
  }
  return out;
}

// Frozen graphs have no signatures: synthesise "serving_default" from the Placeholders
// (inputs) and the nodes nothing consumes (outputs), keyed by node name.
Signature default_signature(const Graph& g) {
  Signature sig;
  sig.key = "serving_default";
  sig.method_name = "tensorflow/serving/predict";
  auto users = g.users();
  std::set<const Node*> control_used;
  for (const auto& n : g.nodes())
    for (const Node* c : n->control_inputs) control_used.insert(c);
  for (const auto& n : g.nodes()) {
    if (n->op == "Placeholder") {
      sig.inputs.push_back({n->name, n->name + ":0", n->out(0), n->outputs[0].dtype, n->outputs[0].shape});
    } else if (!users.count(n.get()) && !control_used.count(n.get()) && n->num_outputs() > 0 && n->op != "Const") {
      for (int i = 0; i < n->num_outputs(); ++i) {
        std::string key = n->num_outputs() == 1 ? n->name : n->name + ":" + std::to_string(i);
        sig.outputs.push_back({key, n->name + ":" + std::to_string(i), n->out(i), n->outputs[i].dtype, n->outputs[i].shape});
      }
    }
  }
  return sig;
}

ModelImport import_graphdef(const std::string& path, const ModelImportOptions& options) {
  reject_foreign_file(path);
  tensorflow::GraphDef gd;
  bool text = looks_like_text(path);
  parse_proto(path, gd, text);
  ImportResult imported = with_context("'" + path + "'", [&] {
    return import_graph(gd, all_node_names(gd), {options.allow_unsupported});
  });
  ModelImport out;
  out.unsupported = imported.unsupported;
  out.module.graph = imported.graph;
  out.module.source = path;
  out.module.format = text ? "graphdef (text)" : "graphdef";
  for (const auto& n : imported.graph->nodes())
    if (n->op == "VarHandleOp")
      fail_code(ErrorCode::kUnimplemented, "'", path, "': GraphDef has variables (", n->name,
                "); freeze it or export a SavedModel");
  out.module.signatures["serving_default"] = default_signature(*imported.graph);
  return out;
}

}  // namespace

ModelImport import_model(const std::string& path, const ModelImportOptions& options) {
  if (!file_exists(path)) fail_code(ErrorCode::kNotFound, "model path '", path, "' does not exist");
  if (is_directory(path)) return import_saved_model(path, options);
  std::string name = fs::path(path).filename().string();
  if (name == "saved_model.pb" || name == "saved_model.pbtxt")
    return import_saved_model(fs::path(path).parent_path().string(), options);
  if (fs::path(path).extension() == ".tflite")
    fail_code(ErrorCode::kUnimplemented, "'", path, "' is a TFLite model; TFLite models are not supported");
  return import_graphdef(path, options);
}

}  // namespace tessera::tf
