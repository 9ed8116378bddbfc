// test_layers.cpp — the shared pieces against hand-computed values: rotary tables and the
// half-split rotation, RMSNorm, the generic Linear init's standard deviation, the MLP, and the
// model-level init facts of the Transformer side (zeroed projections, embedding N(0, 1)).
#include "hgpt/model/layers.h"

#include "tests/model/model_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace hgpt::model {
namespace {

using test::make_model;
using test::tiny_config;

at::Tensor randn(at::IntArrayRef size, uint64_t seed, at::ScalarType dtype = at::kFloat) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(size, gen, at::TensorOptions().dtype(at::kDouble)).to(dtype);
}

TEST(Rotary, TablesAreCosSinOfPositionTimesInverseFrequency) {
  const int64_t seq = 6, hd = 8;
  const auto r = rotary_tables(seq, hd, at::kCPU);
  ASSERT_EQ(r.cos.sizes(), at::IntArrayRef({1, seq, 1, hd / 2}));
  ASSERT_EQ(r.sin.sizes(), at::IntArrayRef({1, seq, 1, hd / 2}));
  for (int64_t t = 0; t < seq; ++t) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double angle = t * std::pow(10000.0, -2.0 * i / hd);
      EXPECT_NEAR(r.cos[0][t][0][i].item<double>(), std::cos(angle), 1e-6);
      EXPECT_NEAR(r.sin[0][t][0][i].item<double>(), std::sin(angle), 1e-6);
    }
  }
}

TEST(Rotary, HalfSplitRotationOnAHandCase) {
  // head_dim 4: inverse frequencies 1 and 10000^(−1/2) = 0.01. One head, positions 0 and 1.
  const auto r = rotary_tables(2, 4, at::kCPU);
  auto x = at::tensor({1.0f, 2.0f, 3.0f, 4.0f, 1.0f, 2.0f, 3.0f, 4.0f}).view({1, 2, 1, 4});
  const auto y = apply_rotary(x, r);
  // Position 0: angle 0, unchanged.
  for (int64_t i = 0; i < 4; ++i) EXPECT_NEAR(y[0][0][0][i].item<double>(), 1.0 + i, 1e-6);
  // Position 1: pairs (x1, x2) = (1, 3) at angle 1 and (2, 4) at angle 0.01;
  // y1 = x1·cos + x2·sin, y2 = −x1·sin + x2·cos.
  const double c1 = std::cos(1.0), s1 = std::sin(1.0), c2 = std::cos(0.01), s2 = std::sin(0.01);
  EXPECT_NEAR(y[0][1][0][0].item<double>(), 1 * c1 + 3 * s1, 1e-6);
  EXPECT_NEAR(y[0][1][0][1].item<double>(), 2 * c2 + 4 * s2, 1e-6);
  EXPECT_NEAR(y[0][1][0][2].item<double>(), -1 * s1 + 3 * c1, 1e-6);
  EXPECT_NEAR(y[0][1][0][3].item<double>(), -2 * s2 + 4 * c2, 1e-6);
}

TEST(Rotary, PreservesPerPairNormsAndMakesScoresRelative) {
  const int64_t B = 2, T = 12, H = 3, D = 16, half = D / 2;
  const auto r = rotary_tables(T, D, at::kCPU);
  const auto x = randn({B, T, H, D}, 1), y = apply_rotary(x, r);
  ASSERT_EQ(y.sizes(), x.sizes());
  auto pair_norms = [&](const at::Tensor& v) {
    return v.narrow(-1, 0, half).square() + v.narrow(-1, half, half).square();
  };
  EXPECT_TRUE(at::allclose(pair_norms(y), pair_norms(x), 1e-5, 1e-5));
  // <rot(q, t1), rot(k, t2)> depends on t1 − t2 only: the same q and k at positions (5, 2) and (9, 6).
  const auto q = randn({D}, 2), k = randn({D}, 3);
  auto at_pos = [&](const at::Tensor& v, int64_t t) {
    auto seq = at::zeros({1, T, 1, D});
    seq.select(1, t).select(1, 0).copy_(v);
    return apply_rotary(seq, r).select(1, t).view({D});
  };
  const double s1 = at_pos(q, 5).dot(at_pos(k, 2)).item<double>();
  const double s2 = at_pos(q, 9).dot(at_pos(k, 6)).item<double>();
  const double s3 = at_pos(q, 9).dot(at_pos(k, 2)).item<double>();
  EXPECT_NEAR(s1, s2, 1e-4);
  EXPECT_GT(std::abs(s1 - s3), 1e-3);  // a different offset gives a different score
}

TEST(RmsNorm, UnitMeanSquareAndTheFormula) {
  const auto x = randn({4, 5, 48}, 4) * 3.0 + 0.7;
  const auto y = rms_norm(x);
  ASSERT_EQ(y.sizes(), x.sizes());
  const auto ms = y.to(at::kDouble).square().mean(-1);
  EXPECT_TRUE(at::allclose(ms, at::ones_like(ms), 1e-5, 1e-5)) << ms;
  const auto xd = x.to(at::kDouble);
  const double eps = std::numeric_limits<float>::epsilon();
  const auto expected = xd / at::sqrt(xd.square().mean(-1, true) + eps);
  EXPECT_TRUE(at::allclose(y.to(at::kDouble), expected, 1e-5, 1e-6));
  // No learnable scale, and eps is fp32's machine epsilon: a constant 1e-2 row maps to
  // 1e-2 / sqrt(1e-4 + eps) ≈ 0.99940 (eps = 1e-5 or 1e-6 would give 0.95 or 0.995).
  const auto small = rms_norm(at::full({1, 8}, 1e-2f));
  EXPECT_NEAR(small[0][0].item<double>(), 1e-2 / std::sqrt(1e-4 + eps), 1e-6);
}

double std_of(const at::Tensor& t) { return t.to(at::kDouble).std().item<double>(); }

TEST(GenericInit, LinearStdIsInverseSqrtFanInTimesAspectFactor) {
  at::manual_seed(7);
  // Wide output (fan_out > fan_in): std = 1/sqrt(fan_in).
  auto wide = linear_no_bias(64, 256);
  init_linear_generic(wide);
  EXPECT_NEAR(std_of(wide->weight), 1.0 / 8.0, 0.03 / 8.0);
  // Narrow output: std = 1/sqrt(fan_in) · sqrt(fan_out/fan_in) = 1/sqrt(256) · 1/2.
  auto narrow = linear_no_bias(256, 64);
  init_linear_generic(narrow);
  EXPECT_NEAR(std_of(narrow->weight), 1.0 / 32.0, 0.03 / 32.0);
  EXPECT_NEAR(narrow->weight.to(at::kDouble).mean().item<double>(), 0.0, 0.002);
  EXPECT_FALSE(narrow->bias.defined());
  init_zero(narrow);
  EXPECT_EQ(narrow->weight.abs().max().item<float>(), 0.0f);
}

TEST(Mlp, IsReluSquaredBetweenTwoProjections) {
  at::manual_seed(8);
  MLP mlp(16);
  mlp->init_weights();
  EXPECT_EQ(mlp->c_fc->weight.sizes(), at::IntArrayRef({64, 16}));
  EXPECT_EQ(mlp->c_proj->weight.abs().max().item<float>(), 0.0f);  // zero output projection
  {
    at::NoGradGuard no_grad;
    mlp->c_proj->weight.normal_(0.0, 0.2);
  }
  const auto x = randn({3, 5, 16}, 9);
  at::NoGradGuard no_grad;
  const auto h = at::matmul(x.to(at::kDouble), mlp->c_fc->weight.to(at::kDouble).t());
  const auto expected = at::matmul(at::clamp_min(h, 0).square(), mlp->c_proj->weight.to(at::kDouble).t());
  EXPECT_TRUE(at::allclose(mlp->forward(x).to(at::kDouble), expected, 1e-4, 1e-5));
}

TEST(ModelInit, ZeroedProjectionsUnitEmbeddingAndGenericAttention) {
  // dim 128 (4 heads of 32), vocab 300: large enough for sampling tolerances of a few percent.
  const auto c = tiny_config({{"depth", 2},
                              {"aspect_ratio", 64},
                              {"head_dim", 32},
                              {"vocab_size", 300},
                              {"block_pattern", "TM"},
                              {"mamba_use_mlp", true}});
  auto model = make_model(c);
  auto params = model->named_parameters();
  for (const char* name : {"lm_head.weight", "transformer.h.0.attn.c_proj.weight", "transformer.h.0.mlp.c_proj.weight",
                           "transformer.h.1.mixer.out_proj.weight", "transformer.h.1.mlp.c_proj.weight"}) {
    EXPECT_EQ(params[name].abs().max().item<float>(), 0.0f) << name;
  }
  const auto wte = params["transformer.wte.weight"];
  EXPECT_NEAR(std_of(wte), 1.0, 0.03);
  EXPECT_NEAR(wte.to(at::kDouble).mean().item<double>(), 0.0, 0.03);
  // 128 → 128: std 1/sqrt(128); c_fc 128 → 512: std 1/sqrt(128).
  const double s = 1.0 / std::sqrt(128.0);
  for (const char* name :
       {"transformer.h.0.attn.c_q.weight", "transformer.h.0.attn.c_k.weight", "transformer.h.0.attn.c_v.weight",
        "transformer.h.0.mlp.c_fc.weight", "transformer.h.1.mlp.c_fc.weight", "transformer.h.1.mixer.in_proj.weight"}) {
    EXPECT_NEAR(std_of(params[name]), s, 0.05 * s) << name;
  }
  // x_proj 256 → dt_rank 8 + 2·16 = 40: std = 1/16 · sqrt(40/256).
  const double sx = 1.0 / 16.0 * std::sqrt(40.0 / 256.0);
  EXPECT_NEAR(std_of(params["transformer.h.1.mixer.x_proj.weight"]), sx, 0.05 * sx);
}

TEST(ModelInit, SameSeedSameWeights) {
  const auto c = tiny_config({{"block_pattern", "TM"}});
  auto a = make_model(c, 99), b = make_model(c, 99), other = make_model(c, 100);
  auto pa = a->named_parameters(), pb = b->named_parameters(), po = other->named_parameters();
  for (const auto& item : pa) EXPECT_TRUE(at::equal(item.value(), pb[item.key()])) << item.key();
  EXPECT_FALSE(at::equal(pa["transformer.wte.weight"], po["transformer.wte.weight"]));
}

}  // namespace
}  // namespace hgpt::model
