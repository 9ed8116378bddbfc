// attention_block.cpp — the attention-only layer (attention_block.h), its KV cache and its sizes.
#include "hgpt/model/attention_block.h"

#include <ATen/ATen.h>

namespace hgpt::model {

AttentionBlockImpl::AttentionBlockImpl(int64_t dim, int64_t n_head, int64_t n_kv_head) {
  attn = register_module("attn", CausalSelfAttention(dim, n_head, n_kv_head));
}

at::Tensor AttentionBlockImpl::forward(const at::Tensor& x, const LayerContext& context) {
  KVCache* cache = context.state ? &state_as<KVCache>(context.state) : nullptr;
  return x + attn->forward(rms_norm(x), context.rotary, cache, context.doc_starts);
}

void AttentionBlockImpl::init_weights() { attn->init_weights(); }

std::unique_ptr<LayerState> AttentionBlockImpl::new_state(int64_t capacity) const { return attn->new_cache(capacity); }

std::shared_ptr<BlockImpl> make_attention_block(const ModelConfig& c) {
  return AttentionBlock(c.model_dim(), c.n_head(), c.kv_heads()).ptr();
}

BlockSizes attention_block_sizes(const ModelConfig& c, bool cuda) {
  return attention_layer_sizes(c, cuda, /*window=*/0);
}

}  // namespace hgpt::model
