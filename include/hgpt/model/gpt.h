// gpt.h — HybridGPT: token embedding, norm, one block per entry of ModelConfig::block_pattern
// (any mix of the kinds in model/block_kinds.def), norm, untied lm_head, logits soft-capped at 15
// (docs/ARCHITECTURE.md, "Model"). Parameter names follow nanochat / mamba exactly
// (transformer.wte.weight, transformer.h.{i}...). Its sizes without a model: model/sizes.h.
#pragma once

#include "hgpt/config.h"
#include "hgpt/model/block.h"

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>

#include <memory>
#include <vector>

namespace hgpt::model {

class HybridGPTImpl : public torch::nn::Module {
 public:
  explicit HybridGPTImpl(const ModelConfig& config);
  // The full init (generic Linear init, zeroed output projections and lm_head, embedding N(0,1),
  // Mamba's own A_log/D/dt_proj). Draws from the default generator: seed it first.
  void init_weights();

  // The last block's output (B, T, model_dim), before the final norm; blocks checkpointed as the
  // config says.
  at::Tensor hidden(const at::Tensor& idx);
  // Soft-capped fp32 logits (B, T, vocab).
  at::Tensor forward(const at::Tensor& idx);
  // Cross-entropy against targets (B, T) with ignore index -1: the mean over counted tokens, or
  // per-token losses (B, T) (0 where ignored) when `per_token`. Computed chunk by chunk
  // (lm_loss.h): the (B·T × vocab) logits are never held at once.
  at::Tensor loss(const at::Tensor& idx, const at::Tensor& targets, bool per_token = false);
  // The two ends of forward, for callers that run the blocks themselves (the inference engine):
  // the normed token embedding (B, T, C), and soft-capped fp32 logits of the last block's output.
  at::Tensor embed(const at::Tensor& idx);
  at::Tensor head(const at::Tensor& x);

  // document_boundaries "reset": where each row of idx (B, T) starts a document (the BOS token),
  // for LayerContext::doc_starts; undefined when documents cross.
  at::Tensor document_starts(const at::Tensor& idx) const;

  const ModelConfig& config() const { return config_; }
  // The layers in order (the modules of transformer.h).
  const std::vector<std::shared_ptr<BlockImpl>>& blocks() const { return blocks_; }

 private:
  ModelConfig config_;
  std::shared_ptr<torch::nn::Module> transformer_;
  torch::nn::Embedding wte_{nullptr};
  torch::nn::ModuleList h_{nullptr};
  torch::nn::Linear lm_head_{nullptr};
  std::vector<std::shared_ptr<BlockImpl>> blocks_;  // h_'s modules as blocks
};
TORCH_MODULE(HybridGPT);

}  // namespace hgpt::model
