// mamba_block.h — the Mamba (v1) block: x += mixer(norm(x)); optionally x += mlp(norm(x)).
#pragma once

#include "hgpt/model/layers.h"

#include <torch/nn/modules/conv.h>

namespace hgpt::model {

struct MambaShape {
  int64_t dim, d_state, d_conv, expand;
  int64_t d_inner() const { return expand * dim; }
  int64_t dt_rank() const { return (dim + 15) / 16; }
};

// The mixer's small tensors (A_log, D, conv1d, dt_proj.bias): AdamW without weight decay at
// mamba_lr, not Muon. Names inside the block, with their element counts for the size estimates.
struct SmallParameter {
  std::string name;
  int64_t numel;
};
std::vector<SmallParameter> mamba_small_parameters(const MambaShape& shape);

// The selective-SSM mixer of mamba_simple.py: in_proj (x and z), causal depthwise conv1d, SiLU,
// x_proj → (dt, B, C), dt_proj, selective scan (softplus, delta_bias = dt_proj.bias), gate by
// SiLU(z) inside the scan, out_proj.
class MambaMixerImpl : public torch::nn::Module {
 public:
  explicit MambaMixerImpl(const MambaShape& shape);
  at::Tensor forward(const at::Tensor& x);  // (B, L, dim) → (B, L, dim)
  // Mamba's own init (A_log, D, dt_proj) and the generic/zero init of the other matrices.
  void init_weights();

  // The causal depthwise convolution over time of x (B, L, d_inner) with conv1d's weight and bias.
  at::Tensor causal_depthwise_conv(const at::Tensor& x);

  MambaShape shape;
  torch::nn::Linear in_proj{nullptr}, x_proj{nullptr}, dt_proj{nullptr}, out_proj{nullptr};
  torch::nn::Conv1d conv1d{nullptr};
  at::Tensor A_log, D;
};
TORCH_MODULE(MambaMixer);

class MambaBlockImpl : public BlockImpl {
 public:
  MambaBlockImpl(const MambaShape& shape, bool use_mlp);
  at::Tensor forward(const at::Tensor& x);
  void init_weights() override;
  char kind() const override { return 'M'; }
  std::vector<std::string> small_parameters() const override;

  MambaMixer mixer{nullptr};
  MLP mlp{nullptr};  // only when use_mlp
};
TORCH_MODULE(MambaBlock);

}  // namespace hgpt::model
