// ssd_parts.h — the non-GEMM parts of the chunked SSD (ssd.cpp): each chunk's decay mask applied
// to C·Bᵀ and its backward (ATen ops on any device, fused loops on CPUs: ssd_cpu_kernel.cpp), and
// the recurrence of states from chunk to chunk. Tensors are (batch, chunk, head or group, Q[, Q]),
// contiguous.
#pragma once

#include <ATen/core/Tensor.h>

namespace hgpt::ops::detail {

// A head tensor (batch, chunk, heads, ·, ·) seen as (batch, chunk, groups, heads-per-group, ·, ·),
// so that it meets its group's tensor (batch, chunk, groups, 1, ·, ·) by broadcasting.
at::Tensor by_group(const at::Tensor& t, int64_t groups);

// The chunk's decay-masked C·Bᵀ from a = dt·A (batch, chunk, head, Q) and CB (batch, chunk, group,
// Q, Q), each head reading its group's CB:
struct MaskedDecay {
  at::Tensor M;            // (…, head, Q, Q): CB[t][s]·exp(a_{s+1} + … + a_t) for s ≤ t, 0 above
  at::Tensor w;            // (…, head, Q): exp(a_{s+1} + … + a_{Q−1}), the decay from s to the chunk's end
  at::Tensor acum_exp;     // (…, head, Q): exp(a_0 + … + a_t), the decay from the chunk's start to t
  at::Tensor chunk_decay;  // (batch, chunk, head): exp(a_0 + … + a_{Q−1})
};
// The segment sums are running sums along each row (never a difference of two cumulative sums,
// which loses the small sums next to the diagonal once the cumulative sums are large).
enum class MaskImpl { Auto, Aten };  // Auto: the fused loops on CPUs, ATen ops elsewhere
MaskedDecay masked_decay(const at::Tensor& a, const at::Tensor& CB, MaskImpl impl = MaskImpl::Auto);
// Its backward from dM: d CB (summed over each group's heads) and the mask's part of d a.
void masked_decay_backward(const at::Tensor& a, const at::Tensor& CB, const at::Tensor& dM, at::Tensor& dCB,
                           at::Tensor& da, MaskImpl impl = MaskImpl::Auto);

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
