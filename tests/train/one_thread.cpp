// one_thread.cpp — the train tests run their tiny models on one intra-op thread: on a busy 2-core
// machine two OpenMP threads can make a 15 ms step take over a second (threads spin at barriers
// while the other core is taken). Results do not depend on it; only the run time does.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

namespace {

class OneThread : public ::testing::Environment {
 public:
  void SetUp() override { at::set_num_threads(1); }
};

[[maybe_unused]] ::testing::Environment* const kOneThread = ::testing::AddGlobalTestEnvironment(new OneThread);

}  // namespace
