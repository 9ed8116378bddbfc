// transformer_block.h — nanochat's attention and its pre-norm Transformer block:
// x += attn(norm(x)); x += mlp(norm(x)). Block kinds "transformer" (pattern symbol 'T', full
// causal attention) and "sliding_window" ('S', each query sees the last attn_window positions,
// itself included); model/block_kinds.def. Also the sizes of attention and MLP layers, which the
// kinds built from them (attention_block.h, mlp_block.h) add up.
#pragma once

#include "hgpt/model/block.h"
#include "hgpt/model/block_registry.h"

namespace hgpt::model {

// The keys and values of one attention layer for decoding, in `slots` positions preallocated on
// the first write (in the dtype the keys come out in). Position p lives in slot p % slots: with
// full attention slots is the state's capacity (so slot p = p); with a window of W it is
// min(W, capacity), a ring that holds the last W positions, so memory stays flat however long the
// sequence grows.
struct KVCache : LayerState {
  int64_t slots = 0;
  bool ring = false;     // older positions may be overwritten (a windowed layer), else an error
  int64_t length = 0;    // positions seen
  at::Tensor k, v;       // (B, n_kv_head, slots, head_dim)
  at::Tensor doc_start;  // (B) int64, document resets only: where each row's current document began
  int64_t bytes() const override;
};

// Causal self-attention: c_q, c_k, c_v, c_proj; rotary, then QK RMSNorm, then LibTorch's
// scaled_dot_product_attention (GQA when n_kv_head < n_head). window > 0: query i attends keys
// i − window < j ≤ i only, through a boolean mask (full causal attention when window ≥ T).
class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(int64_t dim, int64_t n_head, int64_t n_kv_head, int64_t window = 0);
  // x (B, T, C). With a cache, x holds the positions after the cache's `length` (all of a prompt
  // into an empty cache, else one token): they are rotated at those positions, stored in the
  // cache and attend to what it holds of their window. With doc_starts (B, T) a query sees only
  // keys of its own document (block-diagonal causal attention).
  at::Tensor forward(const at::Tensor& x, const Rotary& rotary, KVCache* cache = nullptr,
                     const at::Tensor& doc_starts = at::Tensor());
  void init_weights();
  // An empty cache for up to `capacity` positions (a ring of `window` slots when windowed).
  std::unique_ptr<LayerState> new_cache(int64_t capacity) const;

  int64_t n_head, n_kv_head, head_dim, window;
  torch::nn::Linear c_q{nullptr}, c_k{nullptr}, c_v{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(CausalSelfAttention);

class TransformerBlockImpl : public BlockImpl {
 public:
  // window 0: full attention (kind 'T'), else a sliding window of that many positions ('S').
  TransformerBlockImpl(int64_t dim, int64_t n_head, int64_t n_kv_head, int64_t window = 0);
  // With a state (a KVCache), see CausalSelfAttention::forward.
  at::Tensor forward(const at::Tensor& x, const LayerContext& context) override;
  void init_weights() override;
  char kind() const override { return attn->window > 0 ? 'S' : 'T'; }
  std::unique_ptr<LayerState> new_state(int64_t capacity) const override;

  CausalSelfAttention attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(TransformerBlock);

// One pre-normed attention layer's sizes (its matrices, the attention scores over min(window,
// max_seq_len) keys, window 0 = all, and what autograd keeps) and one MLP layer's.
BlockSizes attention_layer_sizes(const ModelConfig& config, bool cuda, int64_t window);
BlockSizes mlp_layer_sizes(const ModelConfig& config, bool cuda);

}  // namespace hgpt::model
