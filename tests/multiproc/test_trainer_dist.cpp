// test_trainer_dist.cpp — data-parallel training end to end: real base_train runs of 1 and 2 ranks
// over Gloo on loopback (launched with torchrun-style variables and through mpirun), compared on
// their per-step losses (metrics.jsonl) and final weights (model_*.pt); resume at the same world
// size and at 1, 2 and 4 ranks from another (the optimizer state re-sharded); a rank killed
// mid-run; ranks started with different configs; a rendezvous that cannot happen (a mute
// MASTER_PORT, a MASTER_ADDR that does not resolve); two "hosts" in network namespaces, and a link
// cut between them mid-run.
//
// Every run is a tiny model (depth 2, width 64, sequence 32) for 4 steps, so each takes seconds.
// Runs that several tests compare against are made once per test process and cached.
#include <ATen/ATen.h>
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "hgpt/train/checkpoint.h"
#include "tests/support/files.h"
#include "tests/support/spawn.h"

namespace {

namespace fs = std::filesystem;
using hgpt::testing::ChildResult;
using hgpt::testing::ChildSpec;
using hgpt::testing::launcher_variables;
using Env = std::vector<std::pair<std::string, std::string>>;
using namespace std::chrono_literals;

constexpr auto kRunTimeout = 120s;         // one launch of base_train (all its ranks); a tiny run takes seconds
constexpr double kDpTolerance = 1e-5;      // 2 ranks vs 1 rank × 2 micro-steps: summation order differs
constexpr double kResumeTolerance = 1e-6;  // resumed vs uninterrupted at the same world size
const char* kModelTag = "d2";              // base_train's default tag for depth 2

// ------------------------------------------------------------------------------------------------
// Scratch folder for every run of this process, removed at the end.

const fs::path& scratch_root() {
  static const hgpt::testing::TempDir dir;
  static const fs::path root(dir.path());
  return root;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = scratch_root() / name;
  hgpt::testing::remove_tree(dir);
  fs::create_directories(dir);
  return dir;
}

// ------------------------------------------------------------------------------------------------
// base_train command lines

std::string base_train() { return std::string(HGPT_BUILD_DIR) + "/base_train"; }

// Tiny config: 128 tokens per micro-step (4 × 32) and 256 per step, so 1 rank accumulates 2
// micro-steps and 2 ranks 1 each. Checkpoints at steps 2 and 4, evals at 0, 2 and 4.
std::vector<std::string> train_argv(const std::string& pattern, const fs::path& out_dir,
                                    std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {base_train(),
                                   std::string(HGPT_SOURCE_DIR) + "/configs/tiny_cpu.json",
                                   "--device=cpu",
                                   "--depth=2",
                                   "--aspect_ratio=32",
                                   "--head_dim=32",
                                   "--max_seq_len=32",
                                   "--device_batch_size=4",
                                   "--total_batch_size=256",
                                   "--num_iterations=4",
                                   "--eval_every=2",
                                   "--eval_tokens=256",
                                   "--sample_every=0",
                                   "--save_every=2",
                                   "--dist_timeout_s=20",
                                   "--block_pattern=" + pattern,
                                   "--out_dir=" + out_dir.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// One compute thread per process: 2 ranks on a 2-core CI machine do not fight over cores.
const std::pair<std::string, std::string> kOneThread{"OMP_NUM_THREADS", "1"};

// One process, no launcher variables (whatever launched the test).
ChildSpec single_spec(std::vector<std::string> argv) {
  ChildSpec spec;
  spec.argv = std::move(argv);
  spec.env = {kOneThread};
  spec.unset_env = launcher_variables();
  return spec;
}

std::vector<ChildSpec> two_rank_specs(const std::vector<std::string>& argv, Env env = {}) {
  env.push_back(kOneThread);
  return hgpt::testing::torchrun_specs(argv, 2, hgpt::testing::free_tcp_port(), env);
}

std::string mpirun_path() { return hgpt::testing::find_in_path("mpirun"); }

ChildSpec mpirun_two_ranks(const std::vector<std::string>& argv) {
  return hgpt::testing::mpirun_spec(
      mpirun_path(), argv, 2,
      {{"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(hgpt::testing::free_tcp_port())}, kOneThread});
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ------------------------------------------------------------------------------------------------
// What a finished run left behind

struct RunRecord {
  std::map<int64_t, double> loss;      // training step (1-based, after the update) → logged loss
  std::map<int64_t, double> val_loss;  // step → validation loss
  int64_t lines = 0;                   // records in the file (only rank 0 writes it)
};

RunRecord read_metrics(const fs::path& file) {
  RunRecord rec;
  std::ifstream in(file);
  EXPECT_TRUE(in.good()) << "no metrics file " << file;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ++rec.lines;
    const auto j = nlohmann::json::parse(line);
    const int64_t step = j.at("step").get<int64_t>();
    if (j.contains("loss")) rec.loss[step] = j["loss"].get<double>();
    if (j.contains("val_loss")) rec.val_loss[step] = j["val_loss"].get<double>();
  }
  return rec;
}

fs::path tag_dir(const fs::path& out_dir) { return out_dir / kModelTag; }

fs::path model_file(const fs::path& out_dir, int64_t step) {
  return tag_dir(out_dir) / hgpt::train::model_file_name(step);
}

void expect_same_values(const std::map<int64_t, double>& a, const std::map<int64_t, double>& b, double tol,
                        const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what << ": different steps logged";
  for (const auto& [step, va] : a) {
    ASSERT_TRUE(b.count(step)) << what << ": step " << step << " missing";
    EXPECT_TRUE(std::isfinite(va)) << what << " at step " << step;
    EXPECT_NEAR(va, b.at(step), tol) << what << " at step " << step;
  }
}

// Largest |a − b| over all tensors of two model files; fails when names or shapes differ.
double max_weight_diff(const fs::path& a, const fs::path& b) {
  const auto da = hgpt::train::load_tensor_dict(a.string());
  const auto db = hgpt::train::load_tensor_dict(b.string());
  EXPECT_EQ(da.size(), db.size()) << a << " vs " << b;
  EXPECT_FALSE(da.empty()) << a;
  std::map<std::string, at::Tensor> by_name(db.begin(), db.end());
  double worst = 0.0;
  for (const auto& [name, ta] : da) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      ADD_FAILURE() << name << " is in " << a << " but not in " << b;
      return INFINITY;
    }
    if (ta.sizes() != it->second.sizes()) {
      ADD_FAILURE() << name << ": shape " << ta.sizes() << " vs " << it->second.sizes();
      return INFINITY;
    }
    const double d = (ta.to(at::kDouble) - it->second.to(at::kDouble)).abs().max().item<double>();
    EXPECT_TRUE(std::isfinite(d)) << name;
    worst = std::max(worst, d);
  }
  return worst;
}

// ------------------------------------------------------------------------------------------------
// Runs shared by several tests, made on first use: key → out_dir of a run that passed.

enum class Launch { kSingle, kTorchrun, kMpirun };

const char* launch_name(Launch l) {
  return l == Launch::kSingle ? "single" : l == Launch::kTorchrun ? "torchrun" : "mpirun";
}

// A full 4-step run; asserts (fatally) that every rank succeeded, and checks the accumulation the
// summary reports so that the comparisons below really compare 2 ranks with 2 micro-steps.
fs::path reference_run(const std::string& pattern, Launch launch) {
  static std::map<std::string, fs::path> done;
  const std::string key = pattern + "_" + launch_name(launch);
  if (auto it = done.find(key); it != done.end()) return it->second;

  const fs::path out = fresh_dir(key);
  const auto argv = train_argv(pattern, out);
  std::vector<ChildResult> results;
  if (launch == Launch::kSingle)
    results = {hgpt::testing::run_process(single_spec(argv), kRunTimeout)};
  else if (launch == Launch::kTorchrun)
    results = hgpt::testing::run_processes(two_rank_specs(argv), kRunTimeout);
  else
    results = {hgpt::testing::run_process(mpirun_two_ranks(argv), kRunTimeout)};

  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_TRUE(results[i].ok()) << key << " process " << i << ": " << results[i].describe();
  }
  const std::string& rank0 = results[0].output;
  const std::string expected_layout =
      launch == Launch::kSingle ? "× 2 accumulation step(s) × 1 rank(s)" : "× 1 accumulation step(s) × 2 rank(s)";
  EXPECT_TRUE(contains(rank0, expected_layout)) << key << ": " << results[0].describe();
  if (launch != Launch::kSingle) EXPECT_TRUE(contains(rank0, "backend gloo")) << results[0].describe();
  if (::testing::Test::HasFailure()) throw std::runtime_error("reference run " + key + " failed");
  done[key] = out;
  return out;
}

// 2 ranks (launched as `launch`) against 1 rank with 2 micro-steps: same losses, same weights.
void expect_two_ranks_match_one(const std::string& pattern, Launch launch) {
  const fs::path one = reference_run(pattern, Launch::kSingle);
  const fs::path two = reference_run(pattern, launch);
  const RunRecord m1 = read_metrics(tag_dir(one) / "metrics.jsonl");
  const RunRecord m2 = read_metrics(tag_dir(two) / "metrics.jsonl");
  ASSERT_EQ(m1.loss.size(), 4u) << "expected one training record per step";
  ASSERT_EQ(m1.val_loss.size(), 3u) << "expected evals at steps 0, 2 and 4";
  EXPECT_EQ(m2.lines, 7) << "metrics.jsonl must hold 4 step and 3 eval records, written by rank 0 only";
  expect_same_values(m1.loss, m2.loss, kDpTolerance, "training loss");
  expect_same_values(m1.val_loss, m2.val_loss, kDpTolerance, "validation loss");
  // Training moved: a comparison of two untrained models would prove nothing.
  EXPECT_LT(m1.loss.at(4), m1.loss.at(1) - 0.1);

  const double dw = max_weight_diff(model_file(one, 4), model_file(two, 4));
  EXPECT_LE(dw, kDpTolerance) << "final weights, 1 rank vs 2 ranks (" << launch_name(launch) << ")";
  std::printf("%s, 1 rank vs 2 ranks (%s): max weight difference %g\n", pattern.c_str(), launch_name(launch), dw);
  EXPECT_GT(max_weight_diff(model_file(one, 2), model_file(one, 4)), 1e-3) << "weights did not change";
  // Each rank wrote its own optimizer state.
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(fs::exists(tag_dir(two) / hgpt::train::optim_file_name(4, r))) << "rank " << r;
  }
}

// ------------------------------------------------------------------------------------------------
// 2 ranks × device batch B ≡ 1 rank × 2 micro-steps of B

TEST(TrainerDist, TwoRanksMatchOneRankTransformerTorchrun) { expect_two_ranks_match_one("TT", Launch::kTorchrun); }

TEST(TrainerDist, TwoRanksMatchOneRankHybridTorchrun) { expect_two_ranks_match_one("TM", Launch::kTorchrun); }

TEST(TrainerDist, TwoRanksMatchOneRankTransformerMpirun) {
  if (mpirun_path().empty()) GTEST_SKIP() << "mpirun not found in PATH (Debian: openmpi-bin)";
  expect_two_ranks_match_one("TT", Launch::kMpirun);
}

TEST(TrainerDist, TwoRanksMatchOneRankHybridMpirun) {
  if (mpirun_path().empty()) GTEST_SKIP() << "mpirun not found in PATH (Debian: openmpi-bin)";
  expect_two_ranks_match_one("TM", Launch::kMpirun);
}

// ------------------------------------------------------------------------------------------------
// Resume

// Copies the run's checkpoint folder without the step-4 checkpoint and without metrics, so that it
// looks like a run stopped right after saving at step 2.
fs::path copy_stopped_at_step_2(const fs::path& run, const std::string& name) {
  const fs::path out = fresh_dir(name);
  fs::create_directories(tag_dir(out));
  for (const auto& entry : fs::directory_iterator(tag_dir(run))) {
    const std::string file = entry.path().filename().string();
    if (file.find("_000002") == std::string::npos) continue;  // model/meta/optim of step 2 only
    fs::copy_file(entry.path(), tag_dir(out) / file);
  }
  return out;
}

TEST(TrainerDist, ResumeWithTwoRanksMatchesUninterruptedRun) {
  const fs::path full = reference_run("TM", Launch::kTorchrun);
  const fs::path out = copy_stopped_at_step_2(full, "resume_same_world");
  ASSERT_TRUE(fs::exists(tag_dir(out) / "meta_000002.json"));
  ASSERT_TRUE(fs::exists(tag_dir(out) / hgpt::train::optim_file_name(2, 1)));
  ASSERT_FALSE(fs::exists(model_file(out, 4)));

  const auto res = hgpt::testing::run_processes(two_rank_specs(train_argv("TM", out, {"--resume=true"})), kRunTimeout);
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(res[r].ok()) << "rank " << r << ": " << res[r].describe();
  EXPECT_TRUE(contains(res[0].output, "at step 2")) << res[0].describe();

  const RunRecord uninterrupted = read_metrics(tag_dir(full) / "metrics.jsonl");
  const RunRecord resumed = read_metrics(tag_dir(out) / "metrics.jsonl");
  // The resumed run trained steps 3 and 4 only, with the same losses.
  const std::map<int64_t, double> tail = {{3, uninterrupted.loss.at(3)}, {4, uninterrupted.loss.at(4)}};
  expect_same_values(resumed.loss, tail, kResumeTolerance, "training loss after resume");
  const std::map<int64_t, double> val_tail = {{2, uninterrupted.val_loss.at(2)}, {4, uninterrupted.val_loss.at(4)}};
  expect_same_values(resumed.val_loss, val_tail, kResumeTolerance, "validation loss after resume");

  const double dw = max_weight_diff(model_file(full, 4), model_file(out, 4));
  EXPECT_LE(dw, kResumeTolerance) << "final weights, resumed vs uninterrupted";
  std::printf("resumed vs uninterrupted: max weight difference %g%s\n", dw, dw == 0 ? " (bitwise)" : "");
}

// Resumed on another world size, a run goes on as the uninterrupted one: the optimizer state is
// re-sharded (every rank's file read, each rank keeping what it owns now) and the loader continues
// after the same rows. Equal to kDpTolerance, not bitwise: the ranks sum gradients in another order.
void expect_resumed_elsewhere_matches(const fs::path& full, const fs::path& out, const std::vector<ChildSpec>& specs) {
  const auto res = hgpt::testing::run_processes(specs, kRunTimeout);
  for (size_t r = 0; r < res.size(); ++r) ASSERT_TRUE(res[r].ok()) << "rank " << r << ": " << res[r].describe();
  EXPECT_TRUE(contains(res[0].output, "at step 2")) << res[0].describe();
  const RunRecord uninterrupted = read_metrics(tag_dir(full) / "metrics.jsonl");
  const RunRecord resumed = read_metrics(tag_dir(out) / "metrics.jsonl");
  const std::map<int64_t, double> tail = {{3, uninterrupted.loss.at(3)}, {4, uninterrupted.loss.at(4)}};
  expect_same_values(resumed.loss, tail, kDpTolerance, "training loss after resume");
  const double dw = max_weight_diff(model_file(full, 4), model_file(out, 4));
  EXPECT_LE(dw, kDpTolerance) << "final weights, resumed elsewhere vs uninterrupted";
  std::printf("resumed on %zu rank(s) vs uninterrupted: max weight difference %g\n", res.size(), dw);
}

TEST(TrainerDist, ResumeOnFewerRanksMatchesTheUninterruptedRun) {
  const fs::path full = reference_run("TM", Launch::kTorchrun);
  const fs::path out = copy_stopped_at_step_2(full, "resume_2_to_1");
  expect_resumed_elsewhere_matches(full, out, {single_spec(train_argv("TM", out, {"--resume=true"}))});
}

TEST(TrainerDist, ResumeOnMoreRanksMatchesTheUninterruptedRun) {
  const fs::path full = reference_run("TM", Launch::kSingle);
  const fs::path out = copy_stopped_at_step_2(full, "resume_1_to_2");
  expect_resumed_elsewhere_matches(full, out, two_rank_specs(train_argv("TM", out, {"--resume=true"})));
}

// 2 ranks of 4 rows → 4 ranks of 2 rows: the world size and device_batch_size both change, the
// rows per step (total_batch_size) stay.
TEST(TrainerDist, ResumeOnFourRanksOfSmallerBatchesMatchesTheUninterruptedRun) {
  const fs::path full = reference_run("TM", Launch::kTorchrun);
  const fs::path out = copy_stopped_at_step_2(full, "resume_2_to_4");
  auto specs = hgpt::testing::torchrun_specs(train_argv("TM", out, {"--resume=true", "--device_batch_size=2"}), 4,
                                             hgpt::testing::free_tcp_port(), {kOneThread});
  expect_resumed_elsewhere_matches(full, out, specs);
}

// torchrun --max-restarts=1 and resume=auto: the first attempt's rank 1 is killed (kill -9) after
// the step-10 checkpoint; torchrun restarts both workers, which resume from the newest complete
// checkpoint and end with the weights of an uninterrupted run, each step logged once.
TEST(TrainerDist, TorchrunRestartsAKilledGroupAndResumeAutoFinishesTheRun) {
  const std::string torchrun = std::string(HGPT_SOURCE_DIR) + "/.venv/bin/torchrun";
  if (!fs::exists(torchrun)) GTEST_SKIP() << torchrun << " not found (scripts/setup.sh installs the torch wheel)";
  // 30 steps of 16 micro-steps each, so that the kill lands mid-run.
  const std::vector<std::string> longer = {"--num_iterations=30", "--save_every=5", "--eval_every=10",
                                           "--total_batch_size=4096", "--resume=auto"};
  const fs::path full = fresh_dir("restart_reference"), out = fresh_dir("restart");
  const auto reference = hgpt::testing::run_processes(two_rank_specs(train_argv("TM", full, longer)), kRunTimeout);
  for (const auto& r : reference) ASSERT_TRUE(r.ok()) << r.describe();

  const char* kill_rank1_once =
      "if [ \"$TORCHELASTIC_RESTART_COUNT\" = 0 ] && [ \"$RANK\" = 1 ]; then\n"
      "  \"$@\" & pid=$!\n"
      "  until grep -q '\"step\":12[,}]' \"$METRICS\" 2>/dev/null; do\n"
      "    kill -0 $pid 2>/dev/null || { echo 'finished before the kill'; exit 98; }\n"
      "    sleep 0.02\n"
      "  done\n"
      "  kill -9 $pid; exit 1\n"
      "fi\n"
      "exec \"$@\"\n";
  ChildSpec spec;
  spec.argv = {torchrun,
               "--standalone",
               "--nproc-per-node=2",
               "--max-restarts=1",
               "--monitor-interval=0.2",
               "--no-python",
               "/bin/sh",
               "-c",
               kill_rank1_once,
               "sh"};
  for (const auto& arg : train_argv("TM", out, longer)) spec.argv.push_back(arg);
  spec.unset_env = launcher_variables();
  spec.env = {kOneThread, {"METRICS", (tag_dir(out) / "metrics.jsonl").string()}};
  const auto res = hgpt::testing::run_process(spec, 300s);
  ASSERT_TRUE(res.ok()) << res.describe();
  EXPECT_FALSE(contains(res.output, "finished before the kill")) << res.describe();
  EXPECT_TRUE(contains(res.output, "resume=auto: no checkpoint")) << res.describe();
  EXPECT_TRUE(contains(res.output, "resume=auto: resuming")) << res.describe();

  const RunRecord uninterrupted = read_metrics(tag_dir(full) / "metrics.jsonl");
  const RunRecord restarted = read_metrics(tag_dir(out) / "metrics.jsonl");
  EXPECT_EQ(restarted.lines, uninterrupted.lines) << "every step and evaluation once";
  expect_same_values(restarted.loss, uninterrupted.loss, kResumeTolerance, "training loss");
  const double dw = max_weight_diff(model_file(full, 30), model_file(out, 30));
  EXPECT_LE(dw, kResumeTolerance) << "final weights, restarted vs uninterrupted";
  std::printf("restarted by torchrun vs uninterrupted: max weight difference %g\n", dw);
}

// ------------------------------------------------------------------------------------------------
// Two hosts: two Linux network namespaces joined by a veth pair, each with its own address, made
// here and removed after (traffic never leaves them). Skipped where namespaces cannot be made.

class TwoHosts : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string tag = std::to_string(::getpid() % 100000);
    for (int h = 0; h < 2; ++h) {
      ns_[h] = "hgpt_h" + std::to_string(h) + "_" + tag;
      link_[h] = "hgv" + std::to_string(h) + "_" + tag;  // interface names: at most 15 characters
    }
    if (!sh("ip netns add " + ns_[0] + " && ip netns add " + ns_[1])) {
      sh("ip netns del " + ns_[0]);
      GTEST_SKIP() << "cannot create network namespaces here (needs root or CAP_NET_ADMIN and `ip`)";
    }
    made_ = true;
    ASSERT_TRUE(sh("ip link add " + link_[0] + " type veth peer name " + link_[1]));
    for (int h = 0; h < 2; ++h) {
      ASSERT_TRUE(sh("ip link set " + link_[h] + " netns " + ns_[h] + " && ip -n " + ns_[h] + " addr add " +
                     address(h) + "/24 dev " + link_[h] + " && ip -n " + ns_[h] + " link set " + link_[h] +
                     " up && ip -n " + ns_[h] + " link set lo up"));
    }
  }
  void TearDown() override {
    if (made_) sh("ip netns del " + ns_[0] + "; ip netns del " + ns_[1]);  // takes the veth pair along
  }
  static bool sh(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }
  static std::string address(int host) { return "10.77.0." + std::to_string(host + 1); }

  // Rank h of a 2-rank job on host h: torchrun-style variables, the store on host 0's address,
  // Gloo on the veth (GLOO_SOCKET_IFNAME), run inside host h's namespace.
  std::vector<ChildSpec> job(const std::vector<std::string>& argv) const {
    const int port = hgpt::testing::free_tcp_port();
    auto specs = hgpt::testing::torchrun_specs(argv, 2, port, {kOneThread});
    for (int h = 0; h < 2; ++h) {
      for (auto& [name, value] : specs[h].env)
        if (name == "MASTER_ADDR") value = address(0);
      specs[h].env.push_back({"GLOO_SOCKET_IFNAME", link_[h]});
      specs[h].argv.insert(specs[h].argv.begin(), {"ip", "netns", "exec", ns_[h]});
    }
    return specs;
  }

  std::string ns_[2], link_[2];
  bool made_ = false;
};

TEST_F(TwoHosts, TwoRankJobMatchesOneProcess) {
  const fs::path one = reference_run("TM", Launch::kSingle);
  const fs::path out = fresh_dir("two_hosts");
  const auto res = hgpt::testing::run_processes(job(train_argv("TM", out)), kRunTimeout);
  for (int h = 0; h < 2; ++h) ASSERT_TRUE(res[h].ok()) << "host " << h << ": " << res[h].describe();
  EXPECT_TRUE(contains(res[0].output, "× 1 accumulation step(s) × 2 rank(s)")) << res[0].describe();
  const RunRecord m1 = read_metrics(tag_dir(one) / "metrics.jsonl");
  const RunRecord m2 = read_metrics(tag_dir(out) / "metrics.jsonl");
  expect_same_values(m1.loss, m2.loss, kDpTolerance, "training loss");
  EXPECT_LE(max_weight_diff(model_file(one, 4), model_file(out, 4)), kDpTolerance);
}

// Host 1's link goes down mid-run: both ranks (each still alive, neither able to reach the other)
// end within the timeout with one line each, and the newest checkpoint is a complete one.
TEST_F(TwoHosts, ALinkCutMidRunEndsEveryRankWithinTheTimeout) {
  const fs::path out = fresh_dir("two_hosts_cut");
  const auto argv = train_argv(
      "TM", out,
      {"--num_iterations=100000", "--save_every=2", "--eval_every=0", "--log_every=1000", "--dist_timeout_s=5"});
  const fs::path metrics = tag_dir(out) / "metrics.jsonl";
  auto specs = job(argv);
  // Rank 0 cuts host 1's link itself once step 3 is logged (after the step-2 checkpoint).
  const std::string cutter =
      "\"$@\" & pid=$!\n"
      "until grep -q '\"step\":3[,}]' \"$METRICS\" 2>/dev/null; do sleep 0.05; done\n"
      "ip -n " +
      ns_[1] + " link set " + link_[1] +
      " down; echo link-cut\n"
      "wait $pid\n";
  specs[0].argv.insert(specs[0].argv.begin() + 4, {"/bin/sh", "-c", cutter, "sh"});
  specs[0].env.push_back({"METRICS", metrics.string()});
  const auto start = std::chrono::steady_clock::now();
  const auto res = hgpt::testing::run_processes(specs, kRunTimeout);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(contains(res[0].output, "link-cut")) << res[0].describe();
  for (int h = 0; h < 2; ++h) {
    EXPECT_FALSE(res[h].timed_out) << "host " << h << ": " << res[h].describe();
    EXPECT_NE(res[h].exit_code, 0) << "host " << h << ": " << res[h].describe();
    EXPECT_TRUE(contains(res[h].output, "fatal: ")) << "host " << h << ": " << res[h].describe();
    EXPECT_FALSE(contains(res[h].output, "frame #")) << "host " << h << ": " << res[h].describe();
  }
  EXPECT_LT(seconds, 60) << "the ranks should end within a few timeouts of 5 s";
  for (int h = 0; h < 2; ++h) {
    const auto at = res[h].output.find("fatal: ");
    if (at != std::string::npos)
      std::printf("host %d: %s\n", h, res[h].output.substr(at, res[h].output.find('\n', at) - at).c_str());
  }
  std::printf("both ranks ended %.1f s after the start\n", seconds);
  const auto step = hgpt::train::latest_checkpoint(tag_dir(out).string());
  ASSERT_TRUE(step.has_value()) << "no complete checkpoint left";
  EXPECT_TRUE(fs::exists(model_file(out, *step)));
  for (int r = 0; r < 2; ++r) EXPECT_TRUE(fs::exists(tag_dir(out) / hgpt::train::optim_file_name(*step, r)));
}

// ------------------------------------------------------------------------------------------------
// Failures

// Rank 1 is SIGKILLed once rank 0 has logged a training step; rank 0 must stop with a non-zero exit
// and a message, well within its 20 s collective timeout plus slack. Shell wrappers record when the
// kill happened and when rank 0 ended (date +%s%N: one clock for both).
TEST(TrainerDist, KilledRankStopsTheOtherWithinTheBound) {
  const fs::path out = fresh_dir("killed");
  const auto argv =
      train_argv("TM", out, {"--num_iterations=100000", "--eval_every=0", "--save_every=0", "--log_every=1000"});
  const fs::path metrics = tag_dir(out) / "metrics.jsonl";
  const fs::path kill_time = out / "kill_time", end_time = out / "end_time";
  const char* killer =
      "\"$@\" & pid=$!\n"
      "until grep -q '\"loss\"' \"$METRICS\" 2>/dev/null; do\n"
      "  kill -0 $pid 2>/dev/null || { wait $pid; echo \"rank 1 ended early: $?\"; exit 99; }\n"
      "  sleep 0.05\n"
      "done\n"
      "sleep 0.3\n"
      "date +%s%N > \"$KILL_TIME\"\n"
      "kill -KILL $pid; wait $pid; echo \"rank 1 wait status $?\"\n";
  const char* timed = "\"$@\"; rc=$?; date +%s%N > \"$END_TIME\"; exit $rc\n";

  auto specs = two_rank_specs(
      argv, {{"METRICS", metrics.string()}, {"KILL_TIME", kill_time.string()}, {"END_TIME", end_time.string()}});
  specs[0].argv.insert(specs[0].argv.begin(), {"/bin/sh", "-c", timed, "sh"});
  specs[1].argv.insert(specs[1].argv.begin(), {"/bin/sh", "-c", killer, "sh"});
  const auto res = hgpt::testing::run_processes(specs, kRunTimeout);

  ASSERT_TRUE(contains(res[1].output, "rank 1 wait status 137")) << res[1].describe();
  EXPECT_FALSE(res[0].timed_out) << res[0].describe();
  EXPECT_EQ(res[0].term_signal, 0) << res[0].describe();
  EXPECT_NE(res[0].exit_code, 0) << res[0].describe();
  EXPECT_TRUE(contains(res[0].output, "fatal: ")) << res[0].describe();
  EXPECT_TRUE(contains(res[0].output, "failed on rank 0 of 2")) << res[0].describe();

  auto read_ns = [](const fs::path& p) {
    std::ifstream in(p);
    long long ns = 0;
    in >> ns;
    EXPECT_GT(ns, 0) << "no time in " << p;
    return ns;
  };
  const double survivor_s = (read_ns(end_time) - read_ns(kill_time)) * 1e-9;
  std::printf("rank 0 stopped %.2f s after rank 1 was killed\n", survivor_s);
  EXPECT_GE(survivor_s, 0.0);
  EXPECT_LT(survivor_s, 30.0) << res[0].describe();
}

// SIGINT to every rank (what Ctrl-C on a launcher does) once training runs: the ranks agree on the
// stop at a step boundary, each writes its part of one checkpoint at the same step, and all exit
// with 128 + SIGINT; the checkpoint is complete (meta written) and holds both ranks' optimizer files.
TEST(TrainerDist, SigintStopsEveryRankWithOneCompleteCheckpoint) {
  const fs::path out = fresh_dir("sigint");
  const auto argv =
      train_argv("TM", out, {"--num_iterations=100000", "--eval_every=0", "--save_every=0", "--log_every=1000"});
  const fs::path metrics = tag_dir(out) / "metrics.jsonl";
  const char* interrupter =
      "\"$@\" & pid=$!\n"
      "until grep -q '\"loss\"' \"$METRICS\" 2>/dev/null; do\n"
      "  kill -0 $pid 2>/dev/null || { wait $pid; echo \"ended early: $?\"; exit 99; }\n"
      "  sleep 0.05\n"
      "done\n"
      "kill -INT $pid; wait $pid; rc=$?; echo \"wait status $rc\"; exit $rc\n";
  auto specs = two_rank_specs(argv, {{"METRICS", metrics.string()}});
  for (auto& spec : specs) spec.argv.insert(spec.argv.begin(), {"/bin/sh", "-c", interrupter, "sh"});
  const auto res = hgpt::testing::run_processes(specs, kRunTimeout);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(res[r].exit_code, 128 + SIGINT) << "rank " << r << ": " << res[r].describe();
  }
  EXPECT_TRUE(contains(res[0].output, "interrupted at step")) << res[0].describe();
  EXPECT_TRUE(contains(res[0].output, "--resume=true")) << res[0].describe();
  const auto step = hgpt::train::latest_checkpoint(tag_dir(out).string());
  ASSERT_TRUE(step.has_value()) << "no complete checkpoint after SIGINT";
  EXPECT_GE(*step, 1);
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(fs::exists(tag_dir(out) / hgpt::train::optim_file_name(*step, r))) << "rank " << r << " optimizer file";
  }
  EXPECT_TRUE(fs::exists(tag_dir(out) / hgpt::train::model_file_name(*step)));
}

TEST(TrainerDist, DifferentConfigsStopEveryRankNamingTheKey) {
  const fs::path out = fresh_dir("config_mismatch");
  auto specs = two_rank_specs(train_argv("TM", out));
  specs[1].argv.push_back("--matrix_lr=0.03");  // the last override wins; tiny_cpu.json has 0.005
  const auto res = hgpt::testing::run_processes(specs, kRunTimeout);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(res[r].exit_code, 2) << "rank " << r << ": " << res[r].describe();
    EXPECT_TRUE(contains(res[r].output, "error: ")) << res[r].describe();
    EXPECT_TRUE(contains(res[r].output, "key 'matrix_lr' is 0.005 on rank 0 but 0.03 on rank 1")) << res[r].describe();
  }
  EXPECT_FALSE(fs::exists(tag_dir(out) / "metrics.jsonl")) << "no training before the check";
}

// ------------------------------------------------------------------------------------------------
// A rendezvous that cannot happen ends, and says why

// A port whose listener never accepts or answers (the kernel still completes the connections):
// rank 1 pointed at it exits within dist_timeout_s plus at most 5 s (within twice the timeout from
// 5 s on), naming the rendezvous.
TEST(TrainerDist, AMuteMasterPortEndsTheRankWithinTwiceTheTimeout) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);

  auto specs = hgpt::testing::torchrun_specs(train_argv("TM", fresh_dir("mute_port"), {"--dist_timeout_s=5"}), 2, port,
                                             {kOneThread});
  const auto start = std::chrono::steady_clock::now();
  const auto res = hgpt::testing::run_process(specs[1], 60s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ::close(listener);
  EXPECT_FALSE(res.timed_out) << res.describe();
  EXPECT_NE(res.exit_code, 0) << res.describe();
  EXPECT_LT(seconds, 2 * 5 + 4) << res.describe();  // twice the timeout, plus start-up on a slow machine
  EXPECT_TRUE(contains(res.output, "127.0.0.1:" + std::to_string(port))) << res.describe();
  EXPECT_TRUE(contains(res.output, "a program other than rank 0 may hold that port")) << res.describe();
}

// Nothing listens on MASTER_PORT: c10d's client retries until the timeout, logging each failed try
// with a C++ stack trace; the user sees one line instead, naming the address, the timeout and that
// nobody listens there.
TEST(TrainerDist, ANoOneAtTheMasterPortIsOneLineWithoutStackTraces) {
  const int port = hgpt::testing::free_tcp_port();
  auto specs = hgpt::testing::torchrun_specs(train_argv("TM", fresh_dir("closed_port"), {"--dist_timeout_s=3"}), 2,
                                             port, {kOneThread});
  const auto res = hgpt::testing::run_process(specs[1], 60s);
  EXPECT_NE(res.exit_code, 0) << res.describe();
  EXPECT_TRUE(contains(res.output,
                       "could not reach the rendezvous store at 127.0.0.1:" + std::to_string(port) + " within 3000 ms"))
      << res.describe();
  // Told apart from a port whose program is mute: nothing accepts the connection.
  EXPECT_TRUE(contains(res.output, "nobody is listening on that port")) << res.describe();
  EXPECT_FALSE(contains(res.output, "may hold that port")) << res.describe();
  EXPECT_FALSE(contains(res.output, "frame #")) << res.describe();
  EXPECT_FALSE(contains(res.output, "Exception raised from")) << res.describe();
  EXPECT_FALSE(contains(res.output, "[c10d]")) << res.describe();
}

TEST(TrainerDist, AMasterAddrThatDoesNotResolveSaysSo) {
  auto specs = hgpt::testing::torchrun_specs(train_argv("TM", fresh_dir("no_such_host"), {"--dist_timeout_s=2"}), 2,
                                             hgpt::testing::free_tcp_port(), {kOneThread});
  for (auto& [name, value] : specs[1].env)
    if (name == "MASTER_ADDR") value = "no-such-host.invalid";
  const auto res = hgpt::testing::run_process(specs[1], 60s);
  EXPECT_NE(res.exit_code, 0) << res.describe();
  EXPECT_TRUE(contains(res.output, "MASTER_ADDR 'no-such-host.invalid' does not resolve")) << res.describe();
  EXPECT_FALSE(contains(res.output, "frame #")) << res.describe();
}

}  // namespace
