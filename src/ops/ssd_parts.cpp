// ssd_parts.cpp — the non-GEMM parts of the chunked SSD (ssd_parts.h): the decay mask as ATen ops
// and through the fused CPU loops (tasks of one (batch, chunk, group) spread over the threads), and
// the chunk-to-chunk recurrence.
#include "ssd_parts.h"

#include "cpu_capability.h"
#include "ssd_cpu_kernel.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <vector>

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

namespace {

// seg[t][s] = Σ_{s < k ≤ t} a_k: a_t copied along each row, kept where t > s, summed down the columns.
at::Tensor segment_sums(const at::Tensor& a) {
  const int64_t Q = a.size(-1);
  return a.unsqueeze(-1)
      .expand({a.size(0), a.size(1), a.size(2), Q, Q})
      .masked_fill(below_diagonal(Q, a).logical_not(), 0)
      .cumsum(-2);
}

// exp(seg) on and below the diagonal, 0 above.
at::Tensor decay_mask(const at::Tensor& seg) { return seg.exp().masked_fill_(above_diagonal(seg.size(-1), seg), 0); }

MaskedDecay masked_decay_aten(const at::Tensor& a, const at::Tensor& CB) {
  const int64_t Q = a.size(-1);
  const auto seg = segment_sums(a);
  const auto Lm = decay_mask(seg);
  MaskedDecay d;
  d.M = (by_group(Lm, CB.size(2)) * CB.unsqueeze(3)).view(Lm.sizes());
  d.w = seg.select(-2, Q - 1).exp();
  const auto acum = a.cumsum(-1);
  d.acum_exp = acum.exp();
  d.chunk_decay = acum.select(-1, Q - 1).exp();
  return d;
}

// Σ_{t ≥ k} Σ_{s < k} dseg[t][s]: the gradient of Σ dseg ∘ seg with respect to a.
at::Tensor segsum_grad(const at::Tensor& dseg) {
  const int64_t Q = dseg.size(-1);
  const auto before = at::constant_pad_nd(dseg.narrow(-1, 0, Q - 1), {1, 0}).cumsum(-1);  // Σ_{s<k} dseg[t][s]
  return before.masked_fill(above_diagonal(Q, dseg), 0).sum(-2);                          // Σ over t ≥ k
}

void masked_decay_backward_aten(const at::Tensor& a, const at::Tensor& CB, const at::Tensor& dM, at::Tensor& dCB,
                                at::Tensor& da) {
  const int64_t groups = CB.size(2);
  const auto Lm = decay_mask(segment_sums(a));
  const auto dM_Lm = dM * Lm;
  dCB = by_group(dM_Lm, groups).sum(3);
  da = segsum_grad((by_group(dM_Lm, groups) * CB.unsqueeze(3)).view(Lm.sizes()));  // d seg = dM ∘ CB ∘ Lm
}

template <typename T>
ssd_cpu::MaskArgs<T> mask_args(const at::Tensor& a, const at::Tensor& CB) {
  ssd_cpu::MaskArgs<T> p;
  p.tasks = CB.size(0) * CB.size(1) * CB.size(2);
  p.heads = a.size(2) / CB.size(2);
  p.Q = a.size(3);
  p.a = a.data_ptr<T>();
  p.CB = CB.data_ptr<T>();
  return p;
}

template <typename T, typename Run>
void run_mask_tasks(const ssd_cpu::MaskArgs<T>& p, const Run& run) {
  at::parallel_for(0, p.tasks, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<T> scratch;
    const auto size = static_cast<size_t>(ssd_cpu::mask_scratch_size(p.Q));
    if (scratch.size() < size) scratch.resize(size);
    run(p, begin, end, scratch.data());
  });
}

// The compiled loops of this CPU's capability.
template <typename T>
void mask_tasks(const ssd_cpu::MaskArgs<T>& p, bool backward) {
  switch (cpu_capability()) {
#ifdef HGPT_SCAN_HAVE_AVX512
    case Capability::Avx512:
      return backward ? run_mask_tasks(p, [](const auto&... x) { ssd_cpu::AVX512::mask_bwd_tasks(x...); })
                      : run_mask_tasks(p, [](const auto&... x) { ssd_cpu::AVX512::mask_fwd_tasks(x...); });
#endif
#ifdef HGPT_SCAN_HAVE_AVX2
    case Capability::Avx2:
      return backward ? run_mask_tasks(p, [](const auto&... x) { ssd_cpu::AVX2::mask_bwd_tasks(x...); })
                      : run_mask_tasks(p, [](const auto&... x) { ssd_cpu::AVX2::mask_fwd_tasks(x...); });
#endif
    default:
      return backward ? run_mask_tasks(p, [](const auto&... x) { ssd_cpu::DEFAULT::mask_bwd_tasks(x...); })
                      : run_mask_tasks(p, [](const auto&... x) { ssd_cpu::DEFAULT::mask_fwd_tasks(x...); });
  }
}

bool fused(const at::Tensor& a, MaskImpl impl) { return impl == MaskImpl::Auto && a.is_cpu(); }

}  // namespace

at::Tensor by_group(const at::Tensor& t, int64_t groups) {
  return t.view({t.size(0), t.size(1), groups, t.size(2) / groups, t.size(3), t.size(4)});
}

MaskedDecay masked_decay(const at::Tensor& a_in, const at::Tensor& CB_in, MaskImpl impl) {
  if (!fused(a_in, impl)) return masked_decay_aten(a_in, CB_in);
  const auto a = a_in.contiguous(), CB = CB_in.contiguous();
  MaskedDecay d;
  d.M = at::empty({a.size(0), a.size(1), a.size(2), a.size(3), a.size(3)}, a.options());
  d.w = at::empty_like(a);
  d.acum_exp = at::empty_like(a);
  d.chunk_decay = at::empty({a.size(0), a.size(1), a.size(2)}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "ssd masked_decay", [&] {
    auto p = mask_args<scalar_t>(a, CB);
    p.M = d.M.data_ptr<scalar_t>();
    p.w = d.w.data_ptr<scalar_t>();
    p.acum_exp = d.acum_exp.data_ptr<scalar_t>();
    p.chunk_decay = d.chunk_decay.data_ptr<scalar_t>();
    mask_tasks(p, /*backward=*/false);
  });
  return d;
}

void masked_decay_backward(const at::Tensor& a_in, const at::Tensor& CB_in, const at::Tensor& dM_in, at::Tensor& dCB,
                           at::Tensor& da, MaskImpl impl) {
  if (!fused(a_in, impl)) return masked_decay_backward_aten(a_in, CB_in, dM_in, dCB, da);
  const auto a = a_in.contiguous(), CB = CB_in.contiguous(), dM = dM_in.contiguous();
  dCB = at::empty_like(CB);
  da = at::empty_like(a);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "ssd masked_decay_backward", [&] {
    auto p = mask_args<scalar_t>(a, CB);
    p.dM = dM.data_ptr<scalar_t>();
    p.dCB = dCB.data_ptr<scalar_t>();
    p.da = da.data_ptr<scalar_t>();
    mask_tasks(p, /*backward=*/true);
  });
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
