// transformer_block.h — nanochat's pre-norm Transformer block: x += attn(norm(x)); x += mlp(norm(x)).
#pragma once

#include "hgpt/model/layers.h"

namespace hgpt::model {

// Causal self-attention: c_q, c_k, c_v, c_proj; rotary, then QK RMSNorm, then LibTorch's
// scaled_dot_product_attention (GQA when n_kv_head < n_head).
class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(int64_t dim, int64_t n_head, int64_t n_kv_head);
  at::Tensor forward(const at::Tensor& x, const Rotary& rotary);
  void init_weights();

  int64_t n_head, n_kv_head, head_dim;
  torch::nn::Linear c_q{nullptr}, c_k{nullptr}, c_v{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(CausalSelfAttention);

class TransformerBlockImpl : public BlockImpl {
 public:
  TransformerBlockImpl(int64_t dim, int64_t n_head, int64_t n_kv_head);
  at::Tensor forward(const at::Tensor& x, const Rotary& rotary);
  void init_weights() override;
  char kind() const override { return 'T'; }

  CausalSelfAttention attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(TransformerBlock);

}  // namespace hgpt::model
