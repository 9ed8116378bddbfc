// test_mamba.cpp — the Mamba mixer: its own init (A_log, D, dt_proj, conv1d), and its forward
// against a recomputation from plain ATen ops (matmul, at::conv1d, softplus, SiLU gate, skip
// term) around the bare recurrence of selective_scan_reference — an independent check of the
// wiring (which half of in_proj is x, causal conv trimming, the x_proj split, where dt_proj's bias
// goes, the gate and D).
#include "hgpt/model/mamba_block.h"

#include "hgpt/ops/selective_scan.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace hgpt::model {
namespace {

at::Tensor randn(at::IntArrayRef size, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(size, gen, at::TensorOptions().dtype(at::kFloat));
}

TEST(MambaInit, ALogDAndDtProjFollowMamba) {
  // dim 128 → d_inner 256, dt_rank 8, N 16.
  const MambaShape shape{128, 16, 4, 2};
  at::manual_seed(3);
  MambaMixer mixer(shape);
  mixer->init_weights();
  const int64_t di = 256, N = 16, r = 8;
  ASSERT_EQ(mixer->A_log.sizes(), at::IntArrayRef({di, N}));
  EXPECT_EQ(mixer->A_log.scalar_type(), at::kFloat);
  for (int64_t n = 0; n < N; ++n) {
    const auto column = mixer->A_log.select(1, n);
    // log(n + 1) for every channel.
    EXPECT_NEAR(column.min().item<double>(), std::log(n + 1.0), 1e-6) << n;
    EXPECT_NEAR(column.max().item<double>(), std::log(n + 1.0), 1e-6) << n;
  }
  ASSERT_EQ(mixer->D.sizes(), at::IntArrayRef({di}));
  EXPECT_EQ(mixer->D.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(mixer->D, at::ones({di})));

  // dt_proj.bias = softplus⁻¹(dt), dt log-uniform in [1e-3, 1e-1] (clamped ≥ 1e-4).
  const auto dt = at::softplus(mixer->dt_proj->bias.to(at::kDouble));
  EXPECT_GE(dt.min().item<double>(), 1e-3 * (1 - 1e-4));
  EXPECT_LE(dt.max().item<double>(), 1e-1 * (1 + 1e-4));
  // log-uniform: the mean of log(dt) is near log(1e-2) (sd of the mean ≈ 0.08 for 256 draws).
  EXPECT_NEAR(at::log(dt).mean().item<double>(), std::log(1e-2), 0.4);
  EXPECT_LT(dt.min().item<double>(), 3e-3);
  EXPECT_GT(dt.max().item<double>(), 3e-2);

  // dt_proj.weight ~ U(±dt_rank^-0.5): bounded, with the uniform's std bound/sqrt(3).
  const double bound = 1.0 / std::sqrt(double(r));
  const auto w = mixer->dt_proj->weight.to(at::kDouble);
  EXPECT_LE(w.abs().max().item<double>(), bound);
  EXPECT_NEAR(w.std().item<double>(), bound / std::sqrt(3.0), 0.1 * bound / std::sqrt(3.0));

  // conv1d keeps PyTorch's default init: U(±1/sqrt(fan_in)), fan_in = d_conv (depthwise).
  const double conv_bound = 1.0 / std::sqrt(4.0);
  EXPECT_EQ(mixer->conv1d->weight.sizes(), at::IntArrayRef({di, 1, 4}));
  EXPECT_LE(mixer->conv1d->weight.abs().max().item<double>(), conv_bound);
  EXPECT_GT(mixer->conv1d->weight.abs().max().item<double>(), 0.5 * conv_bound);
  EXPECT_LE(mixer->conv1d->bias.abs().max().item<double>(), conv_bound);

  EXPECT_EQ(mixer->out_proj->weight.abs().max().item<float>(), 0.0f);
  EXPECT_FALSE(mixer->in_proj->bias.defined());
  EXPECT_FALSE(mixer->x_proj->bias.defined());
  EXPECT_FALSE(mixer->out_proj->bias.defined());
}

// The mixer recomputed step by step from its parameters.
at::Tensor recompute_mixer(MambaMixer& m, const at::Tensor& hidden) {
  const auto& s = m->shape;
  const int64_t L = hidden.size(1), di = s.d_inner(), r = s.dt_rank(), N = s.d_state;
  const auto xz = at::matmul(hidden, m->in_proj->weight.t());  // (B, L, 2·di): x first, then z
  const auto x_pre = xz.narrow(2, 0, di).transpose(1, 2);      // (B, di, L)
  const auto z = xz.narrow(2, di, di).transpose(1, 2);
  // Depthwise conv padded by d_conv − 1 on both sides; the first L outputs are the causal ones.
  const auto conv = at::conv1d(x_pre, m->conv1d->weight, m->conv1d->bias, /*stride=*/{1},
                               /*padding=*/{s.d_conv - 1}, /*dilation=*/{1}, /*groups=*/di);
  const auto u = at::silu(conv.narrow(2, 0, L));                            // (B, di, L)
  const auto x_dbl = at::matmul(u.transpose(1, 2), m->x_proj->weight.t());  // (B, L, r + 2N)
  const auto dt_low = x_dbl.narrow(2, 0, r);
  const auto Bm = x_dbl.narrow(2, r, N).transpose(1, 2).contiguous();
  const auto Cm = x_dbl.narrow(2, r + N, N).transpose(1, 2).contiguous();
  // dt_proj as a full Linear (bias included), then softplus: the step sizes Δ.
  const auto delta = at::softplus(at::matmul(dt_low, m->dt_proj->weight.t()) + m->dt_proj->bias)
                         .transpose(1, 2)
                         .contiguous();  // (B, di, L)
  ops::ScanInputs in;                    // the bare recurrence: no bias, no softplus, no D, no gate
  in.u = u.contiguous();
  in.delta = delta;
  in.A = -at::exp(m->A_log);
  in.B = Bm;
  in.C = Cm;
  const auto y = ops::selective_scan_reference(in).out;
  const auto gated = (y + m->D.view({di, 1}) * u) * at::silu(z);
  return at::matmul(gated.transpose(1, 2), m->out_proj->weight.t());
}

TEST(MambaMixer, ForwardMatchesARecomputationFromPlainOps) {
  const MambaShape shape{32, 8, 4, 2};  // d_inner 64, dt_rank 2
  at::manual_seed(5);
  MambaMixer mixer(shape);
  mixer->init_weights();
  {
    // Move every parameter off its structured init so a swapped or dropped term shows.
    at::NoGradGuard no_grad;
    mixer->out_proj->weight.normal_(0.0, 0.2);
    mixer->conv1d->bias.normal_(0.0, 0.3);
    mixer->D.uniform_(0.5, 1.5);
    mixer->A_log.add_(at::randn_like(mixer->A_log) * 0.1);
    mixer->dt_proj->bias.add_(at::randn_like(mixer->dt_proj->bias) * 0.5);
  }
  const auto hidden = randn({2, 13, 32}, 6);
  at::NoGradGuard no_grad;
  const auto out = mixer->forward(hidden);
  const auto expected = recompute_mixer(mixer, hidden);
  ASSERT_EQ(out.sizes(), hidden.sizes());
  EXPECT_GT(expected.abs().max().item<double>(), 1e-2);  // not a trivially zero comparison
  EXPECT_TRUE(at::allclose(out, expected, 1e-4, 1e-5)) << (out - expected).abs().max().item<double>();
}

TEST(MambaBlock, IsResidualOverNormedInputWithOptionalMlp) {
  const MambaShape shape{32, 8, 3, 2};
  at::manual_seed(9);
  MambaBlock block(shape, /*use_mlp=*/true);
  block->init_weights();
  {
    at::NoGradGuard no_grad;
    block->mixer->out_proj->weight.normal_(0.0, 0.2);
    block->mlp->c_proj->weight.normal_(0.0, 0.2);
  }
  const auto x = randn({2, 7, 32}, 10) * 2.0;
  at::NoGradGuard no_grad;
  const auto y = block->forward(x, {});
  auto norm = [](const at::Tensor& v) {
    return v / at::sqrt(v.square().mean(-1, true) + std::numeric_limits<float>::epsilon());
  };
  const auto h = x + block->mixer->forward(norm(x));
  const auto expected = h + block->mlp->forward(norm(h));
  EXPECT_TRUE(at::allclose(y, expected, 1e-4, 1e-5)) << (y - expected).abs().max().item<double>();
}

}  // namespace
}  // namespace hgpt::model
