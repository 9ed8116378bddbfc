// test_nccl.cpp — the NCCL path on every GPU present: one process per GPU (world size = device
// count, so a single GPU still runs a real NCCL group of one) doing the ProcessGroup collectives
// against computed values, and base_train training on CUDA with that many ranks. Skips without CUDA.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>  // getpid

#include "hgpt/dist/process_group.h"
#include "tests/support/files.h"
#include "tests/support/spawn.h"

namespace {

namespace fs = std::filesystem;
using hgpt::testing::ChildResult;
using hgpt::testing::ChildSpec;
using hgpt::testing::remove_tree;
using namespace std::chrono_literals;

int cuda_devices() { return at::hasCUDA() ? static_cast<int>(at::detail::getCUDAHooks().deviceCount()) : 0; }

#define SKIP_WITHOUT_CUDA() \
  if (cuda_devices() < 1) GTEST_SKIP() << "no CUDA device: the NCCL path is checked on GPU machines"

// ------------------------------------------------------------------------------------------------
// Worker: runs only inside a process spawned by Nccl.CollectivesOnEveryGpu.

TEST(NcclWorker, Collectives) {
  if (!std::getenv("HGPT_TEST_WORKER")) GTEST_SKIP() << "runs only when spawned by Nccl.*";
  const auto env = hgpt::dist::detect_env();
  hgpt::dist::DistOptions opts;
  opts.timeout = 60s;
  opts.force_backend = true;  // a world of one still builds a real NCCL group
  auto pg = hgpt::dist::ProcessGroup::create(env, /*cuda=*/true, opts);
  ASSERT_STREQ(pg->backend_name(), "nccl");
  ASSERT_TRUE(pg->is_distributed());
  const int n = pg->world_size(), r = pg->rank();
  ASSERT_EQ(n, cuda_devices());
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(at::kCUDA, env.local_rank);

  // Sum over ranks of (r + 1) is n(n + 1)/2; small integers are exact in float.
  auto s = at::full({1000}, r + 1.0, f32);
  pg->all_reduce_sum_(s);
  EXPECT_TRUE(at::equal(s.cpu(), at::full({1000}, n * (n + 1) / 2.0)));

  // Mean over ranks of 2r is n − 1; of r (in double) is (n − 1)/2.
  std::vector<at::Tensor> ts{at::full({100, 7}, 2.0 * r, f32),
                             at::full({3}, static_cast<double>(r), f32.dtype(at::kDouble))};
  pg->all_reduce_mean_(ts);
  EXPECT_TRUE(at::allclose(ts[0].cpu(), at::full({100, 7}, n - 1.0)));
  EXPECT_TRUE(at::allclose(ts[1].cpu(), at::full({3}, (n - 1) / 2.0, at::kDouble)));
  EXPECT_DOUBLE_EQ(pg->all_reduce_sum(r + 1.0), n * (n + 1) / 2.0);

  auto b = at::full({5}, static_cast<double>(r), f32);
  pg->broadcast_(b, n - 1);
  EXPECT_TRUE(at::equal(b.cpu(), at::full({5}, n - 1.0)));
  pg->barrier();
}

// ------------------------------------------------------------------------------------------------

std::vector<ChildSpec> one_per_gpu(const std::vector<std::string>& argv, int n) {
  return hgpt::testing::torchrun_specs(argv, n, hgpt::testing::free_tcp_port(), {{"HGPT_TEST_WORKER", "1"}});
}

TEST(Nccl, CollectivesOnEveryGpu) {
  SKIP_WITHOUT_CUDA();
  const int n = cuda_devices();
  const auto res = hgpt::testing::run_processes(
      one_per_gpu({hgpt::testing::self_exe(), "--gtest_filter=NcclWorker.Collectives"}, n), 180s);
  for (int r = 0; r < n; ++r) {
    EXPECT_TRUE(res[r].ok()) << "rank " << r << ": " << res[r].describe();
    EXPECT_NE(res[r].output.find("[  PASSED  ] 1 test"), std::string::npos) << res[r].describe();
  }
}

// base_train on CUDA, one rank per GPU (NCCL when there are several): it finishes, reports the
// layout, logs 4 finite decreasing losses and writes the final model.
TEST(Nccl, BaseTrainOnEveryGpu) {
  SKIP_WITHOUT_CUDA();
  const int n = cuda_devices();
  const fs::path out = fs::temp_directory_path() / ("hgpt_nccl_train_" + std::to_string(::getpid()));
  remove_tree(out);
  const std::vector<std::string> argv = {std::string(HGPT_BUILD_DIR) + "/base_train",
                                         std::string(HGPT_SOURCE_DIR) + "/configs/tiny_cpu.json",
                                         "--device=cuda",
                                         "--depth=2",
                                         "--aspect_ratio=32",
                                         "--head_dim=32",
                                         "--max_seq_len=32",
                                         "--device_batch_size=4",
                                         "--total_batch_size=" + std::to_string(256 * n),
                                         "--num_iterations=4",
                                         "--eval_every=2",
                                         "--eval_tokens=256",
                                         "--sample_every=0",
                                         "--block_pattern=TM",
                                         "--dist_timeout_s=60",
                                         "--out_dir=" + out.string()};
  const auto res = hgpt::testing::run_processes(one_per_gpu(argv, n), 300s);
  for (int r = 0; r < n; ++r) ASSERT_TRUE(res[r].ok()) << "rank " << r << ": " << res[r].describe();
  const std::string& log = res[0].output;
  EXPECT_NE(log.find("device cuda:0"), std::string::npos) << log;
  EXPECT_NE(log.find("× 2 accumulation step(s) × " + std::to_string(n) + " rank(s)"), std::string::npos) << log;
  if (n > 1) EXPECT_NE(log.find("backend nccl"), std::string::npos) << log;

  std::map<int64_t, double> loss;
  std::ifstream in(out / "d2" / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) loss[j.at("step").get<int64_t>()] = j["loss"].get<double>();
  }
  ASSERT_EQ(loss.size(), 4u) << log;
  for (const auto& [step, v] : loss) EXPECT_TRUE(std::isfinite(v)) << "step " << step;
  EXPECT_LT(loss.at(4), loss.at(1) - 0.1) << "training on CUDA did not reduce the loss";
  EXPECT_TRUE(fs::exists(out / "d2" / "model_000004.pt"));
  remove_tree(out);
}

}  // namespace
