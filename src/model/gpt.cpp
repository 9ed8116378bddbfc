// gpt.cpp — HybridGPT assembly and its forward and loss.
#include "hgpt/model/gpt.h"

#include "hgpt/model/block_registry.h"
#include "hgpt/model/checkpointing.h"
#include "hgpt/model/lm_loss.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

namespace hgpt::model {

namespace {
constexpr double kSoftcap = 15.0;
}  // namespace

HybridGPTImpl::HybridGPTImpl(const ModelConfig& config) : config_(config) {
  TORCH_CHECK(static_cast<int64_t>(config.block_pattern.size()) == config.depth, "HybridGPT: block_pattern '",
              config.block_pattern, "' must have one entry per layer (depth ", config.depth,
              "); validate the config first");
  const int64_t dim = config.model_dim();
  transformer_ = register_module("transformer", std::make_shared<torch::nn::Module>("Transformer"));
  wte_ = transformer_->register_module("wte", torch::nn::Embedding(config.vocab_size, dim));
  h_ = transformer_->register_module("h", torch::nn::ModuleList());
  for (char kind : config.block_pattern) {
    blocks_.push_back(make_block(kind, config));
    h_->push_back(blocks_.back());
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

at::Tensor HybridGPTImpl::hidden(const at::Tensor& idx) {
  // Any length runs (evaluation beyond the training length too): the rotary tables are made here.
  const int64_t seq = idx.size(1);
  const LayerContext context{rotary_tables(seq, config_.attn_head_dim(), idx.device()), nullptr, document_starts(idx)};
  auto x = embed(idx);
  for (const auto& block : blocks_) {
    if (config_.checkpoints(block->kind())) {
      x = checkpointed([block, context](const at::Tensor& in) { return block->forward(in, context); }, x);
    } else {
      x = block->forward(x, context);
    }
  }
  return x;
}

at::Tensor HybridGPTImpl::forward(const at::Tensor& idx) { return head(hidden(idx)); }

at::Tensor HybridGPTImpl::document_starts(const at::Tensor& idx) const {
  if (config_.document_boundaries != DocumentBoundaries::Reset) return {};
  TORCH_CHECK(config_.bos_token_id >= 0, "document_boundaries \"reset\" needs bos_token_id (resolve it first)");
  return idx.eq(config_.bos_token_id);
}

at::Tensor HybridGPTImpl::embed(const at::Tensor& idx) { return rms_norm(wte_(idx)); }

at::Tensor HybridGPTImpl::head(const at::Tensor& x) {
  const auto logits = lm_head_(rms_norm(x)).to(at::kFloat);
  return kSoftcap * at::tanh(logits / kSoftcap);
}

at::Tensor HybridGPTImpl::loss(const at::Tensor& idx, const at::Tensor& targets, bool per_token) {
  const auto x = rms_norm(hidden(idx));
  const auto flat_targets = targets.reshape({-1});
  const auto losses = softcapped_cross_entropy(x.reshape({-1, x.size(-1)}), lm_head_->weight, flat_targets, kSoftcap,
                                               loss_chunk_rows(config_.vocab_size));
  if (per_token) return losses.view(targets.sizes());
  return losses.sum() / flat_targets.ne(-1).sum();  // the mean over counted tokens
}

}  // namespace hgpt::model
