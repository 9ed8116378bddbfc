// ssd_parts.cpp — the non-GEMM parts of the chunked SSD (ssd_parts.h) as ATen ops, and the switch
// to the fused CPU loops.
#include "ssd_parts.h"

#include <ATen/ATen.h>

namespace hgpt::ops::detail {
namespace {

// (Q, Q) masks: t > s (strictly below the diagonal) and t < s (above it).
at::Tensor below_diagonal(int64_t Q, const at::Tensor& like) {
  return at::ones({Q, Q}, like.options().dtype(at::kBool)).tril(-1);
}
at::Tensor above_diagonal(int64_t Q, const at::Tensor& like) {
  return at::ones({Q, Q}, like.options().dtype(at::kBool)).triu(1);
}

}  // namespace

DecayTerms decay_terms(const at::Tensor& dt, const at::Tensor& A) {
  const int64_t Q = dt.size(-1);
  const auto a = dt * A.view({1, 1, -1, 1});
  // seg[t][s] = Σ_{s < k ≤ t} a_k: a_t copied along each row, kept where t > s, summed down the columns.
  const auto seg = a.unsqueeze(-1)
                       .expand({a.size(0), a.size(1), a.size(2), Q, Q})
                       .masked_fill(below_diagonal(Q, a).logical_not(), 0)
                       .cumsum(-2);
  DecayTerms d;
  d.Lm = seg.exp().masked_fill_(above_diagonal(Q, a), 0);
  d.w = seg.select(-2, Q - 1).exp();
  const auto acum = a.cumsum(-1);
  d.acum_exp = acum.exp();
  d.chunk_decay = acum.select(-1, Q - 1).exp();
  return d;
}

at::Tensor segsum_grad(const at::Tensor& dseg) {
  const int64_t Q = dseg.size(-1);
  const auto before = at::constant_pad_nd(dseg.narrow(-1, 0, Q - 1), {1, 0}).cumsum(-1);  // Σ_{s<k} dseg[t][s]
  return before.masked_fill(above_diagonal(Q, dseg), 0).sum(-2);                          // Σ over t ≥ k
}

at::Tensor suffix_sum(const at::Tensor& v) { return v.flip(-1).cumsum(-1).flip(-1); }

at::Tensor exclusive_prefix_sum(const at::Tensor& v) {
  return at::constant_pad_nd(v.narrow(-1, 0, v.size(-1) - 1), {1, 0}).cumsum(-1);
}

at::Tensor chunk_recurrence(const at::Tensor& own, const at::Tensor& chunk_decay, const at::Tensor& initial,
                            at::Tensor& final_state) {
  const int64_t chunks = own.size(1);
  auto states = at::empty_like(own);
  auto h = initial.defined() ? initial.clone() : at::zeros_like(own.select(1, 0));
  for (int64_t c = 0; c < chunks; ++c) {
    states.select(1, c).copy_(h);
    h = h * chunk_decay.select(1, c).unsqueeze(-1).unsqueeze(-1) + own.select(1, c);
  }
  final_state = h;
  return states;
}

at::Tensor chunk_recurrence_backward(const at::Tensor& dH, const at::Tensor& states, const at::Tensor& chunk_decay,
                                     const at::Tensor& dfinal, at::Tensor& dinitial, at::Tensor& dlog_decay) {
  const int64_t chunks = dH.size(1);
  auto d_own = at::empty_like(dH);
  dlog_decay = at::empty_like(chunk_decay);
  auto g = dfinal.defined() ? dfinal.clone() : at::zeros_like(dH.select(1, 0));  // d H_{c+1}
  for (int64_t c = chunks - 1; c >= 0; --c) {
    const auto decay = chunk_decay.select(1, c);
    d_own.select(1, c).copy_(g);
    dlog_decay.select(1, c).copy_(decay * (g * states.select(1, c)).sum({-1, -2}));
    g = g * decay.unsqueeze(-1).unsqueeze(-1) + dH.select(1, c);
  }
  dinitial = g;
  return d_own;
}

}  // namespace hgpt::ops::detail
