// ssd.h — Mamba-2's state-space-dual scan (SSD), chunked (design: docs/ARCHITECTURE.md, "Mamba-2's
// chunked scan").
//
// Semantics, per batch b, head h (group g = h / (nheads / ngroups)), token t, in fp32 (fp64 for
// fp64 inputs):
//   h_t = exp(dt_t · A_h) · h_{t−1} + dt_t · x_t ⊗ B_t      h (headdim, d_state), h_{−1} = initial_state or 0
//   y_t = h_t · C_t                                          (headdim)
// dt is Mamba-2's Δ, already through softplus(dt + dt_bias); D·x, the gate and the norm are the
// block's. With `reset` (document boundaries), a step t where it is true starts afresh:
// h_t = dt_t · x_t ⊗ B_t (the decay is masked to 0, never made infinite). Shapes: x (B, L, nheads, headdim); dt (B, L,
// nheads); A (nheads), negative; B, C (B, L, ngroups, d_state); initial_state and final_state (B, nheads, headdim,
// d_state).
//
// The algorithm is the chunked one of the Mamba-2 paper (arXiv 2405.21060, §6): per chunk of Q
// tokens, the output inside the chunk as two matrix products with the causal decay mask
// exp(segsum(dt·A)); each chunk's own state; the recurrence of states from chunk to chunk; and
// each chunk's output from the state it starts from. The backward recomputes the chunks' masks
// and products from the inputs and keeps only the state at each chunk start.
#pragma once

#include <ATen/core/Tensor.h>

namespace hgpt::ops {

struct SsdInputs {
  at::Tensor x;              // (B, L, nheads, headdim)
  at::Tensor dt;             // (B, L, nheads), fp32 (or fp64)
  at::Tensor A;              // (nheads), fp32 (or fp64)
  at::Tensor B;              // (B, L, ngroups, d_state)
  at::Tensor C;              // (B, L, ngroups, d_state)
  at::Tensor initial_state;  // (B, nheads, headdim, d_state), optional
  at::Tensor reset;          // (B, L) bool, optional: true where a document starts
  int64_t chunk_size = 256;  // Q; sequences need not be a multiple of it
};

struct SsdOutputs {
  at::Tensor y;            // (B, L, nheads, headdim), x's dtype
  at::Tensor final_state;  // (B, nheads, headdim, d_state), the compute dtype
};

// Differentiable with respect to x, dt, A, B, C, initial_state (through y and final_state).
SsdOutputs ssd(const SsdInputs& in);

// Shape/dtype checks (throws c10::Error naming the tensor).
void check_ssd_inputs(const SsdInputs& in);

}  // namespace hgpt::ops
