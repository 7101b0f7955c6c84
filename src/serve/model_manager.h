// The models and versions being served, and their life cycle (TF Serving's AspiredVersions
// manager with the AvailabilityPreserving policy, in one class):
//  * each model's base path is scanned (by poll(), or a polling thread); the version policy
//    picks the versions wanted; new ones are loaded and warmed up off the lock, and only then
//    become visible;
//  * a version that fails to load or warm up is reported (END + its error) and never replaces
//    one that serves; a serving version that is no longer wanted is unloaded only once a wanted
//    version serves (or its folder is gone), and its memory goes when the last in-flight call
//    drops its handle (UNLOADING until then, END after);
//  * version labels map to serving versions (unless allow_version_labels_for_unavailable_models);
//  * apply_config() replaces the whole model set (HandleReloadConfigRequest).
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/model.h"
#include "serve/metrics.h"
#include "serve/server_core.h"
#include "tensorflow_serving/apis/get_model_status.pb.h"
#include "tensorflow_serving/apis/model.pb.h"
#include "tensorflow_serving/config/model_server_config.pb.h"

namespace tessera::serve {

// One loaded version. Handles are shared_ptrs: in-flight calls keep it alive after unload.
class Servable {
 public:
  Servable(std::string name, int64_t version, std::string dir, std::shared_ptr<const Model> model);
  // Frees the version and hands the freed heap back to the OS (see model_manager.cc).
  ~Servable();
  const std::string& name() const { return name_; }
  int64_t version() const { return version_; }
  const std::string& dir() const { return dir_; }
  const Model& model() const { return *model_; }
  // True if running the signature changes variables (TF1 assign targets or variable writes in
  // its graph): such calls are serialised and never batched.
  bool stateful(const std::string& signature) const;
  // Runs a signature (all outputs when `outputs` is empty); thread-safe.
  TensorMap run(const std::string& signature, const TensorMap& inputs, const std::vector<std::string>& outputs = {});

 private:
  std::string name_;
  int64_t version_;
  std::string dir_;
  std::shared_ptr<const Model> model_;
  std::map<std::string, bool> stateful_;
  std::unique_ptr<Session> session_;  // shared by all calls: one variable state per version
  std::mutex stateful_mu_;
};
using ServableHandle = std::shared_ptr<Servable>;

class ModelManager {
 public:
  // Loads a version's servable (throws on failure); warm-up runs after it (throws on failure).
  using LoadFn = std::function<std::shared_ptr<const Model>(const std::string& path)>;
  using WarmupFn = std::function<void(const ServableHandle&)>;
  ModelManager(LoadFn load, WarmupFn warmup, Metrics* metrics, bool allow_labels_for_unavailable);
  ~ModelManager();

  // Replaces the model set: models not in `config` are unloaded, new ones loaded (synchronously).
  // Invalid labels make it return an error after the models are applied; the labels then keep
  // their previous values.
  ServeStatus apply_config(const ::tensorflow::serving::ModelServerConfig& config);
  // One scan of every base path.
  void poll();
  void start_polling(int seconds);
  void stop_polling();

  // The servable a request names (latest / version / label) or the error TF Serving gives.
  ServeStatus find(const ::tensorflow::serving::ModelSpec& spec, ServableHandle* out) const;
  ServeStatus status(const ::tensorflow::serving::ModelSpec& spec,
                     ::tensorflow::serving::GetModelStatusResponse* response) const;
  std::vector<std::string> model_names() const;
  // Drops every version (shutdown).
  void unload_all();
  // Receives one line per load, failure and unload (the server sends them to stderr).
  void set_log(std::function<void(const std::string&)> log) { log_ = std::move(log); }

 private:
  using State = ::tensorflow::serving::ModelVersionStatus::State;
  struct Version {
    State state = ::tensorflow::serving::ModelVersionStatus::START;
    ServeStatus error;
    std::string dir;
    ServableHandle handle;             // while AVAILABLE
    std::weak_ptr<Servable> draining;  // while UNLOADING
    int64_t handle_version = 0;
  };
  struct ModelEntry {
    ::tensorflow::serving::ModelConfig config;
    std::map<int64_t, Version> versions;
    std::map<std::string, int64_t> labels;
  };

  void sync_model(const std::string& name);  // load wanted, unload unwanted (update_mu_ held)
  void unload_locked(const std::string& name, Version& v);
  ServeStatus set_labels_locked(ModelEntry& m, const ::tensorflow::serving::ModelConfig& config);
  void refresh_draining_locked(ModelEntry& m) const;

  void log(const std::string& line) const {
    if (log_) log_(line);
  }

  LoadFn load_;
  WarmupFn warmup_;
  std::function<void(const std::string&)> log_;
  Metrics* metrics_;
  bool allow_labels_for_unavailable_;

  std::mutex update_mu_;               // one config change / poll at a time
  mutable std::shared_mutex mu_;       // guards models_
  mutable std::map<std::string, ModelEntry> models_;

  std::thread poller_;
  std::mutex poll_mu_;
  std::condition_variable poll_cv_;
  bool stop_ = false;
};

}  // namespace tessera::serve
