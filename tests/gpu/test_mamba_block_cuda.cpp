// test_mamba_block_cuda.cpp — a whole MambaBlock (mixer + residual) forward and backward on CUDA
// against the same block on the CPU: the CUDA scan, the conv, the projections and autograd wired
// together. fp32 on both sides (tolerances of the scan's fp32 test), then bf16 autocast on CUDA
// against fp32 CPU (loose). Skips with a message without a CUDA device.
#include "hgpt/model/mamba_block.h"
#include "hgpt/ops/selective_scan.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>

namespace hgpt::model {
namespace {

struct BlockRun {
  at::Tensor out, input_grad;
  std::vector<std::pair<std::string, at::Tensor>> grads;
};

BlockRun run_block(MambaBlock& block, const at::Tensor& x_cpu, const at::Tensor& w_cpu, const at::Device& device,
                   bool autocast) {
  block->zero_grad();
  auto x = x_cpu.to(device).requires_grad_(true);
  at::Tensor out;
  {
    at::autocast::set_autocast_enabled(at::kCUDA, autocast);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    out = block->forward(x, {});
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
  }
  (out.to(at::kFloat) * w_cpu.to(device)).sum().backward();
  BlockRun r{out.detach().to(at::kCPU, at::kFloat), x.grad().to(at::kCPU, at::kFloat), {}};
  for (const auto& p : block->named_parameters()) r.grads.emplace_back(p.key(), p.value().grad().to(at::kCPU));
  return r;
}

void expect_close(const BlockRun& got, const BlockRun& want, double rtol, double atol) {
  EXPECT_TRUE(at::allclose(got.out, want.out, rtol, atol))
      << "output max diff " << (got.out - want.out).abs().max().item<double>();
  EXPECT_TRUE(at::allclose(got.input_grad, want.input_grad, rtol, atol))
      << "dx max diff " << (got.input_grad - want.input_grad).abs().max().item<double>();
  ASSERT_EQ(got.grads.size(), want.grads.size());
  for (size_t i = 0; i < got.grads.size(); ++i) {
    const auto& g = got.grads[i].second;
    const auto& e = want.grads[i].second;
    const double scale = std::max(1e-6, e.abs().max().item<double>());
    EXPECT_TRUE(at::allclose(g, e, rtol, atol * scale))
        << got.grads[i].first << " max diff " << (g - e).abs().max().item<double>() << " (scale " << scale << ")";
  }
}

TEST(MambaBlockCuda, ForwardBackwardMatchesCpu) {
  if (!ops::scan_cuda_available()) GTEST_SKIP() << "no CUDA device (or CUDA kernels not built): GPU test skipped";
  at::manual_seed(7);
  MambaShape shape{64, 16, 4, 2};
  MambaBlock cpu_block(shape, /*use_mlp=*/true);
  cpu_block->init_weights();
  {
    at::NoGradGuard no_grad;  // the zero-initialised projections would hide half the wiring
    for (auto& p : cpu_block->parameters()) {
      if (p.abs().max().item<double>() == 0.0) p.normal_(0.0, 0.02);
    }
  }
  MambaBlock cuda_block(shape, true);
  {
    at::NoGradGuard no_grad;
    auto src = cpu_block->named_parameters();
    for (auto& p : cuda_block->named_parameters()) p.value().copy_(src[p.key()]);
  }
  cuda_block->to(at::Device(at::kCUDA, 0));
  const auto x = at::randn({2, 77, 64});  // ragged length
  const auto w = at::randn({2, 77, 64});
  const auto want = run_block(cpu_block, x, w, at::kCPU, false);
  const auto got = run_block(cuda_block, x, w, at::Device(at::kCUDA, 0), false);
  expect_close(got, want, 6e-4, 2e-3);
  const auto got_bf16 = run_block(cuda_block, x, w, at::Device(at::kCUDA, 0), true);
  expect_close(got_bf16, want, 6e-2, 1e-1);
}

}  // namespace
}  // namespace hgpt::model
