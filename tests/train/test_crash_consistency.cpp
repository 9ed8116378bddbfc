// test_crash_consistency.cpp — kill -9 never loses more than the steps since the last checkpoint:
// base_train is killed with SIGKILL halfway through writing each checkpoint file, and at random
// moments; resuming (as often as it takes) must end with the uninterrupted run's losses bit for bit,
// and with a metrics.jsonl that holds each record once, in order, exactly as the uninterrupted
// run's — no duplicates, no torn lines, no leftover temporary files.
#include "hgpt/train/checkpoint.h"
#include "tests/train/train_test_util.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <random>

namespace hgpt::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// 12 steps, a checkpoint every 2, an evaluation every 4: the run of every test here.
std::vector<std::string> run_args(const std::string& out_dir) {
  return {"--num_iterations=12", "--save_every=2", "--eval_every=4", "--out_dir=" + out_dir};
}

// What must match between runs: kind, step and the numbers that depend on the weights.
std::vector<Json> essential(const std::string& metrics_path) {
  std::vector<Json> out;
  for (const auto& r : read_jsonl(metrics_path)) {
    if (r.contains("loss"))
      out.push_back({{"step", r["step"]}, {"loss", r["loss"]}, {"loss_ema", r["loss_ema"]}});
    else
      out.push_back({{"step", r["step"]}, {"val_loss", r["val_loss"]}});
  }
  return out;
}

std::vector<std::string> leftover_temporaries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.find(".tmp") != std::string::npos) out.push_back(name);
    }
    ::closedir(d);
  }
  return out;
}

// Resumes (or starts, when no checkpoint exists yet) until the run completes.
void run_to_completion(const std::string& out_dir) {
  const bool have_checkpoint = train::latest_checkpoint(out_dir + "/d2").has_value();
  auto args = run_args(out_dir);
  if (have_checkpoint) args.push_back("--resume=true");
  const auto r = run_base_train(args);
  ASSERT_TRUE(r.ok()) << r.describe();
}

class CrashConsistency : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    reference_dir_ = new TempDir();
    const auto start = std::chrono::steady_clock::now();
    const auto r = run_base_train(run_args(reference_dir_->path()));
    reference_ms_ =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(r.ok()) << r.describe();
    reference_ = new std::vector<Json>(essential(reference_dir_->path() + "/d2/metrics.jsonl"));
  }
  static void TearDownTestSuite() {
    delete reference_;
    delete reference_dir_;
  }

  // The finished run in out_dir equals the reference: same records, same final weights.
  static void expect_same_as_reference(const std::string& out_dir) {
    const std::string dir = out_dir + "/d2";
    ASSERT_EQ(reference_->size(), 12u + 4u);  // steps 1..12, evaluations at 0, 4, 8, 12
    EXPECT_EQ(essential(dir + "/metrics.jsonl"), *reference_);
    EXPECT_EQ(read_text(dir + "/model_000012.pt"), read_text(reference_dir_->path() + "/d2/model_000012.pt"))
        << "the final weights differ from the uninterrupted run's";
    EXPECT_TRUE(leftover_temporaries(dir).empty()) << "temporary files left in " << dir;
  }

  static TempDir* reference_dir_;
  static std::vector<Json>* reference_;
  static int64_t reference_ms_;  // how long the uninterrupted run took, start-up included
};
TempDir* CrashConsistency::reference_dir_ = nullptr;
int64_t CrashConsistency::reference_ms_ = 0;
std::vector<Json>* CrashConsistency::reference_ = nullptr;

// SIGKILL halfway through writing each file of the step-6 checkpoint (the meta file last: until
// it exists, the checkpoint is incomplete and resume starts from step 4).
TEST_F(CrashConsistency, KilledWhileWritingACheckpoint) {
  for (const char* file : {"model_000006.pt", "optim_000006_rank0.pt", "meta_000006.json"}) {
    SCOPED_TRACE(file);
    TempDir out;
    auto spec = base_train_spec(base_train_argv(run_args(out.path())));
    spec.env.emplace_back("HGPT_CRASH_TEST_KILL_WRITING", file);
    const auto killed = run_process(spec, 300s);
    ASSERT_EQ(killed.term_signal, SIGKILL) << killed.describe();
    EXPECT_EQ(train::latest_checkpoint(out.file("d2")), std::optional<int64_t>(4));
    run_to_completion(out.path());
    expect_same_as_reference(out.path());
  }
}

// SIGKILL at random moments (start-up, training, evaluation, checkpoint writes), five times, then
// resume to the end. Each kill comes after 20–100% of the uninterrupted run's wall time (from a
// fixed seed): most land inside the run, wherever this machine's speed puts them.
TEST_F(CrashConsistency, KilledAtRandomMoments) {
  TempDir out;
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int64_t> delay_ms(reference_ms_ / 5, reference_ms_);
  int killed = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const bool have_checkpoint = train::latest_checkpoint(out.file("d2")).has_value();
    auto args = run_args(out.path());
    if (have_checkpoint) args.push_back("--resume=true");
    const auto r = run_process(base_train_spec(base_train_argv(args)), std::chrono::milliseconds(delay_ms(rng)));
    // Finished before the kill is fine too; anything else must be the kill itself.
    ASSERT_TRUE(r.ok() || r.timed_out) << r.describe();
    killed += r.timed_out;
  }
  EXPECT_GE(killed, 1) << "no attempt was killed: the delays missed the run";
  run_to_completion(out.path());
  expect_same_as_reference(out.path());
}

}  // namespace
}  // namespace hgpt::testing
