#include "train/events.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "tensorflow/core/util/event.pb.h"
#include "train/tfrecord.h"
#include "train/train_test_util.h"

namespace tessera::train {
namespace {

TEST(Events, FileNameFirstRecordAndScalars) {
  testing::TempDir dir;
  std::string path;
  for (auto form : {EventWriter::ScalarForm::kSimpleValue, EventWriter::ScalarForm::kTensor}) {
    EventWriter w(dir.file(form == EventWriter::ScalarForm::kTensor ? "tensor" : "simple"), ".v2", form);
    path = w.path();
    EXPECT_TRUE(std::regex_search(path, std::regex(R"(/events\.out\.tfevents\.\d{10}\..+\.v2$)"))) << path;
    w.add_scalar("loss", 3, 0.25);
    w.add_graph("fake graph bytes");
    w.close();
    TFRecordReader r(path);
    std::string rec;
    std::vector<tensorflow::Event> events;
    while (r.next(&rec)) {
      events.emplace_back();
      ASSERT_TRUE(events.back().ParseFromString(rec));
    }
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0].file_version(), "brain.Event:2");
    EXPECT_GT(events[0].wall_time(), 1.6e9);
    const auto& v = events[1].summary().value(0);
    EXPECT_EQ(events[1].step(), 3);
    EXPECT_EQ(v.tag(), "loss");
    if (form == EventWriter::ScalarForm::kSimpleValue) {
      EXPECT_EQ(v.simple_value(), 0.25f);
    } else {
      EXPECT_EQ(v.metadata().plugin_data().plugin_name(), "scalars");
      EXPECT_EQ(v.tensor().float_val(0), 0.25f);
      EXPECT_EQ(v.tensor().tensor_shape().dim_size(), 0);
    }
    EXPECT_EQ(events[2].graph_def(), "fake graph bytes");
  }
}

}  // namespace
}  // namespace tessera::train
