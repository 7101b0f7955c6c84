// The compile cache keys on the program's build ID; it must exist and be stable in a process.
#include <gtest/gtest.h>

#include "runtime/build_id.h"

namespace tessera {
namespace {

TEST(BuildId, PresentAndStable) {
  std::string id = program_build_id();
  EXPECT_GE(id.size(), 16u) << "linker did not record a build ID";
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  EXPECT_EQ(id, program_build_id());
}

}  // namespace
}  // namespace tessera
