// test_engine_cuda.cpp — the inference engine on CUDA under bf16 autocast (as training runs):
// prefill + one token at a time against the full forward of the same model under the same
// autocast, for T-only, M-only and mixed patterns (with windowed, attention-only and MLP-only layers); and greedy generation on the GPU against the
// CPU in fp32. bf16 bounds are loose (relative 3e-2 of the largest logit). Skips without CUDA.
#include "hgpt/infer/engine.h"
#include "hgpt/infer/generate.h"
#include "hgpt/ops/selective_scan.h"
#include "hgpt/train/precision.h"

#include "tests/model/model_test_util.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

namespace hgpt::infer {
namespace {

using model::test::make_model;
using model::test::perturb_zero_init;
using model::test::tiny_config;

at::Tensor random_tokens(int64_t batch, int64_t seq, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(vocab, {batch, seq}, gen, at::TensorOptions().dtype(at::kLong));
}

TEST(EngineCuda, DecodeEqualsFullForwardUnderBf16Autocast) {
  if (!ops::scan_cuda_available()) GTEST_SKIP() << "no CUDA device (or CUDA kernels not built): GPU test skipped";
  const at::Device cuda(at::kCUDA, 0);
  // Also sliding-window (window 5, so prompts and decode run past it), attention-only and
  // MLP-only layers.
  for (std::string pattern : {"TT", "MM", "TMMT", "S*-", "M-S*"}) {
    auto model = make_model(tiny_config({{"depth", pattern.size()},
                                         {"block_pattern", pattern},
                                         {"attn_window", 5},
                                         {"max_seq_len", 64},
                                         {"total_batch_size", 128}}));
    perturb_zero_init(model);
    model->to(cuda);
    Engine engine(model);
    for (int64_t prompt : {1, 3, 4, 40}) {
      const auto tokens = random_tokens(3, prompt + 6, model->config().vocab_size, prompt).to(cuda);
      train::AutocastGuard autocast(true);
      at::Tensor want;
      {
        at::NoGradGuard no_grad;
        want = model->forward(tokens).to(at::kCPU);
      }
      auto state = engine.new_state(tokens.size(1));
      std::vector<at::Tensor> got = {engine.forward(tokens.narrow(1, 0, prompt), state)};
      for (int64_t t = prompt; t < tokens.size(1); ++t) got.push_back(engine.forward(tokens.narrow(1, t, 1), state));
      const auto all = at::cat(got, 1).to(at::kCPU);
      const double rel = (all - want).abs().max().item<double>() / want.abs().max().item<double>();
      EXPECT_LE(rel, 3e-2) << pattern << ", prompt " << prompt;
    }
  }
}

TEST(EngineCuda, GreedyOnTheGpuFollowsTheCpu) {
  if (!ops::scan_cuda_available()) GTEST_SKIP() << "no CUDA device (or CUDA kernels not built): GPU test skipped";
  auto model = make_model(tiny_config({{"block_pattern", "TM"}, {"max_seq_len", 64}, {"total_batch_size", 128}}));
  perturb_zero_init(model, 0.5);
  Engine cpu_engine(model);
  GenerateOptions o;
  o.max_tokens = 8;
  o.sampling.temperature = 0;
  const std::vector<uint32_t> prompt = {5, 17, 3, 60, 2};
  const auto on_cpu = generate(cpu_engine, prompt, o);
  auto gpu_model = make_model(model->config());
  perturb_zero_init(gpu_model, 0.5);  // the same seeded weights
  gpu_model->to(at::Device(at::kCUDA, 0));
  Engine gpu_engine(gpu_model);
  const auto on_gpu = generate(gpu_engine, prompt, o);  // fp32 on the GPU: the same argmax
  EXPECT_EQ(on_gpu.tokens, on_cpu.tokens);
}

}  // namespace
}  // namespace hgpt::infer
