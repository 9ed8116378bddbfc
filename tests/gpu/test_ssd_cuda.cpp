// test_ssd_cuda.cpp — Mamba-2's chunked scan on CUDA (the ATen-op form of the decay mask, cuBLAS
// for the products) against the same op in float64 on the CPU (itself checked against the
// token-by-token recurrence in tests/ops/test_ssd.cpp): fp32 and bf16 inputs, gradients, the
// production shape of a Mamba-2 d20 layer; and a whole Mamba2Block under bf16 autocast against
// fp32 on the CPU. Skips with a message without a CUDA device.
#include "hgpt/model/mamba2_block.h"
#include "hgpt/ops/ssd.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <vector>

namespace hgpt::ops {
namespace {

bool have_cuda() { return at::hasCUDA(); }

struct Shape {
  int64_t batch, L, heads, headdim, groups, dstate, Q;
};

SsdInputs make_inputs(const Shape& s) {
  SsdInputs in;
  in.x = at::randn({s.batch, s.L, s.heads, s.headdim});
  in.dt = at::softplus(at::randn({s.batch, s.L, s.heads}) - 1.0);
  in.A = -at::exp(at::rand({s.heads}) * 2.77);
  in.B = at::randn({s.batch, s.L, s.groups, s.dstate});
  in.C = at::randn({s.batch, s.L, s.groups, s.dstate});
  in.initial_state = at::randn({s.batch, s.heads, s.headdim, s.dstate});
  in.chunk_size = s.Q;
  return in;
}

// Outputs and gradients (x, dt, A, B, C, initial_state) of Σ y·Ry + Σ final.
std::vector<at::Tensor> run(const SsdInputs& host, const at::Device& device, at::ScalarType dtype,
                            const at::Tensor& Ry) {
  SsdInputs in = host;
  in.x = host.x.to(device, dtype).requires_grad_(true);
  in.B = host.B.to(device, dtype).requires_grad_(true);
  in.C = host.C.to(device, dtype).requires_grad_(true);
  const auto real = dtype == at::kDouble ? at::kDouble : at::kFloat;
  in.dt = host.dt.to(device, real).requires_grad_(true);
  in.A = host.A.to(device, real).requires_grad_(true);
  in.initial_state = host.initial_state.to(device, real).requires_grad_(true);
  if (host.reset.defined()) in.reset = host.reset.to(device);
  const auto out = ssd(in);
  const auto loss = (out.y.to(real) * Ry.to(device, real)).sum() + out.final_state.sum();
  auto grads = torch::autograd::grad({loss}, {in.x, in.dt, in.A, in.B, in.C, in.initial_state});
  std::vector<at::Tensor> all{out.y, out.final_state};
  all.insert(all.end(), grads.begin(), grads.end());
  for (auto& t : all) t = t.to(at::kCPU, at::kDouble);
  return all;
}

void expect_close(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want, double rel) {
  const char* names[] = {"y", "final_state", "dx", "ddt", "dA", "dB", "dC", "dinitial_state"};
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = ((got[i] - want[i]).abs().max() / want[i].abs().max().clamp_min(1e-30)).item<double>();
    EXPECT_LT(err, rel) << names[i];
  }
}

TEST(SsdCuda, MatchesTheCpuInFloat64) {
  if (!have_cuda()) GTEST_SKIP() << "no CUDA device: GPU test skipped (its CPU twin is tests/ops/test_ssd.cpp)";
  at::manual_seed(1);
  for (const Shape s : {Shape{2, 300, 6, 16, 2, 32, 64}, Shape{1, 77, 4, 64, 1, 128, 256}}) {
    const auto in = make_inputs(s);
    const auto Ry = at::randn({s.batch, s.L, s.heads, s.headdim});
    const auto want = run(in, at::kCPU, at::kDouble, Ry);
    expect_close(run(in, at::kCUDA, at::kFloat, Ry), want, 1e-4);
    expect_close(run(in, at::kCUDA, at::kBFloat16, Ry), want, 5e-2);
  }
}

// Document resets (the decay masks) on the GPU against the CPU in float64, whose own oracle is
// the restarting recurrence (Ssd.DocumentResetsFollowTheRestartingRecurrence).
TEST(SsdCuda, DocumentResetsMatchTheCpuInFloat64) {
  if (!have_cuda()) GTEST_SKIP() << "no CUDA device: GPU test skipped (its CPU twin is tests/ops/test_ssd.cpp)";
  at::manual_seed(2);
  const Shape s{2, 300, 6, 16, 2, 32, 64};
  auto in = make_inputs(s);
  in.reset = at::rand({s.batch, s.L}) < 0.05;
  for (int64_t edge = s.Q; edge < s.L; edge += s.Q) {
    in.reset.select(1, edge - 1).fill_(true);
    in.reset.select(1, edge).fill_(true);
  }
  const auto Ry = at::randn({s.batch, s.L, s.heads, s.headdim});
  const auto want = run(in, at::kCPU, at::kDouble, Ry);
  expect_close(run(in, at::kCUDA, at::kFloat, Ry), want, 1e-4);
  expect_close(run(in, at::kCUDA, at::kBFloat16, Ry), want, 5e-2);
}

// The shape of a Mamba-2 d20 layer's scan (d_inner 2560 = 40 heads of 64 at batch 4 in the
// issue's check: 80 heads), L 2048, N 128, in bf16 as under autocast.
TEST(SsdCuda, ProductionShapeMatchesTheCpu) {
  if (!have_cuda()) GTEST_SKIP() << "no CUDA device: GPU test skipped (its CPU twin is tests/ops/test_ssd.cpp)";
  at::manual_seed(2);
  const Shape s{4, 2048, 80, 64, 1, 128, 256};
  const auto in = make_inputs(s);
  const auto Ry = at::randn({s.batch, s.L, s.heads, s.headdim});
  const auto want = run(in, at::kCPU, at::kFloat, Ry);
  expect_close(run(in, at::kCUDA, at::kFloat, Ry), want, 2e-4);
  expect_close(run(in, at::kCUDA, at::kBFloat16, Ry), want, 5e-2);
}

}  // namespace
}  // namespace hgpt::ops

namespace hgpt::model {
namespace {

TEST(Mamba2BlockCuda, AutocastForwardBackwardFollowsTheCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device: GPU test skipped (its CPU twin is tests/model/test_mamba2.cpp)";
  at::manual_seed(7);
  const Mamba2Shape shape{64, 32, 4, 2, 16, 2, 32};
  Mamba2Block cpu_block(shape, /*use_mlp=*/false);
  cpu_block->init_weights();
  {
    at::NoGradGuard no_grad;
    cpu_block->mixer->out_proj->weight.normal_(0.0, 0.02);
  }
  Mamba2Block cuda_block(shape, false);
  {
    at::NoGradGuard no_grad;
    auto src = cpu_block->named_parameters();
    for (auto& p : cuda_block->named_parameters()) p.value().copy_(src[p.key()]);
  }
  cuda_block->to(at::Device(at::kCUDA, 0));
  const auto x = at::randn({2, 77, 64}), w = at::randn({2, 77, 64});
  auto run_block = [&](Mamba2Block& block, const at::Device& device, bool autocast) {
    block->zero_grad();
    auto xd = x.to(device).requires_grad_(true);
    at::autocast::set_autocast_enabled(at::kCUDA, autocast);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    const auto out = block->forward(xd, {});
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
    (out.to(at::kFloat) * w.to(device)).sum().backward();
    return std::vector<at::Tensor>{out.detach().to(at::kCPU, at::kFloat), xd.grad().to(at::kCPU, at::kFloat)};
  };
  const auto want = run_block(cpu_block, at::kCPU, false);
  for (const bool autocast : {false, true}) {
    const auto got = run_block(cuda_block, at::Device(at::kCUDA, 0), autocast);
    const double tol = autocast ? 5e-2 : 1e-4;
    for (size_t i = 0; i < got.size(); ++i) {
      const double err = ((got[i] - want[i]).abs().max() / want[i].abs().max()).item<double>();
      EXPECT_LT(err, tol) << (i == 0 ? "output" : "dx") << (autocast ? " (bf16 autocast)" : " (fp32)");
    }
  }
}

}  // namespace
}  // namespace hgpt::model
