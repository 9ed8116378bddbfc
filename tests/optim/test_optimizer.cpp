// test_optimizer.cpp — what both optimizers share: state_dict round trip (bitwise resume), state
// validation, zero_grad, gradient clipping, and reducing a least-squares loss.
#include "hgpt/optim/adamw.h"
#include "hgpt/optim/muon.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace hgpt::optim {
namespace {

at::Tensor randn(at::IntArrayRef sizes, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(sizes, gen, at::TensorOptions().dtype(at::kFloat));
}

using Factory = std::function<std::unique_ptr<Optimizer>(const std::vector<at::Tensor>&)>;

std::unique_ptr<Optimizer> make_adamw(const std::vector<at::Tensor>& ps) {
  return std::make_unique<AdamW>(
      std::vector<AdamWGroup>{AdamWGroup{{{"a", ps[0]}}, 0.05, 0.1}, AdamWGroup{{{"b", ps[1]}}, 0.01, 0.0}});
}

std::unique_ptr<Optimizer> make_muon(const std::vector<at::Tensor>& ps) {
  return std::make_unique<Muon>(std::vector<NamedParam>{{"a", ps[0]}, {"b", ps[1]}}, 0.02);
}

std::vector<at::Tensor> make_params() {
  return {randn({6, 4}, 1).requires_grad_(true), randn({4, 8}, 2).requires_grad_(true)};
}

std::vector<at::Tensor> clone_params(const std::vector<at::Tensor>& ps) {
  std::vector<at::Tensor> out;
  for (const auto& p : ps) out.push_back(p.detach().clone().requires_grad_(true));
  return out;
}

// Deterministic gradients for step s.
void set_grads(const std::vector<at::Tensor>& ps, int s) {
  for (size_t i = 0; i < ps.size(); ++i) ps[i].mutable_grad() = randn(ps[i].sizes(), 1000 + 10 * s + i);
}

void step(Optimizer& opt, const std::vector<at::Tensor>& ps, int s) {
  set_grads(ps, s);
  opt.set_lr_mult(1.0 - 0.1 * s);
  if (auto* muon = dynamic_cast<Muon*>(&opt)) muon->set_momentum(0.85 + 0.01 * s);
  opt.step();
}

void check_resume_is_bitwise(const Factory& make) {
  std::vector<at::Tensor> pa = make_params();
  auto a = make(pa);
  for (int s = 0; s < 2; ++s) step(*a, pa, s);

  // Save (copies, as a checkpoint would), restore into a fresh optimizer on copied weights.
  StateDict saved;
  for (const auto& kv : a->state_dict()) saved.emplace_back(kv.first, kv.second.clone());
  std::vector<at::Tensor> pb = clone_params(pa), pc = clone_params(pa);
  auto b = make(pb);
  b->load_state_dict(saved);
  EXPECT_EQ(b->step_count(), 2);
  auto c = make(pc);  // same weights, but fresh state: must diverge (the state matters)

  for (int s = 2; s < 5; ++s) {
    step(*a, pa, s);
    step(*b, pb, s);
    step(*c, pc, s);
  }
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(at::equal(pa[i], pb[i])) << "param " << i << " differs after resume";
    EXPECT_FALSE(at::equal(pa[i], pc[i])) << "param " << i << " does not depend on the state";
  }
}

TEST(OptimizerState, AdamWResumeIsBitwise) { check_resume_is_bitwise(make_adamw); }
TEST(OptimizerState, MuonResumeIsBitwise) { check_resume_is_bitwise(make_muon); }

TEST(OptimizerState, KeysAreNamedAfterParams) {
  std::vector<at::Tensor> ps = make_params();
  std::vector<std::string> keys;
  for (const auto& kv : make_adamw(ps)->state_dict()) keys.push_back(kv.first);
  EXPECT_EQ(keys, (std::vector<std::string>{"a.exp_avg", "a.exp_avg_sq", "b.exp_avg", "b.exp_avg_sq", "step"}));
  keys.clear();
  for (const auto& kv : make_muon(ps)->state_dict()) keys.push_back(kv.first);
  EXPECT_EQ(keys, (std::vector<std::string>{"a.momentum_buffer", "b.momentum_buffer", "step"}));
}

// load_state_dict must throw a std::runtime_error whose message names the offending key.
void expect_load_error(Optimizer& opt, const StateDict& state, const std::string& key) {
  try {
    opt.load_state_dict(state);
    ADD_FAILURE() << "no error for key " << key;
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'" + key + "'"), std::string::npos) << e.what();
  }
}

TEST(OptimizerState, LoadRejectsMissingWrongShapeAndUnexpectedKeys) {
  std::vector<at::Tensor> ps = make_params();
  auto opt = make_muon(ps);
  const StateDict good = opt->state_dict();

  StateDict missing(good.begin() + 1, good.end());
  expect_load_error(*opt, missing, "a.momentum_buffer");

  StateDict wrong_shape = good;
  wrong_shape[1].second = at::zeros({8, 4});
  expect_load_error(*opt, wrong_shape, "b.momentum_buffer");

  StateDict extra = good;
  extra.emplace_back("c.momentum_buffer", at::zeros({2, 2}));
  expect_load_error(*opt, extra, "c.momentum_buffer");

  StateDict no_step(good.begin(), good.end() - 1);
  expect_load_error(*opt, no_step, "step");
}

TEST(Optimizer, ZeroGradSetsGradsToUndefined) {
  std::vector<at::Tensor> ps = make_params();
  auto opt = make_adamw(ps);
  set_grads(ps, 0);
  opt->zero_grad();
  for (const auto& p : ps) EXPECT_FALSE(p.grad().defined());
}

TEST(Optimizer, RejectsRepeatedNamesAndTensors) {
  at::Tensor p = randn({2, 2}, 5).requires_grad_(true), q = randn({2, 2}, 6).requires_grad_(true);
  EXPECT_ANY_THROW(Muon({{"x", p}, {"x", q}}));
  EXPECT_ANY_THROW(Muon({{"x", p}, {"y", p}}));
}

// ---- clipping ----

double norm_in_double(const std::vector<at::Tensor>& ps) {
  double sq = 0.0;
  for (const auto& p : ps) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  return std::sqrt(sq);
}

TEST(ClipGradNorm, ScalesToMaxNormAndReturnsPreClipNorm) {
  std::vector<at::Tensor> ps = make_params();
  set_grads(ps, 0);
  std::vector<at::Tensor> before;
  for (const auto& p : ps) before.push_back(p.grad().clone());
  const double total = norm_in_double(ps);
  const double max_norm = total / 3.0;

  const double returned = clip_grad_norm(ps, max_norm);
  EXPECT_NEAR(returned, total, 1e-5 * total);
  EXPECT_NEAR(norm_in_double(ps), max_norm, 1e-5 * max_norm);
  // Every gradient scaled by the same factor (direction kept).
  const double factor = max_norm / (total + 1e-6);
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_TRUE(at::allclose(ps[i].grad(), before[i] * factor, 1e-6, 1e-7));
}

TEST(ClipGradNorm, LeavesSmallGradientsUnchanged) {
  std::vector<at::Tensor> ps = make_params();
  set_grads(ps, 1);
  std::vector<at::Tensor> before;
  for (const auto& p : ps) before.push_back(p.grad().clone());
  const double total = norm_in_double(ps);
  EXPECT_NEAR(clip_grad_norm(ps, 2.0 * total), total, 1e-5 * total);
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_TRUE(at::equal(ps[i].grad(), before[i]));
}

TEST(ClipGradNorm, SkipsParamsWithoutGrad) {
  std::vector<at::Tensor> ps = make_params();
  ps[0].mutable_grad() = at::full({6, 4}, 0.5f);  // norm sqrt(24·0.25) = sqrt(6)
  EXPECT_NEAR(clip_grad_norm(ps, 100.0), std::sqrt(6.0), 1e-6);
}

// ---- a least-squares problem: min_W mean((X·W − Y)²), gradients by autograd ----

double least_squares(Optimizer& opt, const at::Tensor& W, int steps) {
  const at::Tensor X = randn({64, 16}, 7);
  const at::Tensor Y = at::mm(X, 0.3 * randn({16, 8}, 8));
  double loss_value = 0.0;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    at::Tensor loss = (at::mm(X, W) - Y).pow(2).mean();
    loss.backward();
    loss_value = loss.item<double>();
    opt.step();
  }
  return loss_value;
}

TEST(Convergence, MuonReducesLeastSquaresLoss) {
  at::Tensor W = at::zeros({16, 8}).requires_grad_(true);
  Muon opt({{"W", W}}, 0.02);
  const double first = least_squares(opt, W, 1);
  const double last = least_squares(opt, W, 150);
  EXPECT_LT(last, 0.05 * first) << "first " << first << " last " << last;
}

TEST(Convergence, AdamWReducesLeastSquaresLoss) {
  at::Tensor W = at::zeros({16, 8}).requires_grad_(true);
  AdamW opt({AdamWGroup{{{"W", W}}, 0.02, 0.0}});
  const double first = least_squares(opt, W, 1);
  const double last = least_squares(opt, W, 150);
  EXPECT_LT(last, 0.05 * first) << "first " << first << " last " << last;
}

}  // namespace
}  // namespace hgpt::optim
