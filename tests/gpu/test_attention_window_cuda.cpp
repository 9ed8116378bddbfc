// test_attention_window_cuda.cpp — sliding-window attention on CUDA (scaled_dot_product_attention
// with the window's boolean mask) against the same layer on the CPU in fp32 (itself checked
// against an explicit-mask float64 attention in tests/model/test_transformer_block.cpp): the
// output and the gradients of the input and of every projection, in fp32 and under bf16
// autocast, with GQA, at a window inside the sequence and at one past it. Skips without CUDA.
#include "hgpt/model/transformer_block.h"
#include "hgpt/train/precision.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

namespace hgpt::model {
namespace {

// y, dx and the four weight gradients of Σ y·R, moved to the CPU in double.
std::vector<at::Tensor> forward_backward(CausalSelfAttention& attn, const at::Tensor& x_host, const at::Tensor& R,
                                         const at::Device& device, bool autocast) {
  attn->to(device);
  attn->zero_grad();
  const auto x = x_host.to(device).requires_grad_(true);
  at::Tensor y;
  {
    train::AutocastGuard guard(autocast);
    y = attn->forward(x, rotary_tables(x.size(1), attn->head_dim, device));
  }
  (y.to(at::kFloat) * R.to(device)).sum().backward();
  std::vector<at::Tensor> out = {y, x.grad()};
  for (auto* linear : {&attn->c_q, &attn->c_k, &attn->c_v, &attn->c_proj}) out.push_back((*linear)->weight.grad());
  for (auto& t : out) t = t.to(at::kCPU, at::kDouble);
  return out;
}

TEST(AttentionWindowCuda, MatchesTheCpuInFp32AndUnderBf16Autocast) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device: GPU test skipped (the CPU twin is Attention.SlidingWindow*)";
  const char* names[] = {"y", "dx", "dc_q", "dc_k", "dc_v", "dc_proj"};
  for (int64_t window : {64, 300}) {
    for (bool autocast : {false, true}) {
      SCOPED_TRACE("window " + std::to_string(window) + (autocast ? ", bf16 autocast" : ", fp32"));
      at::manual_seed(31);
      CausalSelfAttention attn(256, 4, 2, window);
      attn->init_weights();
      {
        at::NoGradGuard no_grad;
        attn->c_proj->weight.normal_(0.0, 0.05);
      }
      const auto x = at::randn({2, 256, 256});
      const auto R = at::randn({2, 256, 256});
      const auto want = forward_backward(attn, x, R, at::kCPU, /*autocast=*/false);
      const auto got = forward_backward(attn, x, R, at::Device(at::kCUDA, 0), autocast);
      const double bound = autocast ? 3e-2 : 1e-4;
      for (size_t i = 0; i < got.size(); ++i) {
        const double rel = ((got[i] - want[i]).abs().max() / want[i].abs().max()).item<double>();
        EXPECT_LE(rel, bound) << names[i];
      }
    }
  }
}

}  // namespace
}  // namespace hgpt::model
