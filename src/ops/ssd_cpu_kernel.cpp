// ssd_cpu_kernel.cpp — the chunked SSD's decay mask, fused (ssd_cpu_kernel.h). Compiled once per
// CPU capability; CPU_CAPABILITY names the namespace and selects at::vec::Vectorized's
// implementation (its exp is Sleef's on AVX2/AVX-512).
//
// Per head, row t of the chunk's segment sums is the previous row plus a_t left of the diagonal:
//   seg_t[s] = seg_{t−1}[s] + a_t (s < t),  seg_t[t] = 0,  so seg_t[s] = a_{s+1} + … + a_t
// — a running sum, the stable form (no difference of two cumulative sums). The forward writes
// M[t][s] = CB[t][s]·exp(seg_t[s]); the backward recomputes the same rows.
#include "src/ops/ssd_cpu_kernel.h"

#include "src/ops/cpu_vec.h"

#include <cmath>

namespace hgpt::ops::ssd_cpu {
namespace CPU_CAPABILITY {
namespace {

using cpu_vec::CPU_CAPABILITY::load;
using cpu_vec::CPU_CAPABILITY::store;
using cpu_vec::CPU_CAPABILITY::Vec;

// f(i, lanes) over [0, n): whole vectors, then a tail.
template <typename T, typename F>
inline void for_vectors(int64_t n, const F& f) {
  constexpr int64_t W = Vec<T>::size();
  int64_t i = 0;
  for (; i + W <= n; i += W) f(i, W);
  if (i < n) f(i, n - i);
}

template <typename T>
inline T horizontal_sum(const Vec<T>& v) {
  T lanes[Vec<T>::size()];
  v.store(lanes);
  T total = T(0);
  for (int64_t i = 0; i < Vec<T>::size(); ++i) total += lanes[i];
  return total;
}

// seg[0..t) += a_t; seg[t] = 0: row t of the segment sums from row t − 1.
template <typename T>
inline void next_row(T* seg, int64_t t, T at) {
  const Vec<T> add(at);
  for_vectors<T>(t, [&](int64_t s, int64_t n) { store(load(seg + s, n) + add, seg + s, n); });
  seg[t] = T(0);
}

template <typename T>
void mask_fwd_task(const MaskArgs<T>& p, int64_t task, T* seg) {
  const int64_t Q = p.Q;
  const T* CB = p.CB + task * Q * Q;
  for (int64_t h = 0; h < p.heads; ++h) {
    const int64_t row = task * p.heads + h;
    const T* a = p.a + row * Q;
    T* M = p.M + row * Q * Q;
    T acum = T(0);
    for (int64_t t = 0; t < Q; ++t) {
      next_row(seg, t, a[t]);
      T* out = M + t * Q;
      const T* cb = CB + t * Q;
      for_vectors<T>(t + 1, [&](int64_t s, int64_t n) { store(load(cb + s, n) * load(seg + s, n).exp(), out + s, n); });
      for (int64_t s = t + 1; s < Q; ++s) out[s] = T(0);
      acum += a[t];
      p.acum_exp[row * Q + t] = std::exp(acum);
    }
    for_vectors<T>(Q, [&](int64_t s, int64_t n) { store(load(seg + s, n).exp(), p.w + row * Q + s, n); });
    p.chunk_decay[row] = std::exp(acum);
  }
}

// dCB = Σ_heads dM ∘ Lm; da_k = Σ_{t ≥ k} Σ_{s < k} E[t][s] with E = dM ∘ M = dM ∘ CB ∘ Lm.
// E's rows come out in increasing t (the running sums go that way); da is then one pass over
// them in decreasing t: G[s] = Σ_{t ≥ k} E[t][s], da_k = Σ_{s < k} G[s].
template <typename T>
void mask_bwd_task(const MaskArgs<T>& p, int64_t task, T* seg, T* E, T* G) {
  const int64_t Q = p.Q;
  const T* CB = p.CB + task * Q * Q;
  T* dCB = p.dCB + task * Q * Q;
  for (int64_t h = 0; h < p.heads; ++h) {
    const int64_t row = task * p.heads + h;
    const T* a = p.a + row * Q;
    const T* dM = p.dM + row * Q * Q;
    for (int64_t t = 0; t < Q; ++t) {
      next_row(seg, t, a[t]);
      const T* dm = dM + t * Q;
      const T* cb = CB + t * Q;
      T* dcb = dCB + t * Q;
      T* e = E + t * Q;
      for_vectors<T>(t + 1, [&](int64_t s, int64_t n) {
        const Vec<T> dmL = load(dm + s, n) * load(seg + s, n).exp();
        store(dmL * load(cb + s, n), e + s, n);
        store(h == 0 ? dmL : load(dcb + s, n) + dmL, dcb + s, n);
      });
      if (h == 0) {
        for (int64_t s = t + 1; s < Q; ++s) dcb[s] = T(0);
      }
    }
    for (int64_t s = 0; s < Q; ++s) G[s] = T(0);
    T* da = p.da + row * Q;
    for (int64_t t = Q - 1; t >= 0; --t) {
      const T* e = E + t * Q;
      Vec<T> sum(T(0));
      for_vectors<T>(t, [&](int64_t s, int64_t n) {
        const Vec<T> g = load(G + s, n) + load(e + s, n);
        store(g, G + s, n);
        sum = sum + g;  // the tail's missing lanes load as 0
      });
      da[t] = horizontal_sum(sum);
    }
  }
}

}  // namespace

void mask_fwd_tasks(const MaskArgs<float>& a, int64_t begin, int64_t end, float* scratch) {
  for (int64_t task = begin; task < end; ++task) mask_fwd_task(a, task, scratch);
}
void mask_fwd_tasks(const MaskArgs<double>& a, int64_t begin, int64_t end, double* scratch) {
  for (int64_t task = begin; task < end; ++task) mask_fwd_task(a, task, scratch);
}
void mask_bwd_tasks(const MaskArgs<float>& a, int64_t begin, int64_t end, float* scratch) {
  for (int64_t task = begin; task < end; ++task)
    mask_bwd_task(a, task, scratch, scratch + a.Q + 32, scratch + a.Q + 32 + a.Q * a.Q);
}
void mask_bwd_tasks(const MaskArgs<double>& a, int64_t begin, int64_t end, double* scratch) {
  for (int64_t task = begin; task < end; ++task)
    mask_bwd_task(a, task, scratch, scratch + a.Q + 32, scratch + a.Q + 32 + a.Q * a.Q);
}

}  // namespace CPU_CAPABILITY
}  // namespace hgpt::ops::ssd_cpu
