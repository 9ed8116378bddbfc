// layers.h — the small pieces the block kinds share: parameter-free RMSNorm, rotary embeddings,
// the relu² MLP and the generic Linear init.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace hgpt::model {

// norm(x) = x · rsqrt(mean(x²) + eps), eps = the dtype's machine epsilon (PyTorch's rms_norm default).
at::Tensor rms_norm(const at::Tensor& x);

// Rotary tables, kept in fp32 (nanochat stores them in bf16): cos/sin of shape (1, T, 1, head_dim/2).
struct Rotary {
  at::Tensor cos, sin;
};
Rotary rotary_tables(int64_t seq_len, int64_t head_dim, const at::Device& device, double base = 10000.0);
// Half-split rotation of x (B, T, H, D): y1 = x1·cos + x2·sin, y2 = −x1·sin + x2·cos.
at::Tensor apply_rotary(const at::Tensor& x, const Rotary& rotary);

// Linear without bias, as everywhere in the model but dt_proj.
torch::nn::Linear linear_no_bias(int64_t in, int64_t out);
// Generic init: N(0, std), std = 1/sqrt(fan_in) · min(1, sqrt(fan_out / fan_in)).
void init_linear_generic(torch::nn::Linear& linear);
void init_zero(torch::nn::Linear& linear);

// MLP: c_fc (d → 4d), relu(x)², c_proj (4d → d).
class MLPImpl : public torch::nn::Module {
 public:
  explicit MLPImpl(int64_t dim);
  at::Tensor forward(const at::Tensor& x);
  void init_weights();

  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(MLP);

}  // namespace hgpt::model
