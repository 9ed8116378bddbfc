// sizes.cpp — the model's parameter count, FLOPs per token and training-memory estimate, added up
// from the embedding, the head and each block kind's terms (sizes.h).
#include "hgpt/model/sizes.h"

#include "hgpt/model/block_kinds.h"
#include "hgpt/model/block_registry.h"
#include "hgpt/model/lm_loss.h"

#include <algorithm>

namespace hgpt::model {

ParamCounts count_parameters(const ModelConfig& c) {
  ParamCounts p;
  const int64_t d = c.model_dim();
  p.embedding = c.vocab_size * d;
  p.lm_head = c.vocab_size * d;
  p.matmul = p.lm_head;
  int64_t blocks = 0;
  for (const auto& kind : block_kinds()) {
    const int64_t layers = c.count(kind.symbol);
    const BlockSizes one = block_sizes(kind.symbol, c, /*cuda=*/false);
    p.blocks[kind.symbol] = layers * one.params();
    p.matmul += layers * one.matmul_params;
    p.small += layers * one.small_params;
    blocks += layers * one.params();
  }
  p.total = p.embedding + p.lm_head + blocks;
  return p;
}

FlopCounts count_flops(const ModelConfig& c) {
  FlopCounts f;
  f.lm_head = 6.0 * count_parameters(c).lm_head;
  f.total = f.lm_head;
  for (const auto& kind : block_kinds()) {
    const BlockSizes one = block_sizes(kind.symbol, c, /*cuda=*/false);
    const double layers = static_cast<double>(c.count(kind.symbol));
    f.blocks[kind.symbol] = layers * (6.0 * static_cast<double>(one.matmul_params) + one.extra_flops_per_token);
    f.total += f.blocks[kind.symbol];
  }
  return f;
}

double flops_per_token(const ModelConfig& c) { return count_flops(c).total; }

MemoryEstimate estimate_memory(const ModelConfig& c, int64_t batch, bool cuda) {
  const auto p = count_parameters(c);
  MemoryEstimate m;
  m.weights = 4 * p.total;
  m.grads = 4 * p.total;
  const int64_t adamw = p.embedding + p.lm_head + p.small;
  m.optimizer = 2 * 4 * adamw + 4 * (p.total - adamw);

  // Activations autograd keeps for one micro-batch, in bytes per token (BlockSizes). The residual
  // stream and the norms stay fp32 (f = 4 bytes); matmul outputs are in the activation dtype
  // (a = 2 under bf16 autocast, 4 in fp32). A checkpointed block keeps only its input; its
  // activations come back for one block at a time.
  const int64_t d = c.model_dim(), f = 4, a = cuda ? 2 : 4;
  int64_t kept = 0, recompute = 0, workspace = 0;
  for (const auto& kind : block_kinds()) {
    const int64_t layers = c.count(kind.symbol);
    if (layers == 0) continue;
    const BlockSizes one = block_sizes(kind.symbol, c, cuda);
    const bool checkpointed = c.checkpoints(kind.symbol);
    kept += layers * (checkpointed ? d * f : one.activation_bytes_per_token);
    if (checkpointed) recompute = std::max(recompute, one.activation_bytes_per_token);
    workspace = std::max(workspace, one.workspace_bytes_per_token);
  }
  // Head: the final norm's input and output, the head's input in the matmul dtype.
  const int64_t head = 2 * d * f + d * a;
  const int64_t tokens = batch * c.sequence_len;
  m.activations = tokens * (kept + recompute + workspace + head);
  // The chunked loss's backward (lm_loss.h): about three fp32 chunks of logits and an fp32 buffer
  // for lm_head's gradient. Under autocast: the bf16 copies of the weights that the forward casts.
  const int64_t chunk_rows = std::min(tokens, loss_chunk_rows(c.vocab_size));
  m.activations += 3 * 4 * chunk_rows * c.vocab_size + 4 * p.lm_head;
  if (cuda) m.activations += 2 * p.matmul;
  return m;
}

}  // namespace hgpt::model
