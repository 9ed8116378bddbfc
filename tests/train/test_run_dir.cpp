// test_run_dir.cpp — a fresh run never silently replaces another run: into a folder holding
// checkpoints it refuses (exit 2, naming the folder and the three ways out) and leaves every file
// as it was; with --overwrite=true it deletes the old run's checkpoints first, so a later resume
// cannot pick up the old run's newer steps and metrics.jsonl holds the new run only. And one
// writer per folder: beside a live run a fresh run, a resume and an overwrite all stop before
// touching anything (exit 2, naming the holder's PID); after kill -9 of the holder a resume
// continues at once; a lock file left by a dead process is no obstacle; a resume of a missing run
// creates nothing.
#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/train/checkpoint.h"
#include "hgpt/train/run_dir.h"
#include "tests/train/train_test_util.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

namespace hgpt::testing {
namespace {

using namespace std::chrono_literals;

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

// ---------------------------------------------------------------------------------------------
// One writer per run folder.

TEST(RunLock, ASecondHolderIsRefusedUntilTheFirstIsGone) {
  TempDir dir;
  {
    train::RunLock first(dir.file("run"));
    try {
      train::RunLock second(dir.file("run"));
      FAIL() << "a second lock on the same folder was granted";
    } catch (const UserError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("PID " + std::to_string(::getpid())), std::string::npos) << msg;
      EXPECT_NE(msg.find(dir.file("run")), std::string::npos) << msg;
    }
  }
  EXPECT_NO_THROW(train::RunLock again(dir.file("run")));  // released with its holder
}

void expect_refused_by_lock(const ChildResult& r, int holder_pid) {
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("in use by another run (PID " + std::to_string(holder_pid) + " on host "), std::string::npos)
      << r.output;
}

// A live run that has saved (save_every 1): beside it a fresh run, a resume and an overwrite are all
// refused and its files stay; kill -9 of it, then a resume goes on from its newest checkpoint.
TEST(RunLock, ALiveRunKeepsItsFolderAndAKilledOneResumesAtOnce) {
  TempDir dir;
  StreamingChild live(
      base_train_spec(base_train_argv({"--num_iterations=100000", "--save_every=1", "--out_dir=" + dir.path()})));
  ASSERT_TRUE(live.read_until("step 00003/", 120s)) << live.output;
  const std::string run = dir.file("d2");
  const std::optional<int64_t> saved = train::latest_checkpoint(run);
  ASSERT_TRUE(saved.has_value());
  const std::string model = train::model_file_name(*saved);

  expect_refused_by_lock(run_base_train({"--num_iterations=4", "--out_dir=" + dir.path()}), live.pid());
  expect_refused_by_lock(run_base_train({"--num_iterations=100000", "--resume=true", "--out_dir=" + dir.path()}),
                         live.pid());
  expect_refused_by_lock(run_base_train({"--num_iterations=4", "--overwrite=true", "--out_dir=" + dir.path()}),
                         live.pid());
  EXPECT_NE(read_text(run + "/" + model), "") << "a refused run deleted the live run's " << model;

  ASSERT_EQ(::kill(live.pid(), SIGKILL), 0);
  EXPECT_EQ(live.finish(60s), -1);
  const int64_t newest = *train::latest_checkpoint(run);
  const auto resumed =
      run_base_train({"--num_iterations=" + std::to_string(newest + 2), "--resume=true", "--out_dir=" + dir.path()});
  ASSERT_TRUE(resumed.ok()) << resumed.describe();
  EXPECT_NE(resumed.output.find("resumed from " + run + " at step " + std::to_string(newest)), std::string::npos)
      << resumed.output;
}

// Two fresh runs started together into one folder: one trains, the other stops (by the lock, or by
// the finished run's checkpoints when it came late), and metrics.jsonl holds one run's steps once.
TEST(RunLock, ConcurrentFreshRunsLeaveOneRun) {
  TempDir dir;
  const std::vector<std::string> args = {"--num_iterations=20", "--out_dir=" + dir.path()};
  auto seeded = [&](const char* seed) {
    auto a = args;
    a.push_back(seed);
    return base_train_spec(base_train_argv(a));
  };
  const auto results = run_processes({seeded("--seed=1"), seeded("--seed=2")}, 300s);
  ASSERT_EQ(results.size(), 2u);
  const int ok = results[0].ok() + results[1].ok();
  ASSERT_EQ(ok, 1) << results[0].describe() << "\n---\n" << results[1].describe();
  const ChildResult& refused = results[0].ok() ? results[1] : results[0];
  EXPECT_EQ(refused.exit_code, 2) << refused.describe();
  const auto steps = step_records(dir.file("d2/metrics.jsonl"));
  ASSERT_EQ(steps.size(), 20u);
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i]["step"], static_cast<int64_t>(i + 1));
}

TEST(RunLock, ALockFileLeftByADeadProcessIsNoObstacle) {
  TempDir dir;
  make_dirs(dir.file("d2"));
  write_text(dir.file("d2/run.lock"), "PID 999999 on host elsewhere\n");
  const auto r = run_base_train({"--num_iterations=2", "--out_dir=" + dir.path()});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(read_text(dir.file("d2/run.lock")).find("elsewhere"), std::string::npos) << "the holder text is stale";
}

// --resume=true names a run: with none there it stops and creates nothing (no folder, no lock file).
TEST(RunLock, AResumeOfAMissingRunCreatesNothing) {
  TempDir dir;
  const auto r = run_base_train({"--num_iterations=2", "--resume=true", "--out_dir=" + dir.path()});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.output.find("no run folder '" + dir.file("d2") + "'"), std::string::npos) << r.output;
  EXPECT_FALSE(is_directory(dir.file("d2"))) << "the failed resume created the run folder";
}

// Something else at the lock file's name: one line that says what to remove, exit 2.
TEST(RunLock, ALockPathThatIsADirectoryNamesTheFix) {
  TempDir dir;
  make_dirs(dir.file("d2/run.lock"));
  const auto r = run_base_train({"--num_iterations=2", "--out_dir=" + dir.path()});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.output.find("remove that directory"), std::string::npos) << r.output;
}

// A lock file that is a symbolic link is refused: the holder text never lands in the file it names.
TEST(RunLock, ALockFileThatIsASymlinkIsRefusedAndItsTargetUntouched) {
  TempDir dir;
  make_dirs(dir.file("d2"));
  write_text(dir.file("precious"), "x");
  ASSERT_EQ(::symlink(dir.file("precious").c_str(), dir.file("d2/run.lock").c_str()), 0);
  const auto r = run_base_train({"--num_iterations=2", "--out_dir=" + dir.path()});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.output.find("remove the link"), std::string::npos) << r.output;
  EXPECT_EQ(read_text(dir.file("precious")), "x");
}

// The files a run writes in its folder are its own: a link at one of their names (a symbolic link
// at metrics.jsonl or at a checkpoint's temporary name, a hard link at run.lock) never lets the run
// write into the file it names. metrics.jsonl and run.lock: refused; the temporary file: replaced.
TEST(RunLock, LinksInTheRunFolderNeverCarryTheRunsWritesElsewhere) {
  TempDir dir;
  write_text(dir.file("precious"), "x");
  make_dirs(dir.file("a/d2"));
  ASSERT_EQ(::symlink(dir.file("precious").c_str(), dir.file("a/d2/metrics.jsonl").c_str()), 0);
  const auto metrics = run_base_train({"--num_iterations=2", "--out_dir=" + dir.file("a")});
  EXPECT_EQ(metrics.exit_code, 2) << metrics.describe();
  EXPECT_NE(metrics.output.find("metrics.jsonl: Too many levels of symbolic links; it is a symbolic link: remove"),
            std::string::npos)
      << metrics.output;

  make_dirs(dir.file("b/d2"));
  ASSERT_EQ(::link(dir.file("precious").c_str(), dir.file("b/d2/run.lock").c_str()), 0);
  const auto lock = run_base_train({"--num_iterations=2", "--out_dir=" + dir.file("b")});
  EXPECT_EQ(lock.exit_code, 2) << lock.describe();
  EXPECT_NE(lock.output.find("run.lock is a hard link (the same file has other names): remove it"), std::string::npos)
      << lock.output;

  make_dirs(dir.file("c/d2"));
  ASSERT_EQ(::symlink(dir.file("precious").c_str(), dir.file("c/d2/model_000002.pt.tmp").c_str()), 0);
  const auto checkpoint = run_base_train({"--num_iterations=2", "--out_dir=" + dir.file("c")});
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.describe();
  EXPECT_TRUE(path_exists(dir.file("c/d2/model_000002.pt")));
  EXPECT_EQ(read_text(dir.file("precious")), "x") << "a run wrote through a link in its folder";
}

}  // namespace
}  // namespace hgpt::testing
