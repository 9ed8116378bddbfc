// transformer_block.cpp — attention and the Transformer block.
#include "hgpt/model/transformer_block.h"

#include <ATen/ATen.h>

namespace hgpt::model {

CausalSelfAttentionImpl::CausalSelfAttentionImpl(int64_t dim, int64_t n_head_, int64_t n_kv_head_)
    : n_head(n_head_), n_kv_head(n_kv_head_), head_dim(dim / n_head_) {
  c_q = register_module("c_q", linear_no_bias(dim, n_head * head_dim));
  c_k = register_module("c_k", linear_no_bias(dim, n_kv_head * head_dim));
  c_v = register_module("c_v", linear_no_bias(dim, n_kv_head * head_dim));
  c_proj = register_module("c_proj", linear_no_bias(n_head * head_dim, dim));
}

at::Tensor CausalSelfAttentionImpl::forward(const at::Tensor& x, const Rotary& rotary) {
  const auto B = x.size(0), T = x.size(1), C = x.size(2);
  auto q = c_q(x).view({B, T, n_head, head_dim});
  auto k = c_k(x).view({B, T, n_kv_head, head_dim});
  auto v = c_v(x).view({B, T, n_kv_head, head_dim});
  q = rms_norm(apply_rotary(q, rotary));
  k = rms_norm(apply_rotary(k, rotary));
  // (B, H, T, D) for attention.
  auto y = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                            /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true,
                                            /*scale=*/std::nullopt, /*enable_gqa=*/n_kv_head != n_head);
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

at::Tensor TransformerBlockImpl::forward(const at::Tensor& x_in, const Rotary& rotary) {
  auto x = x_in + attn(rms_norm(x_in), rotary);
  return x + mlp(rms_norm(x));
}

void TransformerBlockImpl::init_weights() {
  attn->init_weights();
  mlp->init_weights();
}

}  // namespace hgpt::model
