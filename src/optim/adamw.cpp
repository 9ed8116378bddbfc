// adamw.cpp — AdamW with per-group lr and decoupled weight decay (formulas in adamw.h).
#include "hgpt/optim/adamw.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

namespace hgpt::optim {

namespace {
std::vector<NamedParam> flatten(const std::vector<AdamWGroup>& groups) {
  std::vector<NamedParam> all;
  for (const AdamWGroup& g : groups) all.insert(all.end(), g.params.begin(), g.params.end());
  return all;
}

at::Tensor fp32_zeros_like(const at::Tensor& p) {
  return at::zeros(p.sizes(), p.options().dtype(at::kFloat).requires_grad(false));
}
}  // namespace

AdamW::AdamW(std::vector<AdamWGroup> groups, double beta1, double beta2, double eps)
    : Optimizer(flatten(groups)), beta1_(beta1), beta2_(beta2), eps_(eps) {
  TORCH_CHECK(beta1 >= 0.0 && beta1 < 1.0, "AdamW: beta1 must be in [0, 1), got ", beta1);
  TORCH_CHECK(beta2 >= 0.0 && beta2 < 1.0, "AdamW: beta2 must be in [0, 1), got ", beta2);
  TORCH_CHECK(eps > 0.0, "AdamW: eps must be > 0, got ", eps);
  size_t index = 0;
  for (const AdamWGroup& g : groups) {
    TORCH_CHECK(g.lr >= 0.0, "AdamW: group lr must be >= 0, got ", g.lr);
    TORCH_CHECK(g.weight_decay >= 0.0, "AdamW: weight_decay must be >= 0, got ", g.weight_decay);
    Group group{g.lr, g.weight_decay, {}};
    for (const NamedParam& np : g.params) {
      // Zero moments are the same as nanochat's lazily created ones; creating them here makes the
      // state dict complete from the start.
      group.slots.push_back(Slot{index++, fp32_zeros_like(np.param), fp32_zeros_like(np.param)});
    }
    groups_.push_back(std::move(group));
  }
}

void AdamW::step() {
  at::NoGradGuard no_grad;
  ++step_count_;
  const double t = static_cast<double>(step_count_);
  const double bias1 = 1.0 - std::pow(beta1_, t);
  const double bias2 = 1.0 - std::pow(beta2_, t);
  for (Group& group : groups_) {
    const double lr = group.lr * lr_mult();
    const double step_size = lr * std::sqrt(bias2) / bias1;
    for (Slot& slot : group.slots) {
      const NamedParam& np = params()[slot.index];
      const at::Tensor g = grad_of(np).to(at::kFloat);
      at::Tensor p = np.param;
      // fp32 master copy only when the parameter itself is not fp32.
      at::Tensor w = p.scalar_type() == at::kFloat ? p : p.to(at::kFloat);
      if (group.weight_decay != 0.0) w.mul_(1.0 - lr * group.weight_decay);
      slot.exp_avg.mul_(beta1_).add_(g, 1.0 - beta1_);
      slot.exp_avg_sq.mul_(beta2_).addcmul_(g, g, 1.0 - beta2_);
      const at::Tensor denom = slot.exp_avg_sq.sqrt().add_(eps_);
      w.addcdiv_(slot.exp_avg, denom, -step_size);
      if (!w.is_same(p)) p.copy_(w);
    }
  }
}

StateDict AdamW::live_state() const {
  StateDict out;
  for (const Group& group : groups_) {
    for (const Slot& slot : group.slots) {
      const std::string& name = params()[slot.index].name;
      out.emplace_back(name + ".exp_avg", slot.exp_avg);
      out.emplace_back(name + ".exp_avg_sq", slot.exp_avg_sq);
    }
  }
  return out;
}

}  // namespace hgpt::optim
