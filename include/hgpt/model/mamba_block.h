// mamba_block.h — the Mamba (v1) block: x += mixer(norm(x)); optionally x += mlp(norm(x)).
// Block kind "mamba", pattern symbol 'M' (model/block_kinds.def).
#pragma once

#include "hgpt/model/block.h"

#include <torch/nn/modules/conv.h>

namespace hgpt::model {

struct MambaShape {
  int64_t dim, d_state, d_conv, expand;
  int64_t d_inner() const { return expand * dim; }
  int64_t dt_rank() const { return (dim + 15) / 16; }
};

// The mixer's small tensors (A_log, D, conv1d, dt_proj.bias).
std::vector<SmallParameter> mamba_small_parameters(const MambaShape& shape);

// The recurrent state of one Mamba layer after a prefix, for decoding one token at a time:
// conv holds the last d_conv−1 conv inputs (B, d_inner, d_conv−1; zeros before the first token),
// ssm the scan state h (B, d_inner, d_state), fp32.
struct MambaState : LayerState {
  at::Tensor conv, ssm;
  int64_t bytes() const override;
};

// The selective-SSM mixer of mamba_simple.py: in_proj (x and z), causal depthwise conv1d, SiLU,
// x_proj → (dt, B, C), dt_proj, selective scan (softplus, delta_bias = dt_proj.bias), gate by
// SiLU(z) inside the scan, out_proj.
class MambaMixerImpl : public torch::nn::Module {
 public:
  explicit MambaMixerImpl(const MambaShape& shape);
  // (B, L, dim) → (B, L, dim). With a state: an empty one is filled with the state after x (a
  // prefill); a filled one is continued by x, one token (L = 1), and left after it (a step).
  // doc_starts (B, L), optional: the conv and the scan restart at each document start.
  at::Tensor forward(const at::Tensor& x, MambaState* state = nullptr, const at::Tensor& doc_starts = at::Tensor());
  // One token: x (B, 1, dim), mamba's selective_state_update in plain ATen ops; the state is zeroed
  // first in the rows where the token starts a document.
  at::Tensor step(const at::Tensor& x, MambaState& state, const at::Tensor& doc_starts = at::Tensor());
  // Mamba's own init (A_log, D, dt_proj) and the generic/zero init of the other matrices.
  void init_weights();

  MambaShape shape;
  torch::nn::Linear in_proj{nullptr}, x_proj{nullptr}, dt_proj{nullptr}, out_proj{nullptr};
  torch::nn::Conv1d conv1d{nullptr};
  at::Tensor A_log, D;
};
TORCH_MODULE(MambaMixer);

class MambaBlockImpl : public BlockImpl {
 public:
  MambaBlockImpl(const MambaShape& shape, bool use_mlp);
  // x += mixer(norm(x)) (then the MLP); with a state (a MambaState), see MambaMixer::forward.
  // The rotary tables go unused.
  at::Tensor forward(const at::Tensor& x, const LayerContext& context) override;
  void init_weights() override;
  char kind() const override { return 'M'; }
  std::vector<std::string> small_parameters() const override;
  std::unique_ptr<LayerState> new_state(int64_t capacity) const override;

  MambaMixer mixer{nullptr};
  MLP mlp{nullptr};  // only when use_mlp
};
TORCH_MODULE(MambaBlock);

}  // namespace hgpt::model
