// test_train_resume_default.cpp — exact resume on the shipped CPU config itself (depth 4, seq 256,
// pattern TMTM) with gradient accumulation 2 and the default intra-op thread count: an
// uninterrupted run vs a new process resuming from a copy of its mid-run checkpoint.
#include "hgpt/train/checkpoint.h"
#include "tests/train/train_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

namespace fs = std::filesystem;

namespace hgpt::testing {
namespace {

ChildResult run_default(const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {kBaseTrain,           kTinyConfig,      "--device=cpu",   "--device_batch_size=4",
                                   "--num_iterations=6", "--save_every=3", "--eval_every=3", "--eval_tokens=4096",
                                   "--sample_every=-1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_process(base_train_spec(argv, /*threads=*/0), std::chrono::minutes(15));
}

TEST(SlowResume, DefaultConfigWithAccumulationResumesBitwise) {
  TempDir dir;
  const auto full = run_default({"--out_dir=" + dir.file("full")});
  ASSERT_TRUE(full.ok()) << full.describe();
  EXPECT_NE(full.output.find("2 accumulation step(s)"), std::string::npos) << full.output;

  fs::create_directories(dir.file("resumed/d4"));
  for (const char* f : {"model_000003.pt", "optim_000003_rank0.pt", "meta_000003.json"})
    fs::copy_file(dir.file("full/d4/" + std::string(f)), dir.file("resumed/d4/" + std::string(f)));
  const auto resumed = run_default({"--out_dir=" + dir.file("resumed"), "--resume=true"});
  ASSERT_TRUE(resumed.ok()) << resumed.describe();

  const auto a = step_records(dir.file("full/d4/metrics.jsonl"));
  const auto b = step_records(dir.file("resumed/d4/metrics.jsonl"));
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(a[i + 3]["step"], b[i]["step"]);
    EXPECT_EQ(a[i + 3]["loss"].get<double>(), b[i]["loss"].get<double>()) << "step " << b[i]["step"];
  }
  EXPECT_LT(a.back()["loss"].get<double>(), a.front()["loss"].get<double>());

  const auto wa = train::load_tensor_dict(dir.file("full/d4/model_000006.pt"));
  const auto wb = train::load_tensor_dict(dir.file("resumed/d4/model_000006.pt"));
  ASSERT_EQ(wa.size(), wb.size());
  std::map<std::string, at::Tensor> by_name(wb.begin(), wb.end());
  for (const auto& [name, t] : wa) {
    ASSERT_TRUE(by_name.count(name)) << name;
    EXPECT_TRUE(at::equal(t, by_name[name])) << name;
  }
  EXPECT_EQ(train::read_meta(dir.file("full/d4"), 6).at("val").at("val_loss").get<double>(),
            train::read_meta(dir.file("resumed/d4"), 6).at("val").at("val_loss").get<double>());
}

}  // namespace
}  // namespace hgpt::testing
