// test_resume_faults.cpp — what a damaged run folder or a diverging run does to base_train: each
// fault is one "error:" line naming the file (and key), exit 2, no LibTorch stack trace, and the
// newest checkpoint stays one that resumes. Covers corrupt model/optimizer files, damaged meta
// files (missing keys, wrong types, a short RNG state, a step name beyond int64), a num_iterations
// below the checkpoint's step, a torn metrics.jsonl, a metrics write that fails, and a loss that
// becomes NaN.
#include "hgpt/files.h"
#include "hgpt/train/checkpoint.h"
#include "tests/train/train_test_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace hgpt::testing {
namespace {

using Json = nlohmann::json;

// A finished 4-step run with checkpoints at 2 and 4, in its own folder.
struct SavedRun {
  TempDir dir;
  std::string run = dir.file("d2");
  SavedRun() {
    const auto r = run_base_train({"--num_iterations=4", "--save_every=2", "--out_dir=" + dir.path()});
    EXPECT_TRUE(r.ok()) << r.describe();
  }
  ChildResult resume(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> args = {"--num_iterations=6", "--save_every=2", "--resume=true",
                                     "--out_dir=" + dir.path()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_base_train(args);
  }
  std::string file(const std::string& name) const { return run + "/" + name; }
};

// Exit 2, one line "error: ..." with every needle, and no stack trace.
void expect_one_error_line(const ChildResult& r, const std::vector<std::string>& needles) {
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << r.output;
  EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << "more than one line:\n" << r.output;
  EXPECT_EQ(r.output.find("frame #"), std::string::npos) << r.output;
  for (const auto& n : needles)
    EXPECT_NE(r.output.find(n), std::string::npos) << "missing '" << n << "' in: " << r.output;
}

void edit_meta(const std::string& path, const std::function<void(Json&)>& edit) {
  Json meta = Json::parse(read_text(path));
  edit(meta);
  write_text(path, meta.dump(2));
}

TEST(ResumeFaults, CorruptModelOrOptimizerFile) {
  for (const char* name : {"model_000004.pt", "optim_000004_rank0.pt"}) {
    SCOPED_TRACE(name);
    SavedRun saved;
    const std::string path = saved.file(name);
    write_text(path, read_text(path).substr(0, 1000));  // truncated
    expect_one_error_line(saved.resume(), {path});
    write_text(path, std::string(3000, '\x5a'));  // not a zip archive at all
    expect_one_error_line(saved.resume(), {path});
  }
}

TEST(ResumeFaults, DamagedMetaFile) {
  const std::vector<std::pair<std::function<void(Json&)>, std::string>> damages = {
      {[](Json& m) { m.erase("loss_ema"); }, "'loss_ema'"},
      {[](Json& m) { m["loader"]["train_position"] = "16"; }, "'loader.train_position'"},
      {[](Json& m) { m["config"].erase("block_pattern"); }, "'config.block_pattern'"},
      {[](Json& m) { m["rng_state_cpu"] = m["rng_state_cpu"].get<std::string>().substr(0, 100); }, "'rng_state_cpu'"},
      {[](Json& m) { m["rng_state_cpu"] = 42; }, "'rng_state_cpu'"},
  };
  for (const auto& [damage, key] : damages) {
    SCOPED_TRACE(key);
    SavedRun saved;
    const std::string meta = saved.file("meta_000004.json");
    edit_meta(meta, damage);
    expect_one_error_line(saved.resume(), {meta, key});
  }
}

// A newest meta file that is a folder, or whose model file is gone: one line naming the file and
// what to do (was: a C++ stream error, exit 1), and the run's files untouched.
TEST(ResumeFaults, MetaFileThatIsAFolderOrAMissingModelFile) {
  SavedRun saved;
  make_dirs(saved.file("meta_000006.json"));
  expect_one_error_line(saved.resume({"--num_iterations=8"}),
                        {saved.file("meta_000006.json"), "is a folder, not a checkpoint's meta file: remove it"});
  remove_tree(saved.file("meta_000006.json"));
  ASSERT_EQ(std::remove(saved.file("model_000004.pt").c_str()), 0);
  expect_one_error_line(saved.resume(), {saved.file("model_000004.pt"), "remove its meta_*.json file"});
}

TEST(ResumeFaults, MetaFileNameBeyondInt64) {
  SavedRun saved;
  const std::string name = "meta_99999999999999999999.json";
  write_text(saved.file(name), read_text(saved.file("meta_000004.json")));
  expect_one_error_line(saved.resume(), {name});
}

TEST(ResumeFaults, NumIterationsBelowTheCheckpoint) {
  SavedRun saved;
  expect_one_error_line(saved.resume({"--num_iterations=3"}), {"'num_iterations'", "step 4", "--num_iterations=4"});
  const auto same = saved.resume({"--num_iterations=4"});  // resuming a finished run is fine
  EXPECT_TRUE(same.ok()) << same.describe();
}

TEST(ResumeFaults, TornMetricsLineIsDroppedOnResume) {
  SavedRun saved;
  { std::ofstream(saved.file("metrics.jsonl"), std::ios::app) << R"({"step":5,"loss":3.)"; }  // killed mid-line
  const auto r = saved.resume();
  ASSERT_TRUE(r.ok()) << r.describe();
  const auto steps = step_records(saved.file("metrics.jsonl"));  // every line parses
  ASSERT_EQ(steps.size(), 6u) << read_text(saved.file("metrics.jsonl"));
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i]["step"], static_cast<int64_t>(i + 1));
}

TEST(ResumeFaults, AFailedMetricsWriteStopsTheRunAndKeepsTheCheckpoint) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full on this machine";
  SavedRun saved;
  const std::string metrics = saved.file("metrics.jsonl");
  const std::string kept = read_text(metrics);
  ASSERT_EQ(::unlink(metrics.c_str()), 0);
  // metrics.jsonl as the device /dev/full is (a link to it would be refused): every write fails
  // as on a full disk. Making a device node needs root (or CAP_MKNOD).
  struct stat full {};
  ASSERT_EQ(::stat("/dev/full", &full), 0);
  if (::mknod(metrics.c_str(), S_IFCHR | 0666, full.st_rdev) != 0)
    GTEST_SKIP() << "cannot make a device node here (" << std::strerror(errno)
                 << "): run the tests as root for this one";
  const auto r = saved.resume();
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(metrics), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("No space left"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("step 00006"), std::string::npos) << "it trained on after the failed write:\n" << r.output;
  EXPECT_EQ(train::latest_checkpoint(saved.run), std::optional<int64_t>(4));
  // With the disk back, the same checkpoint resumes.
  ASSERT_EQ(::unlink(metrics.c_str()), 0);
  write_text(metrics, kept);
  const auto again = saved.resume();
  EXPECT_TRUE(again.ok()) << again.describe();
}

// A Mamba learning rate of 1e30 without clipping: the loss becomes NaN within a few steps. The run
// stops before the update that would poison the weights, and the newest checkpoint it leaves has
// finite weights that resume and train with a sane learning rate.
TEST(ResumeFaults, DivergenceStopsBeforeTheUpdateAndLeavesAGoodCheckpoint) {
  TempDir dir;
  const auto r = run_base_train(
      {"--num_iterations=20", "--save_every=1", "--mamba_lr=1e30", "--grad_clip=0", "--out_dir=" + dir.path()}, "MM");
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  for (const char* needle : {"error: ", "diverged at step", "micro-batch", "not updated"})
    EXPECT_NE(r.output.find(needle), std::string::npos) << "missing '" << needle << "' in: " << r.output;
  const std::string run = dir.file("d2");
  const auto newest = train::latest_checkpoint(run);
  ASSERT_TRUE(newest.has_value()) << r.output;
  for (const auto& [name, t] : train::load_tensor_dict(run + "/" + train::model_file_name(*newest)))
    EXPECT_TRUE(t.isfinite().all().item<bool>()) << name << " is not finite in checkpoint " << *newest;
  const auto resumed = run_base_train(
      {"--num_iterations=" + std::to_string(*newest + 2), "--save_every=1", "--resume=true", "--out_dir=" + dir.path()},
      "MM");
  EXPECT_TRUE(resumed.ok()) << "the newest checkpoint does not resume:\n" << resumed.describe();
}

}  // namespace
}  // namespace hgpt::testing
