// mamba2_block.h — the Mamba-2 block: x += mixer(norm(x)); optionally x += mlp(norm(x)).
// Block kind "mamba2", pattern symbol '2' (list entries "M2"/"mamba2"; model/block_kinds.def).
// The mixer is mamba_ssm's Mamba2 module (mamba_ssm/modules/mamba2.py) with its parameter names:
// in_proj, conv1d, dt_bias, A_log, D, norm, out_proj.
#pragma once

#include "hgpt/model/block.h"

#include <torch/nn/modules/conv.h>

namespace hgpt::model {

struct Mamba2Shape {
  int64_t dim, d_state, d_conv, expand, headdim, ngroups, chunk_size;
  int64_t d_inner() const { return expand * dim; }
  int64_t nheads() const { return d_inner() / headdim; }
  int64_t conv_dim() const { return d_inner() + 2 * ngroups * d_state; }                    // x, B, C
  int64_t in_proj_dim() const { return 2 * d_inner() + 2 * ngroups * d_state + nheads(); }  // z, x, B, C, dt
};

// The mixer's small tensors (A_log, D, dt_bias, conv1d, norm.weight).
std::vector<SmallParameter> mamba2_small_parameters(const Mamba2Shape& shape);

// After a prefix: conv holds the last d_conv − 1 inputs of the conv (x, B and C before it;
// (B, conv_dim, d_conv − 1)); ssm the state h (B, nheads, headdim, d_state), fp32.
struct Mamba2State : LayerState {
  at::Tensor conv, ssm;
  int64_t bytes() const override;
};

// mamba_ssm's RMSNormGated with norm_before_gate=False: norm(y · SiLU(z)) · weight, the RMS taken
// over each group of d_inner / ngroups channels, eps 1e-5, in fp32.
class GatedRMSNormImpl : public torch::nn::Module {
 public:
  GatedRMSNormImpl(int64_t channels, int64_t groups);
  at::Tensor forward(const at::Tensor& y, const at::Tensor& z);

  int64_t groups;
  at::Tensor weight;
};
TORCH_MODULE(GatedRMSNorm);

// in_proj → (z, x, B, C, dt); causal depthwise conv1d + SiLU over (x, B, C); Δ = softplus(dt +
// dt_bias); the chunked scan (ops/ssd.h) with A = −exp(A_log), one scalar per head, head h reading
// group h / (nheads / ngroups); + D·x; the gated norm with z; out_proj.
class Mamba2MixerImpl : public torch::nn::Module {
 public:
  explicit Mamba2MixerImpl(const Mamba2Shape& shape);
  // (B, L, dim) → (B, L, dim). With a state: an empty one is filled with the state after x (the
  // prefill's final chunk state); a filled one is continued by one token (a step).
  // doc_starts (B, L), optional: the conv and the scan restart at each document start.
  at::Tensor forward(const at::Tensor& x, Mamba2State* state = nullptr, const at::Tensor& doc_starts = at::Tensor());
  // One token: the recurrence h = exp(Δ·A)·h + Δ·x ⊗ B, y = h·C + D·x, in the state's dtype; the
  // state is zeroed first in the rows where the token starts a document.
  at::Tensor step(const at::Tensor& x, Mamba2State& state, const at::Tensor& doc_starts = at::Tensor());
  // mamba_ssm's init of dt_bias, A_log, D and the norm; the projections as the Mamba-1 block's.
  void init_weights();

  Mamba2Shape shape;
  torch::nn::Linear in_proj{nullptr}, out_proj{nullptr};
  torch::nn::Conv1d conv1d{nullptr};
  GatedRMSNorm norm{nullptr};
  at::Tensor dt_bias, A_log, D;
};
TORCH_MODULE(Mamba2Mixer);

class Mamba2BlockImpl : public BlockImpl {
 public:
  Mamba2BlockImpl(const Mamba2Shape& shape, bool use_mlp);
  at::Tensor forward(const at::Tensor& x, const LayerContext& context) override;  // rotary unused
  void init_weights() override;
  char kind() const override { return '2'; }
  std::vector<std::string> small_parameters() const override;
  std::unique_ptr<LayerState> new_state(int64_t capacity) const override;

  Mamba2Mixer mixer{nullptr};
  MLP mlp{nullptr};  // only when use_mlp
};
TORCH_MODULE(Mamba2Block);

}  // namespace hgpt::model
