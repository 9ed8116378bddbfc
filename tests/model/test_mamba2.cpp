// test_mamba2.cpp — the Mamba-2 mixer: mamba_ssm's parameter names, shapes and init, and its
// forward against a recomputation in float64 from plain ATen ops written from the published math
// (in_proj split z, x, B, C, dt; at::conv1d over x, B, C; SiLU; softplus(dt + dt_bias); the
// recurrence token by token; D·x; the grouped gated RMSNorm; out_proj) — an independent check of
// the wiring and of the chunked scan inside.
#include "hgpt/model/mamba2_block.h"

#include "tests/model/model_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>

namespace hgpt::model {
namespace {

at::Tensor randn(at::IntArrayRef size, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(size, gen, at::TensorOptions().dtype(at::kFloat));
}

// dim 64, N 16, d_conv 4, expand 2 (d_inner 128), headdim 16 (8 heads), 2 groups, chunk 8.
const Mamba2Shape kShape{64, 16, 4, 2, 16, 2, 8};

TEST(Mamba2Init, NamesShapesAndInitFollowMambaSsm) {
  at::manual_seed(3);
  Mamba2Mixer mixer(kShape);
  mixer->init_weights();
  const int64_t di = 128, H = 8, conv_dim = 128 + 2 * 2 * 16;
  std::map<std::string, std::vector<int64_t>> want = {{"in_proj.weight", {2 * di + 2 * 2 * 16 + H, 64}},
                                                      {"conv1d.weight", {conv_dim, 1, 4}},
                                                      {"conv1d.bias", {conv_dim}},
                                                      {"dt_bias", {H}},
                                                      {"A_log", {H}},
                                                      {"D", {H}},
                                                      {"norm.weight", {di}},
                                                      {"out_proj.weight", {64, di}}};
  const auto params = mixer->named_parameters();
  ASSERT_EQ(params.size(), want.size());
  for (const auto& item : params) {
    ASSERT_TRUE(want.count(item.key())) << item.key();
    EXPECT_EQ(item.value().sizes().vec(), want[item.key()]) << item.key();
    EXPECT_EQ(item.value().scalar_type(), at::kFloat) << item.key();
  }
  // dt = softplus(dt_bias) log-uniform in [1e-3, 1e-1]; A = −exp(A_log) in [−16, −1]; D = 1; norm 1.
  const auto dt = at::softplus(mixer->dt_bias.to(at::kDouble));
  EXPECT_GE(dt.min().item<double>(), 1e-3 * (1 - 1e-4));
  EXPECT_LE(dt.max().item<double>(), 1e-1 * (1 + 1e-4));
  EXPECT_GE(mixer->A_log.min().item<double>(), 0.0);
  EXPECT_LE(mixer->A_log.max().item<double>(), std::log(16.0) + 1e-6);
  EXPECT_GT(mixer->A_log.max().item<double>() - mixer->A_log.min().item<double>(), 0.1);  // drawn, not constant
  EXPECT_TRUE(at::equal(mixer->D, at::ones({H})));
  EXPECT_TRUE(at::equal(mixer->norm->weight, at::ones({di})));
  EXPECT_EQ(mixer->out_proj->weight.abs().max().item<float>(), 0.0f);
  EXPECT_GT(mixer->in_proj->weight.abs().max().item<float>(), 0.0f);
  EXPECT_FALSE(mixer->in_proj->bias.defined());
  EXPECT_FALSE(mixer->out_proj->bias.defined());
}

TEST(Mamba2Init, ALogIsLogUniformOneToSixteenAcrossManyHeads) {
  at::manual_seed(4);
  Mamba2Mixer mixer(Mamba2Shape{256, 16, 4, 2, 1, 1, 8});  // 512 heads of size 1
  mixer->init_weights();
  const auto A = at::exp(mixer->A_log.to(at::kDouble));  // U(1, 16): mean 8.5, sd 4.33
  EXPECT_NEAR(A.mean().item<double>(), 8.5, 0.6);
  EXPECT_GE(A.min().item<double>(), 1.0 - 1e-6);
  EXPECT_LE(A.max().item<double>(), 16.0 + 1e-5);
}

// The mixer from its parameters, in float64, following the Mamba-2 definition token by token.
at::Tensor recompute_mixer(Mamba2Mixer& m, const at::Tensor& hidden_f) {
  const auto& s = m->shape;
  const auto f64 = [](const at::Tensor& t) { return t.to(at::kDouble); };
  const auto hidden = f64(hidden_f);
  const int64_t batch = hidden.size(0), L = hidden.size(1), di = s.d_inner(), H = s.nheads(), P = s.headdim;
  const int64_t G = s.ngroups, N = s.d_state, cd = s.conv_dim();
  const auto zxbcdt = at::matmul(hidden, f64(m->in_proj->weight).t());
  const auto z = zxbcdt.narrow(2, 0, di);
  const auto xBC_in = zxbcdt.narrow(2, di, cd).transpose(1, 2);  // (B, conv_dim, L)
  const auto dt_raw = zxbcdt.narrow(2, di + cd, H);
  const auto conv = at::conv1d(xBC_in, f64(m->conv1d->weight), f64(m->conv1d->bias), {1}, {s.d_conv - 1}, {1}, cd);
  const auto xBC = at::silu(conv.narrow(2, 0, L)).transpose(1, 2);  // (B, L, conv_dim)
  const auto x = xBC.narrow(2, 0, di).reshape({batch, L, H, P});
  const auto Bm = xBC.narrow(2, di, G * N).reshape({batch, L, G, N});
  const auto Cm = xBC.narrow(2, di + G * N, G * N).reshape({batch, L, G, N});
  const auto dt = at::softplus(dt_raw + f64(m->dt_bias));  // (B, L, H)
  const auto A = -at::exp(f64(m->A_log));
  auto h = at::zeros({batch, H, P, N}, hidden.options());
  auto y = at::zeros({batch, L, H, P}, hidden.options());
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t head = 0; head < H; ++head) {
      const int64_t g = head / (H / G);
      const auto d = dt.select(1, t).select(1, head).view({batch, 1, 1});
      const auto xt = x.select(1, t).select(1, head);  // (B, P)
      const auto bt = Bm.select(1, t).select(1, g);    // (B, N)
      const auto ct = Cm.select(1, t).select(1, g);
      auto hh = h.select(1, head);
      hh.copy_(at::exp(d * A[head]) * hh + d * xt.unsqueeze(2) * bt.unsqueeze(1));
      y.select(1, t).select(1, head).copy_(at::matmul(hh, ct.unsqueeze(2)).squeeze(2) + f64(m->D)[head] * xt);
    }
  }
  // Gated RMSNorm per group of d_inner / ngroups channels, eps 1e-5.
  const auto gated = (y.reshape({batch, L, di}) * at::silu(z)).reshape({batch, L, G, di / G});
  const auto normed = (gated / at::sqrt(gated.square().mean(-1, true) + 1e-5)).reshape({batch, L, di});
  return at::matmul(normed * f64(m->norm->weight), f64(m->out_proj->weight).t());
}

// Every parameter moved off its structured init, so a swapped or dropped term shows.
void perturb(Mamba2Mixer& mixer) {
  at::NoGradGuard no_grad;
  mixer->out_proj->weight.normal_(0.0, 0.2);
  mixer->conv1d->bias.normal_(0.0, 0.3);
  mixer->D.normal_(1.0, 0.5);
  mixer->norm->weight.normal_(1.0, 0.3);
  mixer->dt_bias.add_(at::randn_like(mixer->dt_bias));  // larger steps: the state really decays
}

TEST(Mamba2Mixer, ForwardMatchesTheDefinitionInFloat64) {
  at::manual_seed(5);
  Mamba2Mixer mixer(kShape);
  mixer->init_weights();
  perturb(mixer);
  for (const int64_t L : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{9}, int64_t{29}}) {  // around chunk 8
    const auto hidden = randn({2, L, 64}, 6 + L);
    at::NoGradGuard no_grad;
    const auto out = mixer->forward(hidden);
    const auto expected = recompute_mixer(mixer, hidden);
    ASSERT_EQ(out.sizes(), hidden.sizes());
    EXPECT_GT(expected.abs().max().item<double>(), 1e-2);  // not a trivially zero comparison
    const double err = (out.to(at::kDouble) - expected).abs().max().item<double>();
    EXPECT_LT(err, 2e-5 * expected.abs().max().item<double>()) << "L=" << L;
  }
}

TEST(Mamba2Block, IsResidualOverNormedInputWithOptionalMlp) {
  at::manual_seed(9);
  Mamba2Block block(kShape, /*use_mlp=*/true);
  block->init_weights();
  {
    at::NoGradGuard no_grad;
    block->mixer->out_proj->weight.normal_(0.0, 0.2);
    block->mlp->c_proj->weight.normal_(0.0, 0.2);
  }
  const auto x = randn({2, 11, 64}, 10) * 2.0;
  at::NoGradGuard no_grad;
  const auto y = block->forward(x, {});
  auto norm = [](const at::Tensor& v) {
    return v / at::sqrt(v.square().mean(-1, true) + std::numeric_limits<float>::epsilon());
  };
  const auto h = x + block->mixer->forward(norm(x));
  const auto expected = h + block->mlp->forward(norm(h));
  EXPECT_TRUE(at::allclose(y, expected, 1e-4, 1e-5)) << (y - expected).abs().max().item<double>();
  EXPECT_EQ(block->kind(), '2');
}

// The small tensors the optimizers hand to AdamW are exactly the mixer's non-matrix parameters.
TEST(Mamba2Block, SmallParametersAreTheMixersNonMatrices) {
  Mamba2Block block(kShape, /*use_mlp=*/false);
  std::vector<std::string> small = block->small_parameters();
  std::sort(small.begin(), small.end());
  std::vector<std::string> expected = {"mixer.A_log",         "mixer.D",       "mixer.conv1d.bias",
                                       "mixer.conv1d.weight", "mixer.dt_bias", "mixer.norm.weight"};
  EXPECT_EQ(small, expected);
  for (const auto& name : small) EXPECT_NE(block->named_parameters().find(name), nullptr) << name;
}

}  // namespace
}  // namespace hgpt::model
