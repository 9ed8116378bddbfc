// attention_block.h — an attention layer on its own, as Megatron-LM counts layers:
// x += attn(norm(x)), nanochat's attention (rotary, QK-norm, GQA) without the MLP. Block kind
// "attention", pattern symbol '*' (Megatron-LM's), model/block_kinds.def.
#pragma once

#include "hgpt/model/transformer_block.h"

namespace hgpt::model {

class AttentionBlockImpl : public BlockImpl {
 public:
  AttentionBlockImpl(int64_t dim, int64_t n_head, int64_t n_kv_head);
  // With a state (a KVCache), see CausalSelfAttention::forward.
  at::Tensor forward(const at::Tensor& x, const LayerContext& context) override;
  void init_weights() override;
  char kind() const override { return '*'; }
  std::unique_ptr<LayerState> new_state(int64_t capacity) const override;

  CausalSelfAttention attn{nullptr};
};
TORCH_MODULE(AttentionBlock);

}  // namespace hgpt::model
