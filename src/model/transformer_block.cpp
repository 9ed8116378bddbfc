// transformer_block.cpp — attention and the Transformer block, its inference state (a KV cache)
// and its sizes.
#include "hgpt/model/transformer_block.h"

#include "hgpt/model/block_registry.h"

#include <ATen/ATen.h>

namespace hgpt::model {

CausalSelfAttentionImpl::CausalSelfAttentionImpl(int64_t dim, int64_t n_head_, int64_t n_kv_head_)
    : n_head(n_head_), n_kv_head(n_kv_head_), head_dim(dim / n_head_) {
  c_q = register_module("c_q", linear_no_bias(dim, n_head * head_dim));
  c_k = register_module("c_k", linear_no_bias(dim, n_kv_head * head_dim));
  c_v = register_module("c_v", linear_no_bias(dim, n_kv_head * head_dim));
  c_proj = register_module("c_proj", linear_no_bias(n_head * head_dim, dim));
}

namespace {
// The rotary tables from position `start` on (apply_rotary reads them from their first row).
Rotary from_position(const Rotary& rotary, int64_t start, int64_t length) {
  return {rotary.cos.narrow(1, start, length), rotary.sin.narrow(1, start, length)};
}

// Appends (B, T, H, D) keys or values to a (B, H, capacity, D) cache buffer at `start`,
// allocating it on the first write; returns the filled part (B, H, start + T, D).
at::Tensor append(at::Tensor& buffer, const at::Tensor& x, int64_t start, int64_t capacity) {
  const int64_t T = x.size(1);
  TORCH_CHECK(start + T <= capacity, "KV cache: ", start + T, " positions exceed its capacity of ", capacity);
  if (!buffer.defined()) buffer = at::zeros({x.size(0), x.size(2), capacity, x.size(3)}, x.options());
  buffer.narrow(2, start, T).copy_(x.transpose(1, 2));
  return buffer.narrow(2, 0, start + T);
}
}  // namespace

at::Tensor CausalSelfAttentionImpl::forward(const at::Tensor& x, const Rotary& rotary, KVCache* cache) {
  const auto B = x.size(0), T = x.size(1), C = x.size(2);
  const int64_t start = cache ? cache->length : 0;
  auto q = c_q(x).view({B, T, n_head, head_dim});
  auto k = c_k(x).view({B, T, n_kv_head, head_dim});
  auto v = c_v(x).view({B, T, n_kv_head, head_dim});
  const Rotary here = start > 0 ? from_position(rotary, start, T) : rotary;
  q = rms_norm(apply_rotary(q, here));
  k = rms_norm(apply_rotary(k, here));
  // (B, H, T, D) for attention; with a cache the keys and values are all positions so far.
  at::Tensor keys = k.transpose(1, 2), values = v.transpose(1, 2);
  if (cache) {
    keys = append(cache->k, k, start, cache->capacity);
    values = append(cache->v, v, start, cache->capacity);
    cache->length = start + T;
  }
  // Causal within the new positions; a single new token sees every cached one. (T > 1 after
  // cached positions would need an offset mask: the engine never asks for it.)
  TORCH_CHECK(start == 0 || T == 1, "attention with a cache of ", start, " positions takes one new token, got ", T);
  auto y = at::scaled_dot_product_attention(q.transpose(1, 2), keys, values, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                            /*is_causal=*/start == 0, /*scale=*/std::nullopt,
                                            /*enable_gqa=*/n_kv_head != n_head);
  return c_proj(y.transpose(1, 2).contiguous().view({B, T, C}));
}

void CausalSelfAttentionImpl::init_weights() {
  init_linear_generic(c_q);
  init_linear_generic(c_k);
  init_linear_generic(c_v);
  init_zero(c_proj);
}

TransformerBlockImpl::TransformerBlockImpl(int64_t dim, int64_t n_head, int64_t n_kv_head) {
  attn = register_module("attn", CausalSelfAttention(dim, n_head, n_kv_head));
  mlp = register_module("mlp", MLP(dim));
}

at::Tensor TransformerBlockImpl::forward(const at::Tensor& x_in, const LayerContext& context) {
  KVCache* cache = context.state ? &state_as<KVCache>(context.state) : nullptr;
  auto x = x_in + attn->forward(rms_norm(x_in), context.rotary, cache);
  return x + mlp(rms_norm(x));
}

std::unique_ptr<LayerState> TransformerBlockImpl::new_state(int64_t capacity) const {
  auto cache = std::make_unique<KVCache>();
  cache->capacity = capacity;
  return cache;
}

int64_t KVCache::bytes() const { return bytes_of(k) + bytes_of(v); }

void TransformerBlockImpl::init_weights() {
  attn->init_weights();
  mlp->init_weights();
}

// ---------------------------------------------------------------------------------------------
// The kind's entry points (model/block_registry.h)

std::shared_ptr<BlockImpl> make_transformer_block(const ModelConfig& c) {
  return TransformerBlock(c.model_dim(), c.n_head(), c.kv_heads()).ptr();
}

BlockSizes transformer_block_sizes(const ModelConfig& c, bool cuda) {
  const int64_t d = c.model_dim(), hd = c.attn_head_dim(), f = 4, a = cuda ? 2 : 4;
  BlockSizes s;
  const int64_t attn = d * c.n_head() * hd * 2 + 2 * d * c.kv_heads() * hd;  // c_q, c_proj; c_k, c_v
  const int64_t mlp = 8 * d * d;
  s.matmul_params = attn + mlp;
  s.extra_flops_per_token = 12.0 * c.n_head() * hd * c.sequence_len;  // attention scores and values
  // x, norm(x), x + attn, norm(x + attn) | q, k after rotary and after their norms, v, the
  // attention output and its contiguous copy, relu(c_fc), relu² (4·d each).
  s.activation_bytes_per_token = 4 * d * f + 7 * d * a + 8 * d * a;
  return s;
}

}  // namespace hgpt::model
