// test_lm_loss.cpp — the chunked lm_head + soft-cap + cross-entropy against the plain path
// (full logits, tanh, at::cross_entropy_loss): losses and gradients, at several chunk sizes.
#include "hgpt/model/lm_loss.h"
#include "tests/model/model_test_util.h"

#include <ATen/ATen.h>
#include <ATen/core/Reduction.h>
#include <gtest/gtest.h>

namespace hgpt::model {
namespace {

constexpr double kCap = 15.0;

struct Case {
  at::Tensor hidden, weight, targets;
};

// Logits large enough that the soft-cap bends them (|z| up to ~40) and a few ignored targets.
Case make_case(at::ScalarType dtype, int64_t n = 13, int64_t d = 8, int64_t vocab = 11) {
  at::manual_seed(7);
  const auto opts = at::TensorOptions().dtype(dtype);
  Case c{at::randn({n, d}, opts) * 3.0, at::randn({vocab, d}, opts) * 2.0, at::randint(vocab, {n}, at::kLong)};
  c.targets.index_put_({at::tensor({2, 5, 11}, at::kLong)}, -1);
  c.hidden.requires_grad_(true);
  c.weight.requires_grad_(true);
  return c;
}

at::Tensor plain_losses(const Case& c) {
  const auto logits = at::matmul(c.hidden, c.weight.t());
  const auto capped = kCap * at::tanh(logits / kCap);
  return at::cross_entropy_loss(capped, c.targets, {}, at::Reduction::None, -1);
}

// Losses and the gradients of Σ w_i·loss_i (random weights, so each row's gradient is checked).
struct Result {
  at::Tensor losses, dhidden, dweight;
};
Result run(const Case& c, const at::Tensor& losses) {
  const auto w = at::rand(losses.sizes(), losses.options());
  (losses * w).sum().backward();
  Result r{losses.detach().clone(), c.hidden.grad().clone(), c.weight.grad().clone()};
  c.hidden.mutable_grad() = at::Tensor();
  c.weight.mutable_grad() = at::Tensor();
  return r;
}

void expect_same(const Result& a, const Result& b, double rtol, double atol) {
  EXPECT_TRUE(at::allclose(a.losses, b.losses, rtol, atol)) << (a.losses - b.losses).abs().max();
  EXPECT_TRUE(at::allclose(a.dhidden, b.dhidden, rtol, atol)) << (a.dhidden - b.dhidden).abs().max();
  EXPECT_TRUE(at::allclose(a.dweight, b.dweight, rtol, atol)) << (a.dweight - b.dweight).abs().max();
}

TEST(ChunkedLoss, EqualsThePlainPathInFloat64AtEveryChunkSize) {
  const Case c = make_case(at::kDouble);
  at::manual_seed(1);
  const Result plain = run(c, plain_losses(c));
  EXPECT_EQ(plain.losses.index({2}).item<double>(), 0.0);  // ignored rows count 0
  for (int64_t rows : {1, 4, 5, 13, 100}) {
    SCOPED_TRACE("chunk_rows " + std::to_string(rows));
    at::manual_seed(1);
    const Result chunked = run(c, softcapped_cross_entropy(c.hidden, c.weight, c.targets, kCap, rows));
    expect_same(chunked, plain, 1e-12, 1e-12);
  }
}

TEST(ChunkedLoss, EqualsThePlainPathInFloat32WithinRounding) {
  const Case c = make_case(at::kFloat, 64, 32, 97);
  at::manual_seed(1);
  const Result plain = run(c, plain_losses(c));
  at::manual_seed(1);
  const Result chunked = run(c, softcapped_cross_entropy(c.hidden, c.weight, c.targets, kCap, 10));
  expect_same(chunked, plain, 1e-5, 1e-6);
}

TEST(ChunkedLoss, RejectsMismatchedShapes) {
  const Case c = make_case(at::kFloat);
  EXPECT_THROW(softcapped_cross_entropy(c.hidden, c.weight.t(), c.targets, kCap, 4), c10::Error);
  EXPECT_THROW(softcapped_cross_entropy(c.hidden, c.weight, c.targets.narrow(0, 0, 3), kCap, 4), c10::Error);
  EXPECT_THROW(softcapped_cross_entropy(c.hidden, c.weight, c.targets, kCap, 0), c10::Error);
}

TEST(ChunkedLoss, ChunkRowsKeepAboutSixteenMillionLogits) {
  EXPECT_EQ(loss_chunk_rows(65536), 256);
  EXPECT_EQ(loss_chunk_rows(257), (int64_t{1} << 24) / 257);
  EXPECT_EQ(loss_chunk_rows(int64_t{1} << 30), 1);
}

// The model's loss (chunked) against its logits (forward) through at::cross_entropy_loss: the mean
// and the per-token losses, and every parameter's gradient.
TEST(ChunkedLoss, ModelLossEqualsCrossEntropyOfItsLogits) {
  const auto config = test::tiny_config({{"block_pattern", "TM"}});
  auto model = test::make_model(config);
  test::perturb_zero_init(model);
  at::manual_seed(3);
  const auto idx = at::randint(config.vocab_size, {2, 16}, at::kLong);
  auto targets = at::randint(config.vocab_size, {2, 16}, at::kLong);
  targets.index_put_({0, 3}, -1);

  auto grads_of = [&](const at::Tensor& loss) {
    model->zero_grad();
    loss.backward();
    std::vector<at::Tensor> g;
    for (const auto& p : model->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  const auto logits = model->forward(idx);
  const auto plain =
      at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), targets.view({-1}), {}, at::Reduction::Mean, -1);
  const auto plain_grads = grads_of(plain);
  const auto chunked = model->loss(idx, targets);
  const auto chunked_grads = grads_of(chunked);
  EXPECT_NEAR(chunked.item<double>(), plain.item<double>(), 1e-6);
  ASSERT_EQ(chunked_grads.size(), plain_grads.size());
  for (size_t i = 0; i < plain_grads.size(); ++i) {
    EXPECT_TRUE(at::allclose(chunked_grads[i], plain_grads[i], 1e-4, 1e-6))
        << "parameter " << i << ": max diff " << (chunked_grads[i] - plain_grads[i]).abs().max();
  }
  at::NoGradGuard no_grad;
  const auto per_token = model->loss(idx, targets, /*per_token=*/true);
  const auto plain_per_token =
      at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), targets.view({-1}), {}, at::Reduction::None, -1);
  EXPECT_TRUE(at::allclose(per_token.view({-1}), plain_per_token, 1e-5, 1e-6));
}

}  // namespace
}  // namespace hgpt::model
