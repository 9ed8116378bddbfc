// gpt.h — HybridGPT: token embedding, norm, a per-layer mix of Transformer and Mamba blocks
// (ModelConfig::block_pattern), norm, untied lm_head, logits soft-capped at 15
// (docs/ARCHITECTURE.md, "Model").
// Parameter names follow nanochat / mamba exactly (transformer.wte.weight, transformer.h.{i}...).
// Also: the analytic parameter count, FLOPs per token and training-memory estimate used by
// `base_train --dry-run` and MFU, which need no model in memory.
#pragma once

#include "hgpt/config.h"
#include "hgpt/model/layers.h"

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

  const ModelConfig& config() const { return config_; }
  // The layers in order (the modules of transformer.h).
  std::vector<std::shared_ptr<BlockImpl>> blocks() const;

 private:
  ModelConfig config_;
  std::shared_ptr<torch::nn::Module> transformer_;
  torch::nn::Embedding wte_{nullptr};
  torch::nn::ModuleList h_{nullptr};
  torch::nn::Linear lm_head_{nullptr};
};
TORCH_MODULE(HybridGPT);

// ---------------------------------------------------------------------------------------------
// Sizes from the config alone (no allocation), for --dry-run, MFU and memory planning.

struct ParamCounts {
  int64_t total = 0;
  int64_t embedding = 0;  // wte
  int64_t lm_head = 0;
  int64_t transformer_blocks = 0;  // all T layers
  int64_t mamba_blocks = 0;        // all M layers
  int64_t matmul = 0;              // weights of matrix multiplies (lm_head included, wte not)
};
ParamCounts count_parameters(const ModelConfig& config);

// Training FLOPs per token (forward + backward):
//   6 · matmul params + Σ_T 12·n_head·head_dim·seq_len + Σ_M (27·d_inner·d_state + 6·d_inner·d_conv).
double flops_per_token(const ModelConfig& config);

struct MemoryEstimate {
  int64_t weights = 0, grads = 0, optimizer = 0, activations = 0;
  int64_t total() const { return weights + grads + optimizer + activations; }
};
// Training memory of one rank at its peak (the forward's end once the gradients exist, i.e. from
// the second micro-step or step on): fp32 weights and grads, AdamW (2 fp32 buffers) for the
// embedding, lm_head and Mamba's small tensors, Muon (1 buffer) for the block matrices, the
// activations autograd keeps for one micro-batch (bf16 matmul outputs under CUDA autocast, fp32 on
// CPUs; checkpointed blocks keep only their input) and the chunked loss's working buffers.
// bench_step measures the real peak next to it (docs/BENCHMARKS.md).
MemoryEstimate estimate_memory(const ModelConfig& config, int64_t device_batch_size, bool cuda);

}  // namespace hgpt::model
