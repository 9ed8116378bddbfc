// lm_loss.h — the language-model head and its loss without the (tokens × vocab) logits:
// lm_head, the soft-cap s·tanh(z/s) and cross-entropy, computed a chunk of rows at a time. The
// backward recomputes each chunk's logits from the saved hidden states instead of keeping them,
// so training holds one chunk of logits at a time rather than all of them (2 GiB at 4 × 1024
// tokens and vocab 65536).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace hgpt::model {

// Rows per chunk for a vocabulary: about 2^24 logits (64 MiB in fp32) per chunk.
int64_t loss_chunk_rows(int64_t vocab_size);

// Per-token cross-entropy (N) in fp32 (fp64 for fp64 inputs) of the soft-capped logits softcap·tanh(hidden·weightᵀ /
// softcap) against targets (N), 0 where the target is -1 (ignored). hidden (N, d), weight (V, d).
// The matmul runs in the autocast dtype when autocast is on for hidden's device (as lm_head would),
// else in hidden's dtype; everything after it in fp32. Differentiable in hidden and weight.
at::Tensor softcapped_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                    double softcap, int64_t chunk_rows);

}  // namespace hgpt::model
