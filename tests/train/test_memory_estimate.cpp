// test_memory_estimate.cpp — the dry-run's memory estimate against the real peak of training on
// the CPU (fp32): tensor bytes live at the high-water mark over building the model and two
// optimizer steps of two micro-steps each, for a T-only, an M-only, an M2-only and hybrid configs (also with S, * and -
// layers), with and without activation checkpointing. The estimate must be within ±20% of the measured peak.
#include "hgpt/data/loader.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/model/sizes.h"
#include "hgpt/train/context.h"
#include "hgpt/train/optimizers.h"
#include "hgpt/train/peak_memory.h"
#include "hgpt/train/trainer.h"
#include "tests/train/train_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>

namespace hgpt::testing {
namespace {

struct MemoryCase {
  std::string pattern, checkpointing;
};

Config small_config(const MemoryCase& c) {
  nlohmann::json j = {{"depth", 4},
                      {"aspect_ratio", 64},
                      {"head_dim", 64},
                      {"vocab_size", 512},
                      {"max_seq_len", 128},
                      {"device_batch_size", 4},
                      {"total_batch_size", 1024},
                      {"block_pattern", c.pattern},
                      {"attn_window", 32},  // for S layers: a quarter of the sequence
                      {"activation_checkpointing", c.checkpointing},
                      {"device", "cpu"}};
  return config_from_json(j);
}

int64_t measured_peak(const Config& config) {
  auto pg = dist::ProcessGroup::create(dist::DistEnv{}, /*cuda=*/false);
  data::Loader loader(data::LoaderSpec{"synthetic", "train", config.train.device_batch_size, config.model.sequence_len,
                                       config.model.vocab_size, config.train.seed, 0, 1});
  const train::PeakMemory memory(at::kCPU);
  auto gpt = train::build_model(config, at::kCPU);
  auto optimizers = train::build_optimizers(gpt, config);
  const train::Context ctx{config, *pg, at::kCPU, /*autocast=*/false};
  const int64_t accum = grad_accum_steps(config, 1);
  for (int step = 0; step < 2; ++step) train::train_step(ctx, gpt, optimizers, loader, accum);
  return memory.peak_bytes();
}

class MemoryEstimate : public ::testing::TestWithParam<MemoryCase> {};

TEST_P(MemoryEstimate, WithinTwentyPercentOfTheMeasuredPeak) {
  const Config config = small_config(GetParam());
  ASSERT_EQ(grad_accum_steps(config, 1), 2);  // the estimate models a step whose gradients already exist
  const int64_t peak = measured_peak(config);
  const int64_t estimate = model::estimate_memory(config.model, config.train.device_batch_size, /*cuda=*/false).total();
  const double ratio = static_cast<double>(estimate) / static_cast<double>(peak);
  std::printf("%s, checkpointing %s: peak %.2f MiB, estimate %.2f MiB, ratio %.3f\n",
              config.model.block_pattern.c_str(), hgpt::to_string(config.model.activation_checkpointing),
              peak / 1048576.0, estimate / 1048576.0, ratio);
  EXPECT_GT(ratio, 0.8);
  EXPECT_LT(ratio, 1.2);
}

INSTANTIATE_TEST_SUITE_P(
    SmallConfigs, MemoryEstimate,
    ::testing::Values(MemoryCase{"TTTT", "none"}, MemoryCase{"MMMM", "none"}, MemoryCase{"TMTM", "none"},
                      MemoryCase{"TMTM", "all"}, MemoryCase{"2222", "none"}, MemoryCase{"T2M2", "none"},
                      MemoryCase{"2222", "mamba"}, MemoryCase{"S*-2", "none"}, MemoryCase{"S*-2", "transformer"}),
    [](const auto& info) { return pattern_test_name(info.param.pattern) + "_" + info.param.checkpointing; });

}  // namespace
}  // namespace hgpt::testing
