// TensorBoard event files: `<logdir>/events.out.tfevents.<10-digit secs>.<host>.<pid>.<n><suffix>`, a
// TFRecord stream of tensorflow.Event protos whose first record carries file_version
// "brain.Event:2". Each record is flushed as it is written, so TensorBoard can follow a run.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace tessera::train {

class TFRecordWriter;

class EventWriter {
 public:
  enum class ScalarForm {
    kSimpleValue,  // Summary.Value.simple_value: what every TensorBoard reader accepts
    kTensor,       // TF2's tf.summary.scalar: a rank-0 float tensor + "scalars" plugin metadata
  };

  // Creates `logdir` (and parents) if needed. `suffix` is appended to the file name.
  explicit EventWriter(const std::string& logdir, const std::string& suffix = "",
                       ScalarForm form = ScalarForm::kSimpleValue);
  ~EventWriter();

  void add_scalar(const std::string& tag, int64_t step, double value);
  // A serialized GraphDef (shown on TensorBoard's Graphs tab).
  void add_graph(const std::string& graph_def_bytes, int64_t step = 0);
  // A SessionLog START at `step`: TensorBoard drops the events this log directory already
  // holds at steps >= `step` (what a run killed after its last checkpoint wrote before dying),
  // so a resumed run's curve is not drawn twice.
  void add_session_start(int64_t step, const std::string& checkpoint_path);
  void flush();
  void close();
  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& serialized);

  std::string path_;
  ScalarForm form_;
  std::unique_ptr<TFRecordWriter> writer_;
};

// Seconds since the epoch as a double (the Event wall_time).
double wall_time_now();

}  // namespace tessera::train
