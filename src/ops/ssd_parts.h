// ssd_parts.h — the non-GEMM parts of the chunked SSD (ssd.cpp): the decay terms of each chunk,
// the gradient of its masked segment sums, and the recurrence of states from chunk to chunk. Each
// has an ATen-op form (any device) and a fused form for CPUs (ssd_cpu_kernel.cpp), picked by the
// tensors' device. Tensors are (batch, chunk, head, Q[, Q]) and contiguous.
#pragma once

#include <ATen/core/Tensor.h>

namespace hgpt::ops::detail {

// From a = dt·A over each chunk (dt (batch, chunk, head, Q), A (head)):
struct DecayTerms {
  at::Tensor Lm;           // (…, Q, Q): exp(a_{s+1} + … + a_t) for s ≤ t, 0 above the diagonal
  at::Tensor w;            // (…, Q): exp(a_{s+1} + … + a_{Q−1}), the decay from s to the chunk's end
  at::Tensor acum_exp;     // (…, Q): exp(a_0 + … + a_t), the decay from the chunk's start to t
  at::Tensor chunk_decay;  // (batch, chunk, head): exp(a_0 + … + a_{Q−1})
};
// The segment sums are running sums along each row (never a difference of two cumulative sums,
// which loses the small sums next to the diagonal once the cumulative sums are large).
DecayTerms decay_terms(const at::Tensor& dt, const at::Tensor& A);

// d/d a_k of Σ dseg[t][s]·seg[t][s] with seg[t][s] = a_{s+1} + … + a_t: Σ_{t ≥ k} Σ_{s < k} dseg[t][s].
at::Tensor segsum_grad(const at::Tensor& dseg);

// Σ_{t ≥ k} v_t and Σ_{s < k} v_s along the last dimension.
at::Tensor suffix_sum(const at::Tensor& v);
at::Tensor exclusive_prefix_sum(const at::Tensor& v);

// States at each chunk start, H_0 = initial (zeros when undefined), H_{c+1} = decay_c·H_c + own_c,
// for own (batch, chunk, head, headdim, d_state); H_chunks goes to `final_state`.
at::Tensor chunk_recurrence(const at::Tensor& own, const at::Tensor& chunk_decay, const at::Tensor& initial,
                            at::Tensor& final_state);
// Its backward from dH (the gradient of each H_c through the outputs) and d final_state (may be
// undefined): returns d own; sets d initial and d log(chunk_decay).
at::Tensor chunk_recurrence_backward(const at::Tensor& dH, const at::Tensor& states, const at::Tensor& chunk_decay,
                                     const at::Tensor& dfinal, at::Tensor& dinitial, at::Tensor& dlog_decay);

}  // namespace hgpt::ops::detail
