// sliding_window_block.cpp — the block kind "sliding_window" (pattern symbol 'S'): the
// Transformer block of transformer_block.h with attention over the last attn_window positions.
// Its KV cache is a ring of attn_window slots.
#include "hgpt/model/transformer_block.h"

namespace hgpt::model {

std::shared_ptr<BlockImpl> make_sliding_window_block(const ModelConfig& c) {
  TORCH_CHECK(c.attn_window > 0, "sliding-window block: attn_window ", c.attn_window,
              " unresolved; load the config first");
  return TransformerBlock(c.model_dim(), c.n_head(), c.kv_heads(), c.attn_window).ptr();
}

BlockSizes sliding_window_block_sizes(const ModelConfig& c, bool cuda) {
  BlockSizes s = attention_layer_sizes(c, cuda, c.attn_window);
  s += mlp_layer_sizes(c, cuda);
  return s;
}

}  // namespace hgpt::model
