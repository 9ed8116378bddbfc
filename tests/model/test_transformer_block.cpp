// test_transformer_block.cpp — attention and the blocks built from it against a float64
// recomputation written out by hand: projections, half-split rotary from its own angles, QK
// RMSNorm, causal softmax(q·k/sqrt(d))·v with grouped kv heads under an explicit mask (windowed:
// keys i − W < j ≤ i), output projection; then the pre-norm residuals of the Transformer block,
// the attention-only and the MLP-only layer; and the windowed attention's gradients.
#include "hgpt/model/attention_block.h"
#include "hgpt/model/mlp_block.h"
#include "hgpt/model/transformer_block.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace hgpt::model {
namespace {

using at::indexing::Slice;

at::Tensor randn(at::IntArrayRef size, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(size, gen, at::TensorOptions().dtype(at::kFloat));
}

at::Tensor norm64(const at::Tensor& v) {
  return v / at::sqrt(v.square().mean(-1, true) + std::numeric_limits<float>::epsilon());
}

// (B, T, H, D) rotated by angle t·10000^(−2i/D) on the pairs (i, i + D/2).
at::Tensor rotate64(const at::Tensor& x) {
  const int64_t T = x.size(1), D = x.size(3), half = D / 2;
  auto out = x.clone();
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double a = t * std::pow(10000.0, -2.0 * i / D);
      const auto x1 = x.index({Slice(), t, Slice(), i}), x2 = x.index({Slice(), t, Slice(), i + half});
      out.index_put_({Slice(), t, Slice(), i}, x1 * std::cos(a) + x2 * std::sin(a));
      out.index_put_({Slice(), t, Slice(), i + half}, -x1 * std::sin(a) + x2 * std::cos(a));
    }
  }
  return out;
}

// Keys a query may not see: the future, and with a window W the positions W or more behind.
at::Tensor hidden_keys(int64_t T, int64_t window) {
  auto hidden = at::ones({T, T}, at::kBool).triu(1);
  if (window > 0) hidden = hidden.logical_or(at::ones({T, T}, at::kBool).tril(-window));
  return hidden;
}

// The attention in float64; x_in may require grad (then so does the result).
at::Tensor attention64(CausalSelfAttention& attn, const at::Tensor& x_in) {
  const auto x = x_in.to(at::kDouble);
  const int64_t B = x.size(0), T = x.size(1), H = attn->n_head, Hkv = attn->n_kv_head, D = attn->head_dim;
  auto proj = [&](torch::nn::Linear& l, int64_t heads) {
    return at::matmul(x, l->weight.to(at::kDouble).t()).view({B, T, heads, D});
  };
  const auto q = norm64(rotate64(proj(attn->c_q, H)));
  const auto k = norm64(rotate64(proj(attn->c_k, Hkv)));
  const auto v = proj(attn->c_v, Hkv);
  const auto hidden = hidden_keys(T, attn->window);
  std::vector<at::Tensor> heads;
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / (H / Hkv);  // query heads share kv heads in consecutive groups
    const auto qh = q.select(2, h), kh = k.select(2, g), vh = v.select(2, g);  // (B, T, D)
    auto scores = at::matmul(qh, kh.transpose(1, 2)) / std::sqrt(double(D));
    scores = scores.masked_fill(hidden, -std::numeric_limits<double>::infinity());
    heads.push_back(at::matmul(at::softmax(scores, -1), vh));
  }
  const auto y = at::stack(heads, 2);  // (B, T, H, D)
  return at::matmul(y.reshape({B, T, H * D}), attn->c_proj->weight.to(at::kDouble).t());
}

void perturb(CausalSelfAttention& attn) {
  at::NoGradGuard no_grad;
  attn->c_proj->weight.normal_(0.0, 0.2);
}

TEST(Attention, MatchesHandRecomputation) {
  for (int64_t kv : {4, 2, 1}) {  // MHA, GQA, MQA
    SCOPED_TRACE(kv);
    at::manual_seed(13);
    CausalSelfAttention attn(64, 4, kv);
    attn->init_weights();
    EXPECT_EQ(attn->c_proj->weight.abs().max().item<float>(), 0.0f);
    perturb(attn);
    const auto x = randn({2, 9, 64}, 14);
    at::NoGradGuard no_grad;
    const auto y = attn->forward(x, rotary_tables(9, 16, at::kCPU));
    const auto expected = attention64(attn, x);
    ASSERT_EQ(y.sizes(), x.sizes());
    EXPECT_TRUE(at::allclose(y.to(at::kDouble), expected, 1e-4, 1e-5))
        << (y.to(at::kDouble) - expected).abs().max().item<double>();
  }
}

// Windows of 1 (each query sees itself), 3 and 4 (inside the 9 positions), 9 and 20 (full).
TEST(Attention, SlidingWindowMatchesTheExplicitMask) {
  for (int64_t window : {1, 3, 4, 9, 20}) {
    for (int64_t kv : {4, 2}) {
      SCOPED_TRACE("window " + std::to_string(window) + ", kv heads " + std::to_string(kv));
      at::manual_seed(21);
      CausalSelfAttention attn(64, 4, kv, window);
      attn->init_weights();
      perturb(attn);
      const auto x = randn({2, 9, 64}, 22);
      at::NoGradGuard no_grad;
      const auto y = attn->forward(x, rotary_tables(9, 16, at::kCPU)).to(at::kDouble);
      const auto expected = attention64(attn, x);
      EXPECT_TRUE(at::allclose(y, expected, 1e-4, 1e-5)) << (y - expected).abs().max().item<double>();
      if (window < 9) {  // the window hides something: full attention gives other numbers
        attn->window = 0;
        EXPECT_GT((y - attention64(attn, x)).abs().max().item<double>(), 1e-3);
      }
    }
  }
}

TEST(Attention, SlidingWindowGradientsMatchFloat64) {
  at::manual_seed(23);
  CausalSelfAttention attn(64, 4, 2, /*window=*/3);
  attn->init_weights();
  perturb(attn);
  const auto x = randn({2, 9, 64}, 24).requires_grad_(true);
  const auto weight = randn({2, 9, 64}, 25);
  (attn->forward(x, rotary_tables(9, 16, at::kCPU)) * weight).sum().backward();
  const auto x64 = x.detach().to(at::kDouble).requires_grad_(true);
  (attention64(attn, x64) * weight.to(at::kDouble)).sum().backward();
  const auto got = x.grad().to(at::kDouble), want = x64.grad();
  EXPECT_TRUE(at::allclose(got, want, 1e-3, 1e-5)) << (got - want).abs().max().item<double>();
}

at::Tensor mlp64(MLP& mlp, const at::Tensor& x) {
  const auto hidden = at::clamp_min(at::matmul(x, mlp->c_fc->weight.to(at::kDouble).t()), 0).square();
  return at::matmul(hidden, mlp->c_proj->weight.to(at::kDouble).t());
}

TEST(TransformerBlock, IsPreNormResidualAttentionThenMlp) {
  at::manual_seed(15);
  TransformerBlock block(64, 4, 4);
  block->init_weights();
  perturb(block->attn);
  {
    at::NoGradGuard no_grad;
    block->mlp->c_proj->weight.normal_(0.0, 0.2);
  }
  const auto x = randn({2, 6, 64}, 16) * 3.0;
  at::NoGradGuard no_grad;
  const auto y = block->forward(x, {rotary_tables(6, 16, at::kCPU)}).to(at::kDouble);
  const auto xd = x.to(at::kDouble);
  const auto h = xd + attention64(block->attn, norm64(xd).to(at::kFloat));
  const auto expected = h + mlp64(block->mlp, norm64(h));
  EXPECT_TRUE(at::allclose(y, expected, 1e-4, 1e-4)) << (y - expected).abs().max().item<double>();
}

TEST(AttentionBlock, IsPreNormResidualAttentionAlone) {
  at::manual_seed(26);
  AttentionBlock block(64, 4, 2);
  block->init_weights();
  perturb(block->attn);
  EXPECT_EQ(block->kind(), '*');
  const auto x = randn({2, 6, 64}, 27) * 3.0;
  at::NoGradGuard no_grad;
  const auto y = block->forward(x, {rotary_tables(6, 16, at::kCPU)}).to(at::kDouble);
  const auto xd = x.to(at::kDouble);
  const auto expected = xd + attention64(block->attn, norm64(xd).to(at::kFloat));
  EXPECT_TRUE(at::allclose(y, expected, 1e-4, 1e-4)) << (y - expected).abs().max().item<double>();
}

TEST(MLPBlock, IsPreNormResidualMlpAlone) {
  at::manual_seed(28);
  MLPBlock block(64);
  block->init_weights();
  EXPECT_EQ(block->mlp->c_proj->weight.abs().max().item<float>(), 0.0f);  // starts as the identity
  {
    at::NoGradGuard no_grad;
    block->mlp->c_proj->weight.normal_(0.0, 0.2);
  }
  EXPECT_EQ(block->kind(), '-');
  const auto x = randn({2, 6, 64}, 29) * 3.0;
  at::NoGradGuard no_grad;
  const auto y = block->forward(x, {rotary_tables(6, 16, at::kCPU)}).to(at::kDouble);
  const auto xd = x.to(at::kDouble);
  const auto expected = xd + mlp64(block->mlp, norm64(xd));
  EXPECT_TRUE(at::allclose(y, expected, 1e-4, 1e-4)) << (y - expected).abs().max().item<double>();
}

}  // namespace
}  // namespace hgpt::model
