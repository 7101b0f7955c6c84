#include "train/events.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "support/error.h"
#include "tensorflow/core/util/event.pb.h"
#include "train/tfrecord.h"

namespace tessera::train {

double wall_time_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

EventWriter::EventWriter(const std::string& logdir, const std::string& suffix, ScalarForm form)
    : form_(form) {
  std::error_code ec;
  std::filesystem::create_directories(logdir, ec);
  if (ec) fail_code(ErrorCode::kFailedPrecondition, "cannot create log directory '", logdir, "': ", ec.message());
  char host[256] = "localhost";
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "localhost");
  host[sizeof(host) - 1] = '\0';
  const double now = wall_time_now();
  // The process id and a per-process count keep two writers in one second (a resumed run
  // right after a crash, two writers in one process) from truncating each other's file.
  static std::atomic<int> opened{0};
  char name[64];
  std::snprintf(name, sizeof(name), "events.out.tfevents.%010lld.", static_cast<long long>(now));
  path_ = (std::filesystem::path(logdir) /
           str_cat(name, host, ".", static_cast<long long>(getpid()), ".", opened++, suffix))
              .string();
  writer_ = std::make_unique<TFRecordWriter>(path_);
  tensorflow::Event e;
  e.set_wall_time(now);
  e.set_file_version("brain.Event:2");
  e.mutable_source_metadata()->set_writer("tessera");
  write_event(e.SerializeAsString());
}

EventWriter::~EventWriter() {
  try {
    close();
  } catch (const Error&) {
  }
}

void EventWriter::write_event(const std::string& serialized) {
  TS_CHECK(writer_, "event file '", path_, "' is closed");
  writer_->write(serialized);
  writer_->flush();
}

void EventWriter::add_scalar(const std::string& tag, int64_t step, double value) {
  tensorflow::Event e;
  e.set_wall_time(wall_time_now());
  e.set_step(step);
  auto* v = e.mutable_summary()->add_value();
  v->set_tag(tag);
  if (form_ == ScalarForm::kSimpleValue) {
    v->set_simple_value(static_cast<float>(value));
  } else {
    auto* meta = v->mutable_metadata();
    meta->mutable_plugin_data()->set_plugin_name("scalars");
    meta->set_data_class(tensorflow::DATA_CLASS_SCALAR);
    auto* t = v->mutable_tensor();
    t->set_dtype(tensorflow::DT_FLOAT);
    t->mutable_tensor_shape();  // rank 0
    t->add_float_val(static_cast<float>(value));
  }
  write_event(e.SerializeAsString());
}

void EventWriter::add_session_start(int64_t step, const std::string& checkpoint_path) {
  tensorflow::Event e;
  e.set_wall_time(wall_time_now());
  e.set_step(step);
  auto* log = e.mutable_session_log();
  log->set_status(tensorflow::SessionLog::START);
  log->set_checkpoint_path(checkpoint_path);
  write_event(e.SerializeAsString());
}

void EventWriter::add_graph(const std::string& graph_def_bytes, int64_t step) {
  tensorflow::Event e;
  e.set_wall_time(wall_time_now());
  e.set_step(step);
  e.set_graph_def(graph_def_bytes);
  write_event(e.SerializeAsString());
}

void EventWriter::flush() {
  if (writer_) writer_->flush();
}

void EventWriter::close() {
  if (!writer_) return;
  auto w = std::move(writer_);
  w->close();
}

}  // namespace tessera::train
