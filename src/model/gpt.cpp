// gpt.cpp — HybridGPT assembly, forward/loss, and the analytic size/FLOPs/memory estimates.
#include "hgpt/model/gpt.h"

#include "hgpt/model/checkpointing.h"
#include "hgpt/model/lm_loss.h"
#include "hgpt/model/mamba_block.h"
#include "hgpt/model/transformer_block.h"
#include "src/ops/selective_scan_dispatch.h"

#include <ATen/ATen.h>
#include <ATen/core/Reduction.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

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

at::Tensor HybridGPTImpl::hidden(const at::Tensor& idx) {
  const int64_t seq = idx.size(1);
  TORCH_CHECK(seq <= config_.sequence_len, "sequence of ", seq, " tokens exceeds max_seq_len ",
              config_.sequence_len);
  const auto rotary = rotary_tables(seq, config_.attn_head_dim(), idx.device());
  auto x = embed(idx);
  for (const auto& layer : *h_) {  // each kind's own forward: only attention needs the rotary tables
    BlockFn run_block;
    char kind = 'M';
    if (auto t = std::dynamic_pointer_cast<TransformerBlockImpl>(layer)) {
      run_block = [t, rotary](const at::Tensor& in) { return t->forward(in, rotary); };
      kind = 'T';
    } else {
      auto m = std::dynamic_pointer_cast<MambaBlockImpl>(layer);
      run_block = [m](const at::Tensor& in) { return m->forward(in); };
    }
    x = config_.checkpoints(kind) ? checkpointed(run_block, x) : run_block(x);
  }
  return x;
}

at::Tensor HybridGPTImpl::forward(const at::Tensor& idx) { return head(hidden(idx)); }

at::Tensor HybridGPTImpl::embed(const at::Tensor& idx) { return rms_norm(wte_(idx)); }

at::Tensor HybridGPTImpl::head(const at::Tensor& x) {
  const auto logits = lm_head_(rms_norm(x)).to(at::kFloat);
  return kSoftcap * at::tanh(logits / kSoftcap);
}

at::Tensor HybridGPTImpl::loss(const at::Tensor& idx, const at::Tensor& targets, bool per_token) {
  const auto x = rms_norm(hidden(idx));
  const auto flat_targets = targets.reshape({-1});
  const auto losses = softcapped_cross_entropy(x.reshape({-1, x.size(-1)}), lm_head_->weight, flat_targets,
                                               kSoftcap, loss_chunk_rows(config_.vocab_size));
  if (per_token) return losses.view(targets.sizes());
  return losses.sum() / flat_targets.ne(-1).sum();  // the mean over counted tokens
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

MemoryEstimate estimate_memory(const ModelConfig& c, int64_t batch, bool cuda) {
  const auto p = count_parameters(c);
  MemoryEstimate m;
  m.weights = 4 * p.total;
  m.grads = 4 * p.total;
  const int64_t mamba_small = c.count('M') * small_elements(mamba_shape(c));
  const int64_t adamw = p.embedding + p.lm_head + mamba_small;
  m.optimizer = 2 * 4 * adamw + 4 * (p.total - adamw);

  // Activations autograd keeps for one micro-batch, in bytes per token: what each op saves for
  // its backward (eager mode), counting each tensor once. The residual stream and the norms stay
  // fp32 (f = 4 bytes); matmul outputs and what derives from them are in the activation dtype
  // (a = 2 under bf16 autocast, 4 in fp32).
  const auto mamba = mamba_shape(c);
  const int64_t d = c.model_dim(), di = mamba.d_inner(), N = c.mamba_d_state, f = 4, a = cuda ? 2 : 4;
  // T: x, norm(x), x + attn, norm(x + attn) | q, k after rotary and after their norms, v, the
  // attention output and its contiguous copy, relu(c_fc), relu² (4·d each).
  const int64_t mlp = 8 * d * a;
  const int64_t per_t = 4 * d * f + 7 * d * a + mlp;
  // M: x, norm(x) | the padded conv input, conv output, silu output (the scan's u), Δ, z, the scan
  // output; x_proj's output (dt, B, C) and B, C made contiguous; the scan's state checkpoints.
  const int64_t scan_chunk = cuda ? ops::detail::kCudaScanChunk : ops::detail::kCpuScanChunk;
  const int64_t per_m = 2 * d * f + 6 * di * a + (mamba.dt_rank() + 4 * N) * a + f * di * N / scan_chunk +
                        (c.mamba_use_mlp ? 2 * d * f + mlp : 0);
  // A checkpointed block keeps only its input; its activations come back for one block at a time.
  const int64_t kept_t = c.checkpoints('T') ? d * f : per_t, kept_m = c.checkpoints('M') ? d * f : per_m;
  int64_t recompute = 0;
  if (c.checkpoints('T') && c.count('T') > 0) recompute = std::max(recompute, per_t);
  if (c.checkpoints('M') && c.count('M') > 0) recompute = std::max(recompute, per_m);
  // Head: the final norm's input and output, the head's input in the matmul dtype.
  const int64_t head = 2 * d * f + d * a;
  const int64_t tokens = batch * c.sequence_len;
  m.activations = tokens * (c.count('T') * kept_t + c.count('M') * kept_m + recompute + head);
  // The chunked loss's backward (lm_loss.h): about three fp32 chunks of logits and an fp32 buffer
  // for lm_head's gradient. Under autocast: the bf16 copies of the weights that the forward casts.
  const int64_t chunk_rows = std::min(tokens, loss_chunk_rows(c.vocab_size));
  m.activations += 3 * 4 * chunk_rows * c.vocab_size + 4 * p.lm_head;
  if (cuda) m.activations += 2 * p.matmul;
  return m;
}

}  // namespace hgpt::model
