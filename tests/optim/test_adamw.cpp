// test_adamw.cpp — two AdamW steps against the update written out element by element in double.
#include "hgpt/optim/adamw.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace hgpt::optim {
namespace {

struct Scalars {  // one element of a parameter with its moments, in double
  double p, m = 0.0, v = 0.0;
};

// The AdamW update of one element at step t (1-based), as documented in adamw.h.
void reference_step(Scalars& s, double g, double lr, double wd, int t, double b1, double b2, double eps) {
  s.p *= 1.0 - lr * wd;
  s.m = b1 * s.m + (1.0 - b1) * g;
  s.v = b2 * s.v + (1.0 - b2) * g * g;
  const double bias1 = 1.0 - std::pow(b1, t), bias2 = 1.0 - std::pow(b2, t);
  s.p -= lr * std::sqrt(bias2) / bias1 * s.m / (std::sqrt(s.v) + eps);
}

TEST(AdamW, TwoStepsMatchHandComputedUpdate) {
  const double b1 = 0.8, b2 = 0.95, eps = 1e-10;
  const std::vector<double> w0 = {0.5, -1.0, 2.0, 0.25};
  const std::vector<double> u0 = {1.5, -0.3};
  at::Tensor w = at::tensor(w0, at::kFloat).reshape({2, 2}).requires_grad_(true);
  at::Tensor u = at::tensor(u0, at::kFloat).requires_grad_(true);
  // Group 0 with weight decay, group 1 without and with another lr.
  AdamW opt({AdamWGroup{{{"w", w}}, 0.1, 0.3}, AdamWGroup{{{"u", u}}, 0.02, 0.0}}, b1, b2, eps);

  std::vector<Scalars> rw, ru;
  for (double x : w0) rw.push_back({x});
  for (double x : u0) ru.push_back({x});
  const std::vector<std::vector<double>> gw = {{0.2, -0.4, 1e-3, 3.0}, {-0.1, 0.5, 0.0, 2.0}};
  const std::vector<std::vector<double>> gu = {{-2.0, 0.7}, {1.0, 0.7}};
  const double mults[2] = {1.0, 0.5};

  for (int s = 0; s < 2; ++s) {
    w.mutable_grad() = at::tensor(gw[s], at::kFloat).reshape({2, 2});
    u.mutable_grad() = at::tensor(gu[s], at::kFloat);
    opt.set_lr_mult(mults[s]);
    opt.step();
    for (size_t i = 0; i < rw.size(); ++i) reference_step(rw[i], gw[s][i], 0.1 * mults[s], 0.3, s + 1, b1, b2, eps);
    for (size_t i = 0; i < ru.size(); ++i) reference_step(ru[i], gu[s][i], 0.02 * mults[s], 0.0, s + 1, b1, b2, eps);

    const at::Tensor wf = w.detach().flatten();
    for (size_t i = 0; i < rw.size(); ++i)
      EXPECT_NEAR(wf[i].item<double>(), rw[i].p, 1e-6) << "w[" << i << "] step " << s;
    for (size_t i = 0; i < ru.size(); ++i)
      EXPECT_NEAR(u.detach()[i].item<double>(), ru[i].p, 1e-6) << "u[" << i << "] step " << s;
  }
  // State holds the moments of the reference.
  for (const auto& kv : opt.state_dict()) {
    if (kv.first == "w.exp_avg") EXPECT_NEAR(kv.second.flatten()[3].item<double>(), rw[3].m, 1e-6);
    if (kv.first == "w.exp_avg_sq") EXPECT_NEAR(kv.second.flatten()[3].item<double>(), rw[3].v, 1e-6);
    if (kv.first == "step") EXPECT_EQ(kv.second.item<int64_t>(), 2);
  }
}

TEST(AdamW, FirstStepIsSignedLrWithoutDecay) {
  // A known closed form: at t = 1, m/(sqrt(v)+eps)·sqrt(1−β2)/(1−β1) = sign(g) (for |g| ≫ eps),
  // so every element moves by exactly lr against its gradient's sign.
  at::Tensor p = at::zeros({5}, at::kFloat).requires_grad_(true);
  AdamW opt({AdamWGroup{{{"p", p}}, 0.01}});
  p.mutable_grad() = at::tensor(std::vector<double>{3.0, -0.5, 1e-3, -7.0, 0.25}, at::kFloat);
  opt.step();
  const at::Tensor expected = at::tensor(std::vector<double>{-0.01, 0.01, -0.01, 0.01, -0.01}, at::kFloat);
  EXPECT_TRUE(at::allclose(p.detach(), expected, 0, 1e-7));
}

TEST(AdamW, MissingGradIsAnError) {
  at::Tensor p = at::zeros({3}, at::kFloat).requires_grad_(true);
  AdamW opt({AdamWGroup{{{"p", p}}, 0.01}});
  EXPECT_ANY_THROW(opt.step());
}

}  // namespace
}  // namespace hgpt::optim
