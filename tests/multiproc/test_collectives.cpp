// test_collectives.cpp — real 2-rank runs over Gloo on loopback. The `MultiProc.*` tests spawn this
// same executable twice (torchrun-style variables, or through mpirun) with --gtest_filter set to one
// `Worker.*` test; the workers skip themselves unless HGPT_TEST_WORKER is set. The failure bound for
// a dead or stuck peer is HGPT_TEST_FAILURE_BOUND_S seconds (default 20).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "hgpt/dist/process_group.h"
#include "hgpt/errors.h"
#include "tests/support/spawn.h"

namespace {

using hgpt::dist::DistError;
using hgpt::dist::DistOptions;
using hgpt::dist::ProcessGroup;
using hgpt::testing::ChildResult;
using hgpt::testing::ChildSpec;
using hgpt::testing::get_env_or;
using namespace std::chrono_literals;

int failure_bound_s() { return std::stoi(get_env_or("HGPT_TEST_FAILURE_BOUND_S", "20")); }

// ------------------------------------------------------------------------------------------------
// Workers (run only inside the spawned processes)

bool is_worker() { return std::getenv("HGPT_TEST_WORKER") != nullptr; }

#define SKIP_UNLESS_WORKER() \
  if (!is_worker()) GTEST_SKIP() << "runs only when spawned by a MultiProc test"

std::shared_ptr<ProcessGroup> worker_group(std::chrono::milliseconds timeout = 30000ms) {
  const auto env = hgpt::dist::detect_env();
  const std::string expect = get_env_or("HGPT_TEST_EXPECT_LAUNCHER", "torchrun");
  EXPECT_EQ(env.launcher, expect);
  EXPECT_EQ(env.world_size, 2);
  DistOptions opts;
  opts.timeout = timeout;
  opts.bucket_bytes = 64 << 10;  // small buckets: the test tensors span several
  return ProcessGroup::create(env, /*cuda=*/false, opts);
}

// The i-th test tensor on rank r: arange(n)·(r+1) + i, in a few shapes, dtypes and layouts.
std::vector<at::Tensor> mean_inputs(int r) {
  const std::vector<std::pair<std::vector<int64_t>, at::ScalarType>> shapes = {
      {{3}, at::kFloat},   {{1000}, at::kFloat}, {{70000}, at::kFloat},  // > bucket
      {{17}, at::kDouble}, {{0}, at::kFloat},    {{20, 30}, at::kFloat}};
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto& [shape, dtype] = shapes[i];
    int64_t n = 1;
    for (auto d : shape) n *= d;
    out.push_back((at::arange(n, dtype) * (r + 1) + static_cast<double>(i)).view(shape));
  }
  // A strided (transposed) view, by the same formula with i = shapes.size().
  const double i = static_cast<double>(shapes.size());
  out.push_back((at::arange(600, at::kFloat) * (r + 1) + i).view({30, 20}).t());
  return out;
}

TEST(Worker, Collectives) {
  SKIP_UNLESS_WORKER();
  auto pg = worker_group();
  ASSERT_TRUE(pg->is_distributed());
  ASSERT_STREQ(pg->backend_name(), "gloo");
  const int r = pg->rank();

  // Mean over ranks 0 and 1 of arange·(r+1) + i is arange·1.5 + i, computed here directly.
  auto tensors = mean_inputs(r);
  pg->all_reduce_mean_(tensors);
  const auto mine = mean_inputs(0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto base = (mine[i] - static_cast<double>(i));  // arange·1 in the same layout
    const auto expected = base * 1.5 + static_cast<double>(i);
    EXPECT_TRUE(at::allclose(tensors[i], expected)) << "tensor " << i;
    EXPECT_EQ(tensors[i].sizes(), mine[i].sizes());
  }

  auto s = at::full({4, 5}, static_cast<double>(r + 1));
  pg->all_reduce_sum_(s);
  EXPECT_TRUE(at::equal(s, at::full({4, 5}, 3.0)));
  EXPECT_DOUBLE_EQ(pg->all_reduce_sum(r + 0.5), 2.0);
  EXPECT_DOUBLE_EQ(pg->all_reduce_mean(r * 4.0), 2.0);

  // broadcast from rank 1: everyone ends with rank 1's random tensor (seed 11).
  at::manual_seed(r == 1 ? 11 : 99);
  auto b = at::randn({33, 3});
  pg->broadcast_(b, 1);
  at::manual_seed(11);
  EXPECT_TRUE(at::equal(b, at::randn({33, 3})));
  auto b0 = at::full({5}, static_cast<float>(r + 7));
  pg->broadcast_(b0, 0);
  EXPECT_TRUE(at::equal(b0, at::full({5}, 7.f)));
  pg->barrier();
}

TEST(Worker, ConfigCheck) {
  SKIP_UNLESS_WORKER();
  auto pg = worker_group();
  const bool differ = std::getenv("HGPT_TEST_CONFIG_DIFFERS") != nullptr;
  pg->check_same_config(R"({"depth": 4, "lr": 0.02})");  // identical on both ranks
  const std::string lr = differ && pg->rank() == 1 ? "0.03" : "0.02";
  try {
    pg->check_same_config(R"({"depth": 4, "block_pattern": "TM", "matrix_lr": )" + lr + "}");
    EXPECT_FALSE(differ) << "a differing config must throw on every rank";
  } catch (const hgpt::UserError& e) {
    std::printf("config mismatch: %s\n", e.what());
    EXPECT_TRUE(differ);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'matrix_lr' is 0.02 on rank 0 but 0.03 on rank 1"), std::string::npos) << msg;
  }
}

// Rank 1 dies (no cleanup, like a crash) while rank 0 is in a collective. Rank 0 must get a
// DistError within the bound although its timeout is the 60 s default.
TEST(Worker, PeerDies) {
  SKIP_UNLESS_WORKER();
  auto pg = worker_group(60000ms);
  auto t = at::ones({1000});
  pg->all_reduce_sum_(t);  // both ranks are connected
  if (pg->rank() == 1) {
    std::this_thread::sleep_for(300ms);  // let rank 0 enter the next collective first
    std::_Exit(3);
  }
  const auto start = std::chrono::steady_clock::now();
  try {
    for (int i = 0; i < 100; ++i) pg->all_reduce_sum_(t);
    FAIL() << "all_reduce with a dead peer did not fail";
  } catch (const DistError& e) {
    std::printf("rank 0 saw: %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("all_reduce failed on rank 0 of 2"), std::string::npos);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(failure_bound_s()));
}

// Rank 1 stays alive but never joins the collective: rank 0's wait must end at its timeout (3 s).
TEST(Worker, PeerStuck) {
  SKIP_UNLESS_WORKER();
  auto pg = worker_group(3000ms);
  auto t = at::ones({10});
  pg->all_reduce_sum_(t);
  if (pg->rank() == 1) {
    std::this_thread::sleep_for(8s);
    std::_Exit(0);
  }
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(pg->all_reduce_sum_(t), DistError);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(failure_bound_s()));
  std::_Exit(::testing::Test::HasFailure() ? 1 : 0);  // skip teardown while rank 1 is stuck
}

// World of 2 but rank 1 never starts: rank 0's rendezvous ends at the timeout with a clear error.
TEST(Worker, MissingRank) {
  SKIP_UNLESS_WORKER();
  try {
    worker_group(2000ms);
    FAIL() << "rendezvous without rank 1 did not fail";
  } catch (const DistError& e) {
    std::printf("rank 0 saw: %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("rendezvous store"), std::string::npos);
  }
}

// ------------------------------------------------------------------------------------------------
// Drivers

std::vector<std::string> worker_argv(const std::string& name) {
  return {hgpt::testing::self_exe(), "--gtest_filter=Worker." + name, "--gtest_color=no"};
}

std::vector<ChildResult> run_workers(const std::string& name, int world_size,
                                     std::vector<std::pair<std::string, std::string>> env = {}) {
  env.push_back({"HGPT_TEST_WORKER", "1"});
  const auto specs = hgpt::testing::torchrun_specs(worker_argv(name), world_size, hgpt::testing::free_tcp_port(), env);
  // Process start and library loading come on top of the failure bound.
  return hgpt::testing::run_processes(specs, std::chrono::seconds(failure_bound_s() + 40));
}

// The worker really ran (was not skipped or filtered away) and passed.
void expect_worker_passed(const ChildResult& r, int rank) {
  EXPECT_TRUE(r.ok()) << "rank " << rank << ": " << r.describe();
  EXPECT_NE(r.output.find("[  PASSED  ] 1 test"), std::string::npos) << "rank " << rank << ": " << r.describe();
}

TEST(MultiProc, CollectivesMatchReferences) {
  const auto res = run_workers("Collectives", 2);
  for (int r = 0; r < 2; ++r) expect_worker_passed(res[r], r);
}

TEST(MultiProc, SameConfigPasses) {
  const auto res = run_workers("ConfigCheck", 2);
  for (int r = 0; r < 2; ++r) expect_worker_passed(res[r], r);
}

TEST(MultiProc, DifferentConfigFailsOnEveryRankNamingTheKey) {
  const auto res = run_workers("ConfigCheck", 2, {{"HGPT_TEST_CONFIG_DIFFERS", "1"}});
  for (int r = 0; r < 2; ++r) {
    expect_worker_passed(res[r], r);  // the worker asserts that it threw with the key's name
    EXPECT_NE(res[r].output.find("config mismatch: ranks disagree"), std::string::npos) << res[r].describe();
  }
}

TEST(MultiProc, DeadPeerFailsTheOtherWithinTheBound) {
  const auto res = run_workers("PeerDies", 2);
  expect_worker_passed(res[0], 0);
  EXPECT_EQ(res[1].exit_code, 3) << res[1].describe();
}

TEST(MultiProc, StuckPeerFailsTheOtherAtTheTimeout) {
  const auto res = run_workers("PeerStuck", 2);
  EXPECT_TRUE(res[0].ok()) << res[0].describe();
  EXPECT_NE(res[0].output.find("[ RUN      ] Worker.PeerStuck"), std::string::npos);
  EXPECT_TRUE(res[1].ok()) << res[1].describe();
}

TEST(MultiProc, MissingRankFailsRendezvous) {
  auto specs = hgpt::testing::torchrun_specs(worker_argv("MissingRank"), 2, hgpt::testing::free_tcp_port(),
                                             {{"HGPT_TEST_WORKER", "1"}});
  specs.resize(1);  // only rank 0 starts
  const auto res = hgpt::testing::run_process(specs[0], std::chrono::seconds(failure_bound_s() + 40));
  expect_worker_passed(res, 0);
}

TEST(MultiProc, MpirunLaunch) {
  const std::string mpirun = hgpt::testing::find_in_path("mpirun");
  if (mpirun.empty()) GTEST_SKIP() << "mpirun not found in PATH (Debian: openmpi-bin)";
  const auto spec = hgpt::testing::mpirun_spec(mpirun, worker_argv("Collectives"), 2,
                                               {{"MASTER_ADDR", "127.0.0.1"},
                                                {"MASTER_PORT", std::to_string(hgpt::testing::free_tcp_port())},
                                                {"HGPT_TEST_WORKER", "1"},
                                                {"HGPT_TEST_EXPECT_LAUNCHER", "mpirun"}});
  const auto res = hgpt::testing::run_process(spec, std::chrono::seconds(failure_bound_s() + 60));
  EXPECT_TRUE(res.ok()) << res.describe();
  // Both ranks ran the worker test (each prints its own summary).
  size_t passes = 0;
  for (size_t pos = res.output.find("[  PASSED  ] 1 test"); pos != std::string::npos;
       pos = res.output.find("[  PASSED  ] 1 test", pos + 1)) {
    ++passes;
  }
  EXPECT_EQ(passes, 2u) << res.describe();
}

}  // namespace
