// transformer_block.h — nanochat's pre-norm Transformer block: x += attn(norm(x)); x += mlp(norm(x)).
// Block kind "transformer", pattern symbol 'T' (model/block_kinds.def).
#pragma once

#include "hgpt/model/block.h"

namespace hgpt::model {

// The keys and values of one attention layer for decoding: preallocated to `capacity` positions
// on the first write (in the dtype the keys come out in), `length` of them filled.
struct KVCache : LayerState {
  int64_t capacity = 0;
  int64_t length = 0;
  at::Tensor k, v;  // (B, n_kv_head, capacity, head_dim)
  int64_t bytes() const override;
};

// Causal self-attention: c_q, c_k, c_v, c_proj; rotary, then QK RMSNorm, then LibTorch's
// scaled_dot_product_attention (GQA when n_kv_head < n_head).
class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(int64_t dim, int64_t n_head, int64_t n_kv_head);
  // x (B, T, C). With a cache, x holds the positions after the cache's `length` (all of a prompt
  // into an empty cache, else one token): they are rotated at those positions, appended to the
  // cache and attend to everything in it.
  at::Tensor forward(const at::Tensor& x, const Rotary& rotary, KVCache* cache = nullptr);
  void init_weights();

  int64_t n_head, n_kv_head, head_dim;
  torch::nn::Linear c_q{nullptr}, c_k{nullptr}, c_v{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(CausalSelfAttention);

class TransformerBlockImpl : public BlockImpl {
 public:
  TransformerBlockImpl(int64_t dim, int64_t n_head, int64_t n_kv_head);
  // With a state (a KVCache), see CausalSelfAttention::forward.
  at::Tensor forward(const at::Tensor& x, const LayerContext& context) override;
  void init_weights() override;
  char kind() const override { return 'T'; }
  std::unique_ptr<LayerState> new_state(int64_t capacity) const override;

  CausalSelfAttention attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(TransformerBlock);

}  // namespace hgpt::model
