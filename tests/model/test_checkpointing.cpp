// test_checkpointing.cpp — activation checkpointing changes memory, never the numbers: the loss
// and every gradient equal the plain run's, for each setting of activation_checkpointing.
#include "hgpt/model/checkpointing.h"
#include "tests/model/model_test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace hgpt::model {
namespace {

struct LossAndGrads {
  double loss;
  std::vector<at::Tensor> grads;
};

LossAndGrads loss_and_grads(const std::string& checkpointing) {
  const auto config =
      test::tiny_config({{"depth", 4}, {"block_pattern", "TMMT"}, {"activation_checkpointing", checkpointing}});
  auto model = test::make_model(config);
  test::perturb_zero_init(model);
  at::manual_seed(5);
  const auto idx = at::randint(config.vocab_size, {2, 24}, at::kLong);
  const auto targets = at::randint(config.vocab_size, {2, 24}, at::kLong);
  const auto loss = model->loss(idx, targets);
  loss.backward();
  LossAndGrads r{loss.item<double>(), {}};
  for (const auto& p : model->parameters()) {
    EXPECT_TRUE(p.grad().defined());
    r.grads.push_back(p.grad().clone());
  }
  return r;
}

class Checkpointing : public ::testing::TestWithParam<std::string> {};

TEST_P(Checkpointing, LossAndGradientsEqualThePlainRun) {
  const LossAndGrads plain = loss_and_grads("none");
  const LossAndGrads ckpt = loss_and_grads(GetParam());
  EXPECT_EQ(ckpt.loss, plain.loss);  // the forward is the same computation
  ASSERT_EQ(ckpt.grads.size(), plain.grads.size());
  for (size_t i = 0; i < plain.grads.size(); ++i) {
    EXPECT_GT(plain.grads[i].abs().max().item<double>(), 0.0) << "parameter " << i;
    EXPECT_TRUE(at::allclose(ckpt.grads[i], plain.grads[i], 1e-6, 1e-8))
        << "parameter " << i << ": max diff " << (ckpt.grads[i] - plain.grads[i]).abs().max();
  }
}

INSTANTIATE_TEST_SUITE_P(Settings, Checkpointing, ::testing::Values("mamba", "transformer", "all"));

TEST(CheckpointedFunction, KeepsOnlyItsInputAndRecomputesInBackward) {
  at::manual_seed(0);
  const auto w = at::randn({4, 4}, at::kDouble).requires_grad_(true);
  const auto x0 = at::randn({3, 4}, at::kDouble).requires_grad_(true);
  int calls = 0;
  const BlockFn fn = [w, &calls](const at::Tensor& x) {
    ++calls;
    return at::tanh(at::matmul(x, w));
  };
  const auto y = checkpointed(fn, x0 * 2.0);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(y.requires_grad());
  y.sum().backward();
  EXPECT_EQ(calls, 2);  // recomputed once in backward
  const auto gx = x0.grad().clone(), gw = w.grad().clone();
  x0.mutable_grad() = at::Tensor();
  w.mutable_grad() = at::Tensor();
  at::tanh(at::matmul(x0 * 2.0, w)).sum().backward();
  EXPECT_TRUE(at::allclose(gx, x0.grad(), 1e-14, 1e-14));
  EXPECT_TRUE(at::allclose(gw, w.grad(), 1e-14, 1e-14));
}

TEST(CheckpointedFunction, WithoutGradModeIsJustTheFunction) {
  at::NoGradGuard no_grad;
  int calls = 0;
  const auto y = checkpointed(
      [&calls](const at::Tensor& x) {
        ++calls;
        return x * 3.0;
      },
      at::ones({2}));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(at::equal(y, at::full({2}, 3.0)));
}

}  // namespace
}  // namespace hgpt::model
