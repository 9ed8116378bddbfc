// test_process_group.cpp — one-process behaviour of ProcessGroup: the no-op group (world of 1) and a
// real one-rank Gloo group (force_backend) leave every tensor as it was, the config comparison
// names the first differing key, and NCCL on one GPU when CUDA is present.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hgpt/dist/process_group.h"
#include "hgpt/errors.h"
#include "tests/support/spawn.h"

namespace {

using hgpt::dist::describe_config_mismatch;
using hgpt::dist::DistEnv;
using hgpt::dist::DistOptions;
using hgpt::dist::ProcessGroup;

std::vector<at::Tensor> sample_tensors() {
  at::manual_seed(7);
  return {at::randn({3}), at::randn({40, 50}), at::randn({6, 4}).t(),  // the last is strided
          at::randn({5}, at::kDouble)};
}

// With one rank, sum, mean, broadcast, reduce-scatter and all-gather are all the identity.
void expect_identities(ProcessGroup& pg) {
  auto tensors = sample_tensors();
  std::vector<at::Tensor> before;
  for (const auto& t : tensors) before.push_back(t.clone());
  pg.all_reduce_mean_(tensors);
  for (size_t i = 0; i < tensors.size(); ++i) EXPECT_TRUE(at::equal(tensors[i], before[i])) << i;

  auto t = at::randn({7, 3});
  auto ref = t.clone();
  pg.all_reduce_sum_(t);
  EXPECT_TRUE(at::equal(t, ref));
  pg.broadcast_(t, 0);
  EXPECT_TRUE(at::equal(t, ref));
  EXPECT_DOUBLE_EQ(pg.all_reduce_sum(2.5), 2.5);
  EXPECT_DOUBLE_EQ(pg.all_reduce_mean(-1.25), -1.25);
  pg.barrier();
  EXPECT_NO_THROW(pg.check_same_config(R"({"depth": 4, "lr": 0.02})"));
  EXPECT_THROW(pg.broadcast_(t, 1), c10::Error);  // root outside the world
}

TEST(ProcessGroupSingle, NoOpGroup) {
  auto pg = ProcessGroup::create(DistEnv{}, /*cuda=*/false);
  EXPECT_FALSE(pg->is_distributed());
  EXPECT_STREQ(pg->backend_name(), "none");
  EXPECT_EQ(pg->rank(), 0);
  EXPECT_EQ(pg->world_size(), 1);
  expect_identities(*pg);
}

TEST(ProcessGroupSingle, RealGlooGroupOfOne) {
  DistEnv env;
  env.master_port = hgpt::testing::free_tcp_port();
  DistOptions opts;
  opts.force_backend = true;
  opts.timeout = std::chrono::milliseconds(10000);
  opts.bucket_bytes = 1024;  // several buckets for sample_tensors()
  auto pg = ProcessGroup::create(env, /*cuda=*/false, opts);
  EXPECT_TRUE(pg->is_distributed());
  EXPECT_STREQ(pg->backend_name(), "gloo");
  expect_identities(*pg);
  // A CUDA tensor handed to a CPU group is a caller bug, reported as such.
  if (at::hasCUDA()) {
    auto g = at::ones({2}, at::kCUDA);
    EXPECT_THROW(pg->all_reduce_sum_(g), c10::Error);
  }
}

TEST(ProcessGroupSingle, NcclGroupOfOne) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device: the NCCL path is checked on GPU machines";
  DistEnv env;
  env.master_port = hgpt::testing::free_tcp_port();
  DistOptions opts;
  opts.force_backend = true;
  auto pg = ProcessGroup::create(env, /*cuda=*/true, opts);
  EXPECT_STREQ(pg->backend_name(), "nccl");
  auto t = at::randn({1000}, at::kCUDA);
  auto ref = t.clone();
  pg->all_reduce_sum_(t);
  EXPECT_TRUE(at::equal(t, ref));
  std::vector<at::Tensor> ts{at::randn({100, 7}, at::kCUDA), at::randn({3}, at::kCUDA)};
  std::vector<at::Tensor> before{ts[0].clone(), ts[1].clone()};
  pg->all_reduce_mean_(ts);
  EXPECT_TRUE(at::equal(ts[0], before[0]));
  EXPECT_TRUE(at::equal(ts[1], before[1]));
  EXPECT_DOUBLE_EQ(pg->all_reduce_sum(3.0), 3.0);
  pg->barrier();
  pg->check_same_config(R"({"a": 1})");
}

TEST(ConfigMismatch, EqualConfigsAgree) {
  const std::string c = R"({"depth": 4, "block_pattern": "TM", "lr": 0.02})";
  // Key order in the text does not matter, only keys and values.
  EXPECT_EQ(describe_config_mismatch({c, R"({"lr": 0.02, "depth": 4, "block_pattern": "TM"})"}), "");
  EXPECT_EQ(describe_config_mismatch({c}), "");
}

TEST(ConfigMismatch, NamesFirstDifferingKeyAndBothValues) {
  const std::string msg =
      describe_config_mismatch({R"({"depth": 4, "lr": 0.02, "seed": 1})", R"({"depth": 4, "lr": 0.02, "seed": 1})",
                                R"({"depth": 4, "lr": 0.03, "seed": 2})"});
  EXPECT_NE(msg.find("'lr'"), std::string::npos) << msg;  // "lr" sorts before "seed"
  EXPECT_NE(msg.find("0.02 on rank 0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0.03 on rank 2"), std::string::npos) << msg;
}

TEST(ConfigMismatch, MissingKeyIsADifference) {
  const std::string msg = describe_config_mismatch({R"({"a": 1})", R"({"a": 1, "mamba_d_state": 16})"});
  EXPECT_NE(msg.find("'mamba_d_state' is (missing) on rank 0 but 16 on rank 1"), std::string::npos) << msg;
}

TEST(ConfigMismatch, NotAnObjectIsABug) { EXPECT_THROW(describe_config_mismatch({"[1, 2]", "{}"}), c10::Error); }

}  // namespace
