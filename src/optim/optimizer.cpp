// optimizer.cpp — the shared Optimizer machinery (params, lr multiplier, state dict) and clipping.
#include "hgpt/optim/optimizer.h"

#include "hgpt/errors.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <map>
#include <set>

namespace hgpt::optim {

Optimizer::Optimizer(std::vector<NamedParam> params) : params_(std::move(params)) {
  std::set<std::string> names;
  std::set<const void*> impls;  // the same tensor must not be updated twice per step
  for (const NamedParam& p : params_) {
    TORCH_CHECK(p.param.defined(), "optimizer: parameter '", p.name, "' is undefined");
    TORCH_CHECK(at::isFloatingType(p.param.scalar_type()), "optimizer: parameter '", p.name, "' is not floating point");
    TORCH_CHECK(names.insert(p.name).second, "optimizer: parameter name '", p.name, "' is repeated");
    TORCH_CHECK(impls.insert(p.param.unsafeGetTensorImpl()).second, "optimizer: parameter '", p.name,
                "' is given twice");
  }
}

void Optimizer::set_lr_mult(double m) {
  TORCH_CHECK(m >= 0.0, "optimizer: lr multiplier must be >= 0, got ", m);
  lr_mult_ = m;
}

void Optimizer::zero_grad() {
  for (NamedParam& p : params_) p.param.mutable_grad() = at::Tensor();
}

const at::Tensor& Optimizer::grad_of(const NamedParam& p) {
  const at::Tensor& g = p.param.grad();
  TORCH_CHECK(g.defined(), "optimizer: parameter '", p.name, "' has no gradient");
  TORCH_CHECK(g.sizes() == p.param.sizes(), "optimizer: gradient of '", p.name, "' has shape ", g.sizes(),
              ", parameter has ", p.param.sizes());
  return g;
}

StateDict Optimizer::state_dict() const {
  StateDict out = live_state();
  for (auto& kv : out) kv.second = kv.second.detach();
  out.emplace_back("step", at::scalar_tensor(step_count_, at::kLong));
  return out;
}

void Optimizer::load_state_dict(const StateDict& state) {
  std::map<std::string, at::Tensor> given;
  for (const auto& kv : state) {
    if (!given.emplace(kv.first, kv.second).second)
      throw UserError("optimizer state: key '" + kv.first + "' appears twice");
  }
  auto take = [&](const std::string& key) {
    auto it = given.find(key);
    if (it == given.end()) throw UserError("optimizer state: missing key '" + key + "'");
    at::Tensor t = it->second;
    given.erase(it);
    return t;
  };
  // Check everything first, then copy: a bad dict leaves the optimizer untouched.
  StateDict live = live_state();
  std::vector<at::Tensor> sources;
  for (const auto& kv : live) {
    at::Tensor src = take(kv.first);
    if (!src.defined() || src.sizes() != kv.second.sizes()) {
      throw UserError("optimizer state: key '" + kv.first + "' has shape " +
                      (src.defined() ? c10::str(src.sizes()) : std::string("(undefined)")) + ", expected " +
                      c10::str(kv.second.sizes()));
    }
    sources.push_back(src);
  }
  at::Tensor step = take("step");
  if (!step.defined() || step.numel() != 1) throw UserError("optimizer state: key 'step' must be a scalar");
  if (!given.empty()) throw UserError("optimizer state: unexpected key '" + given.begin()->first + "'");

  at::NoGradGuard no_grad;
  for (size_t i = 0; i < live.size(); ++i) live[i].second.copy_(sources[i]);
  step_count_ = step.item<int64_t>();
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  TORCH_CHECK(max_norm > 0.0, "clip_grad_norm: max_norm must be > 0, got ", max_norm);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return 0.0;
  std::vector<at::Tensor> norms;
  norms.reserve(grads.size());
  for (const at::Tensor& g : grads) norms.push_back(g.norm().to(grads[0].device(), at::kFloat));
  const at::Tensor total = at::stack(norms).norm();
  // Multiply unconditionally by a coefficient clamped to 1 (no host sync before the scaling).
  const at::Tensor coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (at::Tensor& g : grads) g.mul_(coef.to(g.device(), g.scalar_type()));
  return total.item<double>();
}

}  // namespace hgpt::optim
