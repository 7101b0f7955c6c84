#include "serve/model_manager.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <chrono>
#include <set>
#include <unordered_set>

#include "serve/model_config.h"
#include "serve/status.h"

namespace tessera::serve {

namespace tfe = ::tensorflow::error;
using MVS = ::tensorflow::serving::ModelVersionStatus;

namespace {

bool writes_state(const std::string& op) {
  return op.rfind("Assign", 0) == 0 || op.rfind("ResourceApply", 0) == 0 || op.rfind("ResourceScatter", 0) == 0 ||
         op.rfind("Scatter", 0) == 0 || op.rfind("Apply", 0) == 0 || op == "LookupTableInsertV2" ||
         op == "LookupTableImportV2" || op == "LookupTableRemoveV2";
}

// Walks the nodes a signature runs (outputs, targets and everything they depend on).
bool signature_writes_state(const Signature& sig) {
  if (!sig.targets.empty()) return true;
  std::vector<const Node*> todo;
  for (const auto& o : sig.outputs)
    if (o.value.node) todo.push_back(o.value.node);
  std::unordered_set<const Node*> seen;
  while (!todo.empty()) {
    const Node* n = todo.back();
    todo.pop_back();
    if (!seen.insert(n).second) continue;
    if (writes_state(n->op)) return true;
    for (const Value& v : n->inputs)
      if (v.node) todo.push_back(v.node);
    for (const Node* c : n->control_inputs) todo.push_back(c);
  }
  return false;
}

std::string spec_text(const ::tensorflow::serving::ModelSpec& spec) {
  if (spec.has_version()) return str_cat("Specific(", spec.name(), ", ", spec.version().value(), ")");
  return str_cat("Latest(", spec.name(), ")");
}

}  // namespace

Servable::Servable(std::string name, int64_t version, std::string dir, std::shared_ptr<const Model> model)
    : name_(std::move(name)), version_(version), dir_(std::move(dir)), model_(std::move(model)) {
  for (const auto& [key, sig] : model_->signatures()) stateful_[key] = signature_writes_state(sig);
  session_ = std::make_unique<Session>(model_);
}

Servable::~Servable() {
  session_.reset();
  model_.reset();
  // glibc raises its mmap threshold to the size of every large block freed, so a version's
  // weights end up on the heap and stay resident after it is freed: each swap would grow the
  // process by a model's size (measured: +17 MiB per swap of a 17 MiB MLP under wrk load,
  // none with this call). Trimming returns the free pages of every arena.
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

bool Servable::stateful(const std::string& signature) const {
  auto it = stateful_.find(signature);
  return it != stateful_.end() && it->second;
}

TensorMap Servable::run(const std::string& signature, const TensorMap& inputs, const std::vector<std::string>& outputs) {
  if (stateful(signature)) {
    std::lock_guard lock(stateful_mu_);
    return session_->run(signature, inputs, outputs);
  }
  return session_->run(signature, inputs, outputs);
}

ModelManager::ModelManager(LoadFn load, WarmupFn warmup, Metrics* metrics, bool allow_labels_for_unavailable)
    : load_(std::move(load)), warmup_(std::move(warmup)), metrics_(metrics),
      allow_labels_for_unavailable_(allow_labels_for_unavailable) {}

ModelManager::~ModelManager() { stop_polling(); }

ServeStatus ModelManager::apply_config(const ::tensorflow::serving::ModelServerConfig& config) {
  try {
    validate_config(config);
  } catch (...) {
    return status_from_current_exception();
  }
  std::lock_guard update(update_mu_);
  std::set<std::string> wanted;
  for (const auto& mc : config.model_config_list().config()) wanted.insert(mc.name());
  {
    std::unique_lock lock(mu_);
    for (auto it = models_.begin(); it != models_.end();) {
      if (wanted.count(it->first)) {
        ++it;
        continue;
      }
      for (auto& [v, ver] : it->second.versions) unload_locked(it->first, ver);
      it = models_.erase(it);
    }
    for (const auto& mc : config.model_config_list().config()) {
      ModelEntry& m = models_[mc.name()];
      if (m.config.base_path() != mc.base_path()) {
        // A new base path is a new model: its versions are those found there.
        for (auto& [v, ver] : m.versions) unload_locked(mc.name(), ver);
        m.versions.clear();
      } else {
        // Failed versions get another try under the new config.
        for (auto it = m.versions.begin(); it != m.versions.end();)
          it = it->second.state == MVS::END && !it->second.error.ok() ? m.versions.erase(it) : std::next(it);
      }
      m.config = mc;
    }
  }
  for (const auto& mc : config.model_config_list().config()) sync_model(mc.name());
  ServeStatus result;
  {
    std::unique_lock lock(mu_);
    for (const auto& mc : config.model_config_list().config()) {
      ServeStatus s = set_labels_locked(models_.at(mc.name()), mc);
      if (!s.ok() && result.ok()) result = s;
    }
  }
  // Versions kept only for a label that is gone can go now (nothing new loads here).
  for (const auto& mc : config.model_config_list().config()) sync_model(mc.name());
  return result;
}

ServeStatus ModelManager::set_labels_locked(ModelEntry& m, const ::tensorflow::serving::ModelConfig& config) {
  for (const auto& [label, version] : config.version_labels()) {
    auto it = m.versions.find(version);
    bool available = it != m.versions.end() && it->second.state == MVS::AVAILABLE;
    bool in_use = m.labels.count(label) > 0;
    // TF Serving: the flag only lets a label that is not yet in use point at a version that is
    // not serving (yet), so a canary can be named before it loads.
    if (!available && !(allow_labels_for_unavailable_ && !in_use))
      return make_status(tfe::FAILED_PRECONDITION,
                         str_cat("Request to assign label to version ", version, " of model ", config.name(),
                                 ", which is not currently available for inference"));
  }
  m.labels.clear();
  for (const auto& [label, version] : config.version_labels()) m.labels[label] = version;
  return {};
}

void ModelManager::unload_locked(const std::string& name, Version& v) {
  if (v.state != MVS::AVAILABLE) return;
  v.handle_version = v.handle->version();
  v.draining = v.handle;
  v.handle.reset();  // the last in-flight call frees it
  v.state = MVS::UNLOADING;
  log(str_cat("Unloading servable version {name: ", name, " version: ", v.handle_version, "}"));
  if (metrics_) metrics_->gauge_add(Metrics::kVersionsAvailable, {{"model_name", name}}, -1);
}

void ModelManager::refresh_draining_locked(ModelEntry& m) const {
  for (auto& [num, v] : m.versions)
    if (v.state == MVS::UNLOADING && v.draining.expired()) v.state = MVS::END;
}

void ModelManager::sync_model(const std::string& name) {
  ::tensorflow::serving::ModelConfig config;
  std::set<int64_t> to_load;
  std::map<int64_t, std::string> on_disk;
  {
    std::shared_lock lock(mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return;
    config = it->second.config;
    on_disk = scan_versions(config.base_path());
    for (int64_t v : select_versions(config, on_disk)) {
      auto vt = it->second.versions.find(v);
      // New, or unloaded earlier and wanted again; failed versions are not retried every poll.
      if (vt == it->second.versions.end() || (vt->second.state == MVS::END && vt->second.error.ok()))
        to_load.insert(v);
    }
  }
  for (int64_t v : to_load) {
    const std::string dir = on_disk.at(v);
    {
      std::unique_lock lock(mu_);
      auto& ver = models_[name].versions[v];
      ver = Version{};
      ver.state = MVS::LOADING;
      ver.dir = dir;
    }
    ServableHandle handle;
    ServeStatus error;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      handle = with_context(str_cat("loading version ", v, " of model '", name, "' from '", dir, "'"), [&] {
        auto s = std::make_shared<Servable>(name, v, dir, load_(servable_path(dir)));
        if (warmup_) warmup_(s);
        return s;
      });
    } catch (...) {
      error = status_from_current_exception();
      if (error.ok()) error = make_status(tfe::UNKNOWN, "load failed");
    }
    const double micros = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (metrics_) {
      metrics_->counter_add(Metrics::kLoadAttemptCount, {{"model_path", dir}, {"status", handle ? "success" : "error"}});
      if (handle) {
        metrics_->counter_add(Metrics::kLoadLatency, {{"model_path", dir}}, micros);
        metrics_->observe(Metrics::kModelLoadLatency, {{"model_name", name}}, micros);
        metrics_->gauge_add(Metrics::kVersionsAvailable, {{"model_name", name}}, 1);
      }
    }
    std::unique_lock lock(mu_);
    auto mt = models_.find(name);
    if (mt == models_.end() || mt->second.config.base_path() != config.base_path()) continue;  // reconfigured meanwhile
    Version& ver = mt->second.versions[v];
    log(handle ? str_cat("Successfully loaded servable version {name: ", name, " version: ", v, "} in ",
                         static_cast<int64_t>(micros / 1000), " ms")
               : str_cat("Failed to load servable version {name: ", name, " version: ", v, "}: ", error.message));
    if (handle) {
      ver.state = MVS::AVAILABLE;
      ver.handle = std::move(handle);
    } else {
      ver.state = MVS::END;
      ver.error = error;
    }
  }
  // Availability preserving: unwanted versions go only once a wanted one serves, or when their
  // folder has disappeared.
  std::unique_lock lock(mu_);
  auto mt = models_.find(name);
  if (mt == models_.end()) return;
  ModelEntry& m = mt->second;
  const std::set<int64_t> wanted = select_versions(m.config, on_disk);
  bool wanted_serving = false;
  for (int64_t v : wanted) {
    auto it = m.versions.find(v);
    wanted_serving |= it != m.versions.end() && it->second.state == MVS::AVAILABLE;
  }
  for (auto& [v, ver] : m.versions) {
    if (ver.state != MVS::AVAILABLE || wanted.count(v)) continue;
    bool labelled = false;
    for (const auto& [label, lv] : m.labels) labelled |= lv == v;
    if (!on_disk.count(v) || (wanted_serving && !labelled)) unload_locked(name, ver);
  }
  refresh_draining_locked(m);
}

void ModelManager::poll() {
  std::lock_guard update(update_mu_);
  for (const std::string& name : model_names()) sync_model(name);
}

void ModelManager::start_polling(int seconds) {
  if (seconds <= 0 || poller_.joinable()) return;
  poller_ = std::thread([this, seconds] {
    std::unique_lock lock(poll_mu_);
    while (!poll_cv_.wait_for(lock, std::chrono::seconds(seconds), [this] { return stop_; })) {
      lock.unlock();
      poll();
      lock.lock();
    }
  });
}

void ModelManager::stop_polling() {
  {
    std::lock_guard lock(poll_mu_);
    stop_ = true;
  }
  poll_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

void ModelManager::unload_all() {
  std::lock_guard update(update_mu_);
  std::unique_lock lock(mu_);
  for (auto& [name, m] : models_)
    for (auto& [v, ver] : m.versions) unload_locked(name, ver);
}

std::vector<std::string> ModelManager::model_names() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, m] : models_) out.push_back(name);
  return out;
}

ServeStatus ModelManager::find(const ::tensorflow::serving::ModelSpec& spec, ServableHandle* out) const {
  std::shared_lock lock(mu_);
  auto mt = models_.find(spec.name());
  if (mt == models_.end())
    return make_status(tfe::NOT_FOUND, "Servable not found for request: " + spec_text(spec));
  const ModelEntry& m = mt->second;
  auto failed = [&]() -> ServeStatus {
    // No serving version, but a failed one: the model is broken, not missing.
    for (auto it = m.versions.rbegin(); it != m.versions.rend(); ++it)
      if (it->second.state == MVS::END && !it->second.error.ok())
        return make_status(tfe::FAILED_PRECONDITION, str_cat("Servable ", spec.name(), " version ", it->first,
                                                             " failed to load: ", it->second.error.message));
    return make_status(tfe::NOT_FOUND, "Servable not found for request: " + spec_text(spec));
  };
  int64_t version = -1;
  if (spec.version_choice_case() == ::tensorflow::serving::ModelSpec::kVersionLabel) {
    auto lt = m.labels.find(spec.version_label());
    if (lt == m.labels.end())
      return make_status(tfe::INVALID_ARGUMENT, "Unrecognized servable version label: " + spec.version_label());
    version = lt->second;
  } else if (spec.has_version()) {
    version = spec.version().value();
  } else {
    for (auto it = m.versions.rbegin(); it != m.versions.rend(); ++it)
      if (it->second.state == MVS::AVAILABLE) {
        *out = it->second.handle;
        return {};
      }
    return failed();
  }
  auto vt = m.versions.find(version);
  if (vt != m.versions.end() && vt->second.state == MVS::AVAILABLE) {
    *out = vt->second.handle;
    return {};
  }
  if (vt != m.versions.end() && vt->second.state == MVS::END && !vt->second.error.ok())
    return make_status(tfe::FAILED_PRECONDITION, str_cat("Servable ", spec.name(), " version ", version,
                                                         " failed to load: ", vt->second.error.message));
  ::tensorflow::serving::ModelSpec specific = spec;
  specific.mutable_version()->set_value(version);
  return make_status(tfe::NOT_FOUND, "Servable not found for request: " + spec_text(specific));
}

ServeStatus ModelManager::status(const ::tensorflow::serving::ModelSpec& spec,
                                 ::tensorflow::serving::GetModelStatusResponse* response) const {
  std::unique_lock lock(mu_);  // refreshes UNLOADING -> END
  auto mt = models_.find(spec.name());
  if (mt == models_.end() || mt->second.versions.empty())
    return make_status(tfe::NOT_FOUND, "Could not find any versions of model " + spec.name());
  ModelEntry& m = mt->second;
  refresh_draining_locked(m);
  std::optional<int64_t> only;
  if (spec.version_choice_case() == ::tensorflow::serving::ModelSpec::kVersionLabel) {
    auto lt = m.labels.find(spec.version_label());
    if (lt == m.labels.end())
      return make_status(tfe::INVALID_ARGUMENT, "Unrecognized servable version label: " + spec.version_label());
    only = lt->second;
  } else if (spec.has_version()) {
    only = spec.version().value();
  }
  if (only && !m.versions.count(*only))
    return make_status(tfe::NOT_FOUND, str_cat("Could not find version ", *only, " of model ", spec.name()));
  // Newest first, as TF Serving lists them.
  for (auto it = m.versions.rbegin(); it != m.versions.rend(); ++it) {
    if (only && it->first != *only) continue;
    auto* s = response->add_model_version_status();
    s->set_version(it->first);
    s->set_state(it->second.state);
    s->mutable_status()->set_error_code(it->second.error.code);
    s->mutable_status()->set_error_message(it->second.error.message);
  }
  return {};
}

}  // namespace tessera::serve
