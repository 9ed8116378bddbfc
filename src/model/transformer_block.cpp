// transformer_block.cpp — attention (full or windowed), its KV cache, the Transformer block and
// the sizes of attention and MLP layers.
#include "hgpt/model/transformer_block.h"

#include "hgpt/model/documents.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace hgpt::model {

CausalSelfAttentionImpl::CausalSelfAttentionImpl(int64_t dim, int64_t n_head_, int64_t n_kv_head_, int64_t window_)
    : n_head(n_head_), n_kv_head(n_kv_head_), head_dim(dim / n_head_), window(window_) {
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

// Queries i may see keys i − window < j ≤ i: (T, T), true where attention is allowed.
at::Tensor window_mask(int64_t T, int64_t window, const at::Device& device) {
  const auto i = at::arange(T, at::TensorOptions().dtype(at::kLong).device(device)).unsqueeze(1);
  const auto j = i.view({1, T});
  return j.le(i).logical_and(j.gt(i - window));
}

// Queries i may see keys j ≤ i of the same document: (B, 1, T, T), true where attention is
// allowed, narrowed further by the window when one is given (window > 0).
at::Tensor document_mask(const at::Tensor& doc_starts, int64_t window) {
  const int64_t T = doc_starts.size(1);
  const auto ids = document_ids(doc_starts);
  const auto same_document = ids.unsqueeze(2).eq(ids.unsqueeze(1));  // (B, T, T)
  const int64_t span = window > 0 && window < T ? window : T;        // a window of T: causal only
  return same_document.logical_and(window_mask(T, span, doc_starts.device())).unsqueeze(1);
}

// The position each row's last document starts at (0 when the row has no start).
at::Tensor last_document_start(const at::Tensor& doc_starts) {
  const auto positions = at::arange(doc_starts.size(1), doc_starts.options().dtype(at::kLong));
  return (positions * doc_starts.to(at::kLong)).amax(1);
}

// Stores a prompt's (B, T, H, D) keys or values in a cache buffer: the last `slots` positions
// (all of them unless a ring is shorter than the prompt), position p in slot p % slots.
void store_prompt(at::Tensor& buffer, const at::Tensor& x, int64_t slots) {
  const int64_t T = x.size(1), kept = std::min(T, slots);
  if (!buffer.defined()) buffer = at::zeros({x.size(0), x.size(2), slots, x.size(3)}, x.options());
  const auto positions = at::arange(T - kept, T, at::TensorOptions().dtype(at::kLong).device(x.device()));
  buffer.index_copy_(2, positions.remainder(slots), x.narrow(1, T - kept, kept).transpose(1, 2));
}
}  // namespace

at::Tensor CausalSelfAttentionImpl::forward(const at::Tensor& x, const Rotary& rotary, KVCache* cache,
                                            const at::Tensor& doc_starts) {
  const auto B = x.size(0), T = x.size(1), C = x.size(2);
  const int64_t start = cache ? cache->length : 0;
  // A single new token sees the cache; T > 1 after cached positions would need an offset mask:
  // the engine never asks for it.
  TORCH_CHECK(start == 0 || T == 1, "attention with a cache of ", start, " positions takes one new token, got ", T);
  auto q = c_q(x).view({B, T, n_head, head_dim});
  auto k = c_k(x).view({B, T, n_kv_head, head_dim});
  auto v = c_v(x).view({B, T, n_kv_head, head_dim});
  const Rotary here = start > 0 ? from_position(rotary, start, T) : rotary;
  q = rms_norm(apply_rotary(q, here));
  k = rms_norm(apply_rotary(k, here));
  // (B, H, T, D) for attention.
  at::Tensor keys = k.transpose(1, 2), values = v.transpose(1, 2), mask;
  bool causal = false;
  if (start == 0) {
    // A whole sequence (training, or a prompt into an empty cache): causal, windowed by a mask;
    // with documents, block-diagonal.
    if (doc_starts.defined()) {
      mask = document_mask(doc_starts, window);
    } else if (window > 0 && window < T) {
      mask = window_mask(T, window, x.device());
    } else {
      causal = true;
    }
    if (cache) {
      if (doc_starts.defined()) cache->doc_start = last_document_start(doc_starts);
      TORCH_CHECK(cache->ring || T <= cache->slots, "KV cache: ", T, " positions exceed its capacity of ",
                  cache->slots);
      store_prompt(cache->k, k, cache->slots);
      store_prompt(cache->v, v, cache->slots);
    }
  } else {
    // One token: into its slot; it attends to every filled slot (all inside its window).
    TORCH_CHECK(cache->ring || start < cache->slots, "KV cache: ", start + 1, " positions exceed its capacity of ",
                cache->slots);
    const int64_t slot = start % cache->slots, filled = std::min(start + 1, cache->slots);
    cache->k.narrow(2, slot, 1).copy_(keys);
    cache->v.narrow(2, slot, 1).copy_(values);
    keys = cache->k.narrow(2, 0, filled);
    values = cache->v.narrow(2, 0, filled);
    if (doc_starts.defined()) {
      // Only the keys of the token's document: slot s holds position start − ((start − s) mod slots).
      cache->doc_start = at::where(doc_starts.select(1, 0), start, cache->doc_start);
      const auto slots = at::arange(filled, cache->doc_start.options());
      const auto positions = start - (start - slots).remainder(cache->slots);
      mask = positions.view({1, 1, 1, filled}).ge(cache->doc_start.view({-1, 1, 1, 1}));
    }
  }
  if (cache) cache->length = start + T;
  const auto attn_mask = mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt;
  auto y = at::scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask, /*dropout_p=*/0.0, causal,
                                            /*scale=*/std::nullopt, /*enable_gqa=*/n_kv_head != n_head);
  return c_proj(y.transpose(1, 2).contiguous().view({B, T, C}));
}

std::unique_ptr<LayerState> CausalSelfAttentionImpl::new_cache(int64_t capacity) const {
  auto cache = std::make_unique<KVCache>();
  cache->ring = window > 0 && window < capacity;
  cache->slots = cache->ring ? window : capacity;
  return cache;
}

void CausalSelfAttentionImpl::init_weights() {
  init_linear_generic(c_q);
  init_linear_generic(c_k);
  init_linear_generic(c_v);
  init_zero(c_proj);
}

int64_t KVCache::bytes() const { return bytes_of(k) + bytes_of(v); }

TransformerBlockImpl::TransformerBlockImpl(int64_t dim, int64_t n_head, int64_t n_kv_head, int64_t window) {
  attn = register_module("attn", CausalSelfAttention(dim, n_head, n_kv_head, window));
  mlp = register_module("mlp", MLP(dim));
}

at::Tensor TransformerBlockImpl::forward(const at::Tensor& x_in, const LayerContext& context) {
  KVCache* cache = context.state ? &state_as<KVCache>(context.state) : nullptr;
  auto x = x_in + attn->forward(rms_norm(x_in), context.rotary, cache, context.doc_starts);
  return x + mlp(rms_norm(x));
}

std::unique_ptr<LayerState> TransformerBlockImpl::new_state(int64_t capacity) const {
  return attn->new_cache(capacity);
}

void TransformerBlockImpl::init_weights() {
  attn->init_weights();
  mlp->init_weights();
}

// ---------------------------------------------------------------------------------------------
// Sizes of the sublayers, and the kind's entry points (model/block_registry.h)

BlockSizes attention_layer_sizes(const ModelConfig& c, bool cuda, int64_t window) {
  const int64_t d = c.model_dim(), hd = c.attn_head_dim(), f = 4, a = cuda ? 2 : 4;
  const int64_t keys = window > 0 ? std::min(window, c.sequence_len) : c.sequence_len;
  BlockSizes s;
  s.matmul_params = d * c.n_head() * hd * 2 + 2 * d * c.kv_heads() * hd;  // c_q, c_proj; c_k, c_v
  s.extra_flops_per_token = 12.0 * c.n_head() * hd * keys;                // scores and values
  // x, norm(x) | q, k after rotary and after their norms, v, the attention output and its
  // contiguous copy.
  s.activation_bytes_per_token = 2 * d * f + 7 * d * a;
  // Document resets: the (B, 1, T, T) mask, which SDPA keeps in the activations' dtype.
  if (c.document_boundaries == DocumentBoundaries::Reset) s.activation_bytes_per_token += a * c.sequence_len;
  return s;
}

BlockSizes mlp_layer_sizes(const ModelConfig& c, bool cuda) {
  const int64_t d = c.model_dim(), f = 4, a = cuda ? 2 : 4;
  BlockSizes s;
  s.matmul_params = 8 * d * d;
  s.activation_bytes_per_token = 2 * d * f + 8 * d * a;  // x, norm(x) | relu(c_fc), relu² (4·d each)
  return s;
}

std::shared_ptr<BlockImpl> make_transformer_block(const ModelConfig& c) {
  return TransformerBlock(c.model_dim(), c.n_head(), c.kv_heads()).ptr();
}

BlockSizes transformer_block_sizes(const ModelConfig& c, bool cuda) {
  BlockSizes s = attention_layer_sizes(c, cuda, /*window=*/0);
  s += mlp_layer_sizes(c, cuda);
  return s;
}

}  // namespace hgpt::model
