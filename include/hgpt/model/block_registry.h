// block_registry.h — the block kinds of model/block_kinds.def as the model uses them: building a
// block for a pattern symbol, and each kind's sizes, from which model/sizes.h adds up the model's.
#pragma once

#include "hgpt/config.h"

#include <algorithm>
#include <cstdint>
#include <memory>

namespace hgpt::model {

class BlockImpl;

// One layer of a kind, from the config alone (no allocation), for --dry-run, MFU and memory planning.
struct BlockSizes {
  int64_t matmul_params = 0;  // weights of matrix multiplies: Muon's
  int64_t small_params = 0;   // BlockImpl::small_parameters: AdamW's
  int64_t other_params = 0;   // any other (counted in the total; Muon's, like the matrices)
  // Training FLOPs per token (forward + backward) besides 6 × matmul_params: attention scores,
  // the scan.
  double extra_flops_per_token = 0;
  // Bytes per token that autograd keeps for the backward (eager mode, each tensor once), with
  // matmul outputs in bf16 under CUDA autocast and fp32 on CPUs.
  int64_t activation_bytes_per_token = 0;
  // Bytes per token a layer's backward holds only while it runs, beyond what autograd keeps (the
  // chunked scan's Q × Q decay masks and their gradients): the peak adds the largest once.
  int64_t workspace_bytes_per_token = 0;
  int64_t params() const { return matmul_params + small_params + other_params; }
  // Two sublayers as one layer (attention + MLP): the sums, and the larger workspace.
  BlockSizes& operator+=(const BlockSizes& o) {
    matmul_params += o.matmul_params;
    small_params += o.small_params;
    other_params += o.other_params;
    extra_flops_per_token += o.extra_flops_per_token;
    activation_bytes_per_token += o.activation_bytes_per_token;
    workspace_bytes_per_token = std::max(workspace_bytes_per_token, o.workspace_bytes_per_token);
    return *this;
  }
};

// What each kind's file provides (src/model/<id>_block.cpp).
#define HGPT_BLOCK_KIND(id, symbol, aliases, group)                        \
  std::shared_ptr<BlockImpl> make_##id##_block(const ModelConfig& config); \
  BlockSizes id##_block_sizes(const ModelConfig& config, bool cuda);
#include "hgpt/model/block_kinds.def"

// A fresh (uninitialised) block of the kind `symbol` stands for.
std::shared_ptr<BlockImpl> make_block(char symbol, const ModelConfig& config);
// One layer's sizes of that kind.
BlockSizes block_sizes(char symbol, const ModelConfig& config, bool cuda);

}  // namespace hgpt::model
