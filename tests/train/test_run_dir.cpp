// test_run_dir.cpp — a fresh run never silently replaces another run: into a folder holding
// checkpoints it refuses (exit 2, naming the folder and the three ways out) and leaves every file
// as it was; with --overwrite=true it deletes the old run's checkpoints first, so a later resume
// cannot pick up the old run's newer steps and metrics.jsonl holds the new run only.
#include "hgpt/train/checkpoint.h"
#include "tests/train/train_test_util.h"

#include <gtest/gtest.h>

namespace hgpt::testing {
namespace {

TEST(RunDir, AFreshRunRefusesAFolderWithCheckpoints) {
  TempDir dir;
  const auto first = run_base_train({"--num_iterations=6", "--save_every=2", "--out_dir=" + dir.path()});
  ASSERT_TRUE(first.ok()) << first.describe();
  const std::string run = dir.file("d2");
  const std::string model = read_text(run + "/model_000004.pt");
  const std::string metrics = read_text(run + "/metrics.jsonl");

  const auto second = run_base_train({"--num_iterations=4", "--save_every=2", "--seed=7", "--out_dir=" + dir.path()});
  EXPECT_EQ(second.exit_code, 2) << second.describe();
  for (const char* needle : {"error: ", "--resume=true", "model_tag", "--overwrite=true", "step 6"})
    EXPECT_NE(second.output.find(needle), std::string::npos) << "missing '" << needle << "' in: " << second.output;
  EXPECT_NE(second.output.find(run), std::string::npos) << second.output;
  EXPECT_EQ(read_text(run + "/model_000004.pt"), model) << "the first run's checkpoint was touched";
  EXPECT_EQ(read_text(run + "/metrics.jsonl"), metrics) << "the first run's metrics were touched";
}

TEST(RunDir, OverwriteDeletesTheOldRunFirst) {
  TempDir dir;
  const auto first = run_base_train({"--num_iterations=6", "--save_every=2", "--out_dir=" + dir.path()});
  ASSERT_TRUE(first.ok()) << first.describe();
  const auto second = run_base_train(
      {"--num_iterations=4", "--save_every=2", "--seed=7", "--overwrite=true", "--out_dir=" + dir.path()});
  ASSERT_TRUE(second.ok()) << second.describe();
  const std::string run = dir.file("d2");
  // The first run's step 6 is gone: a resume now continues the second run.
  EXPECT_EQ(train::latest_checkpoint(run), std::optional<int64_t>(4));
  EXPECT_EQ(read_text(run + "/model_000006.pt"), "") << "model_000006.pt of the first run is still there";
  const auto steps = step_records(run + "/metrics.jsonl");
  ASSERT_EQ(steps.size(), 4u) << read_text(run + "/metrics.jsonl");
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i]["step"], static_cast<int64_t>(i + 1));
}

}  // namespace
}  // namespace hgpt::testing
