// muon.cpp — Newton–Schulz orthogonalisation and the Muon optimizer (formulas in muon.h).
#include "hgpt/optim/muon.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/cpu/Utils.h>

#include <algorithm>
#include <cmath>

namespace hgpt::optim {

at::Tensor zeropower_via_newton_schulz5(const at::Tensor& G, int steps, at::ScalarType dtype) {
  TORCH_CHECK(G.dim() == 2, "zeropower_via_newton_schulz5: expected a 2-D matrix, got shape ", G.sizes());
  TORCH_CHECK(steps >= 0, "zeropower_via_newton_schulz5: steps must be >= 0");
  constexpr double a = 3.4445, b = -4.7750, c = 2.0315;
  at::NoGradGuard no_grad;
  at::Tensor X = G.to(dtype);
  const bool tall = G.size(0) > G.size(1);
  if (tall) X = X.t();        // work on the wide side so X·Xᵀ is the smaller Gram matrix
  X = X / (X.norm() + 1e-7);  // Frobenius norm ≥ spectral norm: all σ ≤ 1
  for (int i = 0; i < steps; ++i) {
    const at::Tensor A = at::mm(X, X.t());
    const at::Tensor B = at::addmm(A, A, A, /*beta=*/b, /*alpha=*/c);  // b·A + c·A·A
    X = at::addmm(X, B, X, /*beta=*/a, /*alpha=*/1.0);                 // a·X + B·X
  }
  if (tall) X = X.t();
  return X.contiguous();
}

at::ScalarType newton_schulz_dtype(const at::Device& device) {
  if (device.is_cuda()) return at::kBFloat16;
  static const bool cpu_has_bf16 = [] {
    const auto caps = at::cpu::get_cpu_capabilities();
    auto has = [&caps](const char* key) {
      const auto it = caps.find(key);
      return it != caps.end() && it->second.isBool() && it->second.toBool();
    };
    return has("avx512_bf16") || has("amx_bf16");
  }();
  return device.is_cpu() && cpu_has_bf16 ? at::kBFloat16 : at::kFloat;
}

Muon::Muon(std::vector<NamedParam> params, double lr, double momentum, bool nesterov, int ns_steps)
    : Optimizer(std::move(params)), lr_(lr), nesterov_(nesterov), ns_steps_(ns_steps) {
  TORCH_CHECK(lr >= 0.0, "Muon: lr must be >= 0, got ", lr);
  TORCH_CHECK(ns_steps >= 1, "Muon: ns_steps must be >= 1, got ", ns_steps);
  set_momentum(momentum);
  for (const NamedParam& np : this->params()) {
    TORCH_CHECK(np.param.dim() == 2, "Muon: parameter '", np.name, "' must be a 2-D matrix, got shape ",
                np.param.sizes());
    // Zero buffer: the same as nanochat's lazily created one, and the state dict is complete early.
    momentum_buffers_.push_back(at::zeros(np.param.sizes(), np.param.options().dtype(at::kFloat).requires_grad(false)));
  }
}

void Muon::set_momentum(double m) {
  TORCH_CHECK(m >= 0.0 && m < 1.0, "Muon: momentum must be in [0, 1), got ", m);
  momentum_ = m;
}

void Muon::step() {
  at::NoGradGuard no_grad;
  ++step_count_;
  const double lr = lr_ * lr_mult();
  for (size_t i = 0; i < params().size(); ++i) {
    const NamedParam& np = params()[i];
    const at::Tensor g = grad_of(np).to(at::kFloat);
    at::Tensor& buf = momentum_buffers_[i];
    buf.lerp_(g, 1.0 - momentum_);
    const at::Tensor u = nesterov_ ? g.lerp(buf, momentum_) : buf;
    const at::Tensor o =
        zeropower_via_newton_schulz5(u, ns_steps_, ns_dtype_.value_or(newton_schulz_dtype(u.device()))).to(at::kFloat);
    const double rows = static_cast<double>(np.param.size(0));
    const double cols = static_cast<double>(np.param.size(1));
    const double scale = std::sqrt(std::max(1.0, rows / cols));
    at::Tensor p = np.param;
    if (p.scalar_type() == at::kFloat) {
      p.add_(o, -lr * scale);
    } else {
      p.copy_(p.to(at::kFloat).add_(o, -lr * scale));
    }
  }
}

StateDict Muon::live_state() const {
  StateDict out;
  for (size_t i = 0; i < params().size(); ++i)
    out.emplace_back(params()[i].name + ".momentum_buffer", momentum_buffers_[i]);
  return out;
}

}  // namespace hgpt::optim
