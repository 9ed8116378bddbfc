// layers.cpp — RMSNorm, rotary embeddings, the MLP and the generic Linear init.
#include "hgpt/model/layers.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

namespace hgpt::model {

at::Tensor rms_norm(const at::Tensor& x) {
  return at::rms_norm(x, {x.size(-1)});  // eps=None → finfo(dtype).eps
}

Rotary rotary_tables(int64_t seq_len, int64_t head_dim, const at::Device& device, double base) {
  auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  const auto channels = at::arange(0, head_dim, 2, f32);
  const auto inv_freq = 1.0 / at::pow(base, channels / static_cast<double>(head_dim));
  const auto t = at::arange(seq_len, f32);
  const auto freqs = at::outer(t, inv_freq);  // (T, D/2)
  return {freqs.cos().view({1, seq_len, 1, -1}), freqs.sin().view({1, seq_len, 1, -1})};
}

at::Tensor apply_rotary(const at::Tensor& x, const Rotary& rotary) {
  const int64_t half = x.size(-1) / 2;
  const auto seq = x.size(1);
  const auto cos = rotary.cos.narrow(1, 0, seq).to(x.scalar_type());
  const auto sin = rotary.sin.narrow(1, 0, seq).to(x.scalar_type());
  const auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  return at::cat({x1 * cos + x2 * sin, x2 * cos - x1 * sin}, -1);
}

torch::nn::Linear linear_no_bias(int64_t in, int64_t out) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
}

void init_linear_generic(torch::nn::Linear& linear) {
  at::NoGradGuard no_grad;
  const double fan_out = linear->weight.size(0), fan_in = linear->weight.size(1);
  const double std = 1.0 / std::sqrt(fan_in) * std::min(1.0, std::sqrt(fan_out / fan_in));
  linear->weight.normal_(0.0, std);
}

void init_zero(torch::nn::Linear& linear) {
  at::NoGradGuard no_grad;
  linear->weight.zero_();
}

MLPImpl::MLPImpl(int64_t dim) {
  c_fc = register_module("c_fc", linear_no_bias(dim, 4 * dim));
  c_proj = register_module("c_proj", linear_no_bias(4 * dim, dim));
}

at::Tensor MLPImpl::forward(const at::Tensor& x) { return c_proj(at::relu(c_fc(x)).square()); }

void MLPImpl::init_weights() {
  init_linear_generic(c_fc);
  init_zero(c_proj);
}

}  // namespace hgpt::model
