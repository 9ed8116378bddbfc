// sizes.h — HybridGPT's sizes from the config alone (no allocation), for --dry-run, MFU and
// memory planning: the embedding, the head and the sum of each layer's own terms
// (model/block_registry.h, BlockSizes).
#pragma once

#include "hgpt/config.h"

#include <cstdint>
#include <map>

namespace hgpt::model {

struct ParamCounts {
  int64_t total = 0;
  int64_t embedding = 0;  // wte
  int64_t lm_head = 0;
  std::map<char, int64_t> blocks;  // all layers of each kind, by pattern symbol (0 for an unused kind)
  int64_t matmul = 0;              // weights of matrix multiplies (lm_head included, wte not)
  int64_t small = 0;               // the blocks' small parameters (AdamW's, besides wte and lm_head)
};
ParamCounts count_parameters(const ModelConfig& config);

// Training FLOPs per token (forward + backward): 6 · matmul params + each layer's extra
// (T: 12·n_head·head_dim·seq_len, S: the same over min(attn_window, seq_len) keys,
// M: 27·d_inner·d_state + 6·d_inner·d_conv), in all and split as the parameters are.
struct FlopCounts {
  double total = 0;
  double lm_head = 0;
  std::map<char, double> blocks;  // all layers of each kind, by pattern symbol (0 for an unused kind)
};
FlopCounts count_flops(const ModelConfig& config);
double flops_per_token(const ModelConfig& config);  // count_flops(config).total

struct MemoryEstimate {
  int64_t weights = 0, grads = 0, optimizer = 0, activations = 0;
  int64_t total() const { return weights + grads + optimizer + activations; }
};
// Training memory of one rank at its peak (the forward's end once the gradients exist, i.e. from
// the second micro-step or step on): fp32 weights and grads, AdamW (2 fp32 buffers) for the
// embedding, lm_head and the blocks' small tensors, Muon (1 buffer) for the block matrices, the
// activations autograd keeps for one micro-batch (bf16 matmul outputs under CUDA autocast, fp32 on
// CPUs; checkpointed blocks keep only their input) and the chunked loss's working buffers.
// bench_step measures the real peak next to it (docs/BENCHMARKS.md).
MemoryEstimate estimate_memory(const ModelConfig& config, int64_t device_batch_size, bool cuda);

}  // namespace hgpt::model
