// test_transformer_block.cpp — attention and the Transformer block against a float64 recomputation
// written out by hand: projections, half-split rotary from its own angles, QK RMSNorm, causal
// softmax(q·k/sqrt(d))·v with grouped kv heads, output projection; then the pre-norm residuals.
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

at::Tensor attention64(CausalSelfAttention& attn, const at::Tensor& x_in) {
  const auto x = x_in.to(at::kDouble);
  const int64_t B = x.size(0), T = x.size(1), H = attn->n_head, Hkv = attn->n_kv_head, D = attn->head_dim;
  auto proj = [&](torch::nn::Linear& l, int64_t heads) {
    return at::matmul(x, l->weight.to(at::kDouble).t()).view({B, T, heads, D});
  };
  const auto q = norm64(rotate64(proj(attn->c_q, H)));
  const auto k = norm64(rotate64(proj(attn->c_k, Hkv)));
  const auto v = proj(attn->c_v, Hkv);
  auto y = at::zeros({B, T, H, D}, x.options());
  const auto future = at::ones({T, T}, at::kBool).triu(1);
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / (H / Hkv);  // query heads share kv heads in consecutive groups
    const auto qh = q.select(2, h), kh = k.select(2, g), vh = v.select(2, g);  // (B, T, D)
    auto scores = at::matmul(qh, kh.transpose(1, 2)) / std::sqrt(double(D));
    scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
    y.select(2, h).copy_(at::matmul(at::softmax(scores, -1), vh));
  }
  return at::matmul(y.view({B, T, H * D}), attn->c_proj->weight.to(at::kDouble).t());
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
  const auto hn = norm64(h);
  const auto mlp = at::matmul(at::clamp_min(at::matmul(hn, block->mlp->c_fc->weight.to(at::kDouble).t()), 0).square(),
                              block->mlp->c_proj->weight.to(at::kDouble).t());
  const auto expected = h + mlp;
  EXPECT_TRUE(at::allclose(y, expected, 1e-4, 1e-4)) << (y - expected).abs().max().item<double>();
}

}  // namespace
}  // namespace hgpt::model
