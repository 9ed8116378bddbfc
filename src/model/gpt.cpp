// gpt.cpp — HybridGPT assembly, forward/loss, and the analytic size/FLOPs/memory estimates.
#include "hgpt/model/gpt.h"

#include "hgpt/model/mamba_block.h"
#include "hgpt/model/transformer_block.h"

#include <ATen/ATen.h>
#include <ATen/core/Reduction.h>
#include <ATen/core/grad_mode.h>

namespace hgpt::model {

namespace {
constexpr double kSoftcap = 15.0;

MambaShape mamba_shape(const ModelConfig& c) {
  return {c.model_dim(), c.mamba_d_state, c.mamba_d_conv, c.mamba_expand};
}

// Elements of one Mamba layer's small tensors.
int64_t small_elements(const MambaShape& shape) {
  int64_t n = 0;
  for (const auto& p : mamba_small_parameters(shape)) n += p.numel;
  return n;
}
}  // namespace

HybridGPTImpl::HybridGPTImpl(const ModelConfig& config) : config_(config) {
  TORCH_CHECK(static_cast<int64_t>(config.block_pattern.size()) == config.depth, "HybridGPT: block_pattern '",
              config.block_pattern, "' must have one entry per layer (depth ", config.depth, "); validate the config first");
  TORCH_CHECK(config.block_pattern.find_first_not_of("TM") == std::string::npos,
              "HybridGPT: block_pattern entries must be 'T' or 'M', got '", config.block_pattern, "'");
  const int64_t dim = config.model_dim();
  transformer_ = register_module("transformer", std::make_shared<torch::nn::Module>("Transformer"));
  wte_ = transformer_->register_module("wte", torch::nn::Embedding(config.vocab_size, dim));
  h_ = transformer_->register_module("h", torch::nn::ModuleList());
  for (char kind : config.block_pattern) {
    std::shared_ptr<BlockImpl> block;
    if (kind == 'T') {
      block = TransformerBlock(dim, config.n_head(), config.kv_heads()).ptr();
    } else {
      block = MambaBlock(mamba_shape(config), config.mamba_use_mlp).ptr();
    }
    h_->push_back(block);
  }
  lm_head_ = register_module("lm_head", linear_no_bias(dim, config.vocab_size));
}

void HybridGPTImpl::init_weights() {
  {
    at::NoGradGuard no_grad;
    wte_->weight.normal_(0.0, 1.0);
  }
  for (auto& block : blocks()) block->init_weights();
  init_zero(lm_head_);
}

std::vector<std::shared_ptr<BlockImpl>> HybridGPTImpl::blocks() const {
  std::vector<std::shared_ptr<BlockImpl>> out;
  for (const auto& layer : *h_) out.push_back(std::dynamic_pointer_cast<BlockImpl>(layer));
  return out;
}

at::Tensor HybridGPTImpl::forward(const at::Tensor& idx) {
  const int64_t seq = idx.size(1);
  TORCH_CHECK(seq <= config_.sequence_len, "sequence of ", seq, " tokens exceeds max_seq_len ",
              config_.sequence_len);
  const auto rotary = rotary_tables(seq, config_.attn_head_dim(), idx.device());
  auto x = embed(idx);
  for (const auto& layer : *h_) {  // each kind's own forward: only attention needs the rotary tables
    if (auto* t = layer->as<TransformerBlockImpl>()) x = t->forward(x, rotary);
    else x = layer->as<MambaBlockImpl>()->forward(x);
  }
  return head(x);
}

at::Tensor HybridGPTImpl::embed(const at::Tensor& idx) { return rms_norm(wte_(idx)); }

at::Tensor HybridGPTImpl::head(const at::Tensor& x) {
  const auto logits = lm_head_(rms_norm(x)).to(at::kFloat);
  return kSoftcap * at::tanh(logits / kSoftcap);
}

at::Tensor HybridGPTImpl::loss(const at::Tensor& idx, const at::Tensor& targets, bool per_token) {
  const auto logits = forward(idx);
  const auto losses = at::cross_entropy_loss(
      logits.view({-1, logits.size(-1)}), targets.reshape({-1}), /*weight=*/{},
      per_token ? at::Reduction::None : at::Reduction::Mean, /*ignore_index=*/-1);
  return per_token ? losses.view(targets.sizes()) : losses;
}

// ---------------------------------------------------------------------------------------------

ParamCounts count_parameters(const ModelConfig& c) {
  ParamCounts p;
  const int64_t d = c.model_dim(), hd = c.attn_head_dim();
  const int64_t attn = d * c.n_head() * hd * 2 + 2 * d * c.kv_heads() * hd;  // c_q, c_proj; c_k, c_v
  const int64_t mlp = 8 * d * d;
  const auto m = mamba_shape(c);
  const int64_t di = m.d_inner(), r = m.dt_rank(), N = c.mamba_d_state;
  const int64_t mamba_matmul = d * 2 * di + di * (r + 2 * N) + r * di + di * d;
  const int64_t mamba_other = small_elements(m);  // A_log, D, conv1d, dt_proj.bias
  const int64_t mamba_mlp = c.mamba_use_mlp ? mlp : 0;
  p.embedding = c.vocab_size * d;
  p.lm_head = c.vocab_size * d;
  p.transformer_blocks = c.count('T') * (attn + mlp);
  p.mamba_blocks = c.count('M') * (mamba_matmul + mamba_other + mamba_mlp);
  p.total = p.embedding + p.lm_head + p.transformer_blocks + p.mamba_blocks;
  p.matmul = p.lm_head + c.count('T') * (attn + mlp) + c.count('M') * (mamba_matmul + mamba_mlp);
  return p;
}

double flops_per_token(const ModelConfig& c) {
  const auto p = count_parameters(c);
  const double attention = 12.0 * c.n_head() * c.attn_head_dim() * c.sequence_len;
  const int64_t di = mamba_shape(c).d_inner();
  const double scan = 27.0 * di * c.mamba_d_state + 6.0 * di * c.mamba_d_conv;
  return 6.0 * p.matmul + c.count('T') * attention + c.count('M') * scan;
}

MemoryEstimate estimate_memory(const ModelConfig& c, int64_t batch, int activation_bytes) {
  const auto p = count_parameters(c);
  MemoryEstimate m;
  m.weights = 4 * p.total;
  m.grads = 4 * p.total;
  const int64_t mamba_small = c.count('M') * small_elements(mamba_shape(c));
  const int64_t adamw = p.embedding + p.lm_head + mamba_small;
  m.optimizer = 2 * 4 * adamw + 4 * (p.total - adamw);
  // Activations kept for backward, in elements per token, per layer (a rough count of the saved
  // inputs of each op, eager mode): T ≈ 8·d (norm, q/k/v, attention out, c_proj in) + 12·d (MLP hidden,
  // relu², out); M ≈ 2·d + 10·d_inner + (dt_rank + 2N) + 2·d_inner (scan recompute inputs).
  const auto mamba = mamba_shape(c);
  const int64_t d = c.model_dim(), di = mamba.d_inner();
  const int64_t per_t = 8 * d + 12 * d;
  const int64_t per_m = 2 * d + 12 * di + mamba.dt_rank() + 2 * c.mamba_d_state + (c.mamba_use_mlp ? 12 * d : 0);
  const int64_t tokens = batch * c.sequence_len;
  m.activations = tokens * activation_bytes * (c.count('T') * per_t + c.count('M') * per_m + 4 * d) +
                  tokens * c.vocab_size * 4 * 2;  // fp32 logits and their grad
  return m;
}

}  // namespace hgpt::model
