// selective_scan_cpu_kernel.cpp — the fused CPU selective scan's loops, vectorised across
// channels with ATen's at::vec::Vectorized (its exp is Sleef's on AVX2/AVX-512).
//
// Built once per CPU capability: CPU_CAPABILITY names the namespace (DEFAULT, AVX2, AVX512) and
// CPU_CAPABILITY_AVX2/AVX512 select the Vectorized implementation, exactly as in ATen's own
// kernels. Keep this file free of ATen tensors and of standard-library templates: an inline
// function instantiated here is compiled with this object's instruction set, and the linker
// could pick that copy for the whole program.
//
// Per task (batch row b, channels [d0, d1)), vectors of W channels:
//   forward   h[n] = exp(Δ·A[n])·h[n] + Δ·u·B[n];  y = Σ_n C[n]·h[n] + D·u;  out = y·SiLU(z)
//             (at a reset step the previous state reads as 0: h[n] = Δ·u·B[n])
//   backward  per chunk (last first): recompute the chunk's states and decays from its
//             checkpoint, then walk it backwards carrying q[n] = a_{t+1}·∂L/∂h_{t+1}.
#include "src/ops/selective_scan_cpu_kernel.h"

#include "src/ops/cpu_vec.h"

#include <ATen/cpu/vec/vec.h>

#ifndef CPU_CAPABILITY
#error "compile with -DCPU_CAPABILITY=DEFAULT|AVX2|AVX512"
#endif

namespace hgpt::ops::cpu_scan {
namespace CPU_CAPABILITY {
namespace {

using cpu_vec::CPU_CAPABILITY::load;
using cpu_vec::CPU_CAPABILITY::store;
using cpu_vec::CPU_CAPABILITY::Vec;

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

// Loads/stores of `n` channels (cpu_vec.h) take a full vector or the tail of the task's channel
// range: the missing lanes read as 0, which keeps their states and gradients 0.
template <typename T>
inline Vec<T> load_or_zero(const T* p, int64_t n) {
  return p ? load(p, n) : Vec<T>(T(0));
}

// torch's softplus (beta 1, threshold 20) and its derivative, so results match the reference.
template <typename T>
inline Vec<T> sigmoid(const Vec<T>& x) {
  return Vec<T>(T(1)) / (Vec<T>(T(1)) + x.neg().exp());
}
template <typename T>
inline Vec<T> softplus(const Vec<T>& x) {
  return Vec<T>::blendv(x.exp().log1p(), x, x > Vec<T>(T(20)));
}
template <typename T>
inline Vec<T> softplus_grad(const Vec<T>& x) {
  return Vec<T>::blendv(sigmoid(x), Vec<T>(T(1)), x > Vec<T>(T(20)));
}

// The channel block of one task and its vectors.
struct Block {
  int64_t b, task_in_batch, d0, d1, n_vec;
  int64_t lanes(int64_t v, int64_t W) const { return min_i64(W, d1 - (d0 + v * W)); }
};

template <typename T>
Block block_of(const ScanArgs<T>& a, int64_t task) {
  Block k;
  k.b = task / a.tasks_per_batch;
  k.task_in_batch = task % a.tasks_per_batch;
  k.d0 = k.task_in_batch * kTaskChannels;
  k.d1 = min_i64(a.dim, k.d0 + kTaskChannels);
  k.n_vec = (k.d1 - k.d0 + Vec<T>::size() - 1) / Vec<T>::size();
  return k;
}

// A of the block as vectors: As[(v·N + n)·W ...] = A[d0 + v·W ..., n], tails 0.
template <typename T>
void gather_A(const ScanArgs<T>& a, const Block& k, T* As) {
  constexpr int64_t W = Vec<T>::size();
  const int64_t N = a.dstate;
  for (int64_t v = 0; v < k.n_vec; ++v) {
    for (int64_t n = 0; n < N; ++n) {
      load(a.A_t + n * a.dim + k.d0 + v * W, k.lanes(v, W)).store(As + (v * N + n) * W);
    }
  }
}

// Δ for the vector of channels at row (b, t): softplus(delta + bias) or delta + bias.
template <typename T>
inline Vec<T> raw_delta(const ScanArgs<T>& a, int64_t b, int64_t t, int64_t d, int64_t n) {
  return load(a.delta.row(b, t) + d, n) + load_or_zero(a.bias ? a.bias + d : nullptr, n);
}

// u and Δ (softplus applied when asked) for the vector of channels at row (b, t).
template <typename T>
struct StepInputs {
  Vec<T> u, dt;
};
template <typename T>
inline StepInputs<T> step_inputs(const ScanArgs<T>& a, int64_t b, int64_t t, int64_t d, int64_t n) {
  const Vec<T> dt = raw_delta(a, b, t, d, n);
  return {load(a.u.row(b, t) + d, n), a.softplus ? softplus(dt) : dt};
}

// Whether the state starts afresh at step t of batch row b (a document boundary).
template <typename T>
inline bool resets_at(const ScanArgs<T>& a, int64_t b, int64_t t) {
  return a.reset && a.reset[b * a.seqlen + t];
}

// One step of the recurrence for a vector of channels, over the N states:
//   h[n] = exp(Δ·A[n])·h_prev[n] + Δ·u·B[n];  returns y + Σ_n C[n]·h[n].
// h_next may be h_prev (the forward updates in place); the backward's recompute also keeps each
// decay exp(Δ·A[n]) in e. At a reset the callers pass zeros as h_prev (a zero carry) and the
// backward zeroes that step's decays, so nothing flows back to earlier steps; this loop stays the
// same for every step.
template <typename T, bool kKeepDecays>
inline Vec<T> recurrence_step(const Vec<T>& dt, const Vec<T>& dtu, Vec<T> y, const T* Av, const T* h_prev, T* h_next,
                              T* e, const T* Brow, const T* Crow, int64_t N) {
  constexpr int64_t W = Vec<T>::size();
  for (int64_t n = 0; n < N; ++n) {
    const Vec<T> en = (dt * Vec<T>::loadu(Av + n * W)).exp_u20();
    if (kKeepDecays) en.store(e + n * W);
    const Vec<T> h = at::vec::fmadd(en, Vec<T>::loadu(h_prev + n * W), dtu * Vec<T>(Brow[n]));
    h.store(h_next + n * W);
    y = at::vec::fmadd(Vec<T>(Crow[n]), h, y);
  }
  return y;
}

template <typename T>
void fwd_task(const ScanArgs<T>& a, int64_t task, T* scratch) {
  constexpr int64_t W = Vec<T>::size();
  const int64_t N = a.dstate, L = a.seqlen;
  const Block k = block_of(a, task);
  T* h = scratch;                       // (n_vec, N, W): the running state
  T* As = scratch + kTaskChannels * N;  // (n_vec, N, W)
  T* zeros = As + kTaskChannels * N;    // (N, W): the state before a document's first step
  gather_A(a, k, As);
  for (int64_t i = 0; i < k.n_vec * N * W; ++i) h[i] = T(0);
  for (int64_t i = 0; i < N * W; ++i) zeros[i] = T(0);
  for (int64_t c = 0; c < a.n_chunks; ++c) {
    T* ckpt = a.checkpoints + (k.b * a.n_chunks + c) * N * a.dim_padded + k.d0;
    for (int64_t v = 0; v < k.n_vec; ++v) {
      for (int64_t n = 0; n < N; ++n) Vec<T>::loadu(h + (v * N + n) * W).store(ckpt + n * a.dim_padded + v * W);
    }
    const int64_t t_end = min_i64(L, (c + 1) * kChunk);
    for (int64_t t = c * kChunk; t < t_end; ++t) {
      const T* Brow = a.B.row(k.b, t);
      const T* Crow = a.C.row(k.b, t);
      const bool reset = resets_at(a, k.b, t);
      for (int64_t v = 0; v < k.n_vec; ++v) {
        const int64_t d = k.d0 + v * W, nl = k.lanes(v, W);
        const auto [u, dt] = step_inputs(a, k.b, t, d, nl);
        const Vec<T> dtu = dt * u;
        T* hv = h + v * N * W;
        Vec<T> y = load_or_zero(a.D ? a.D + d : nullptr, nl) * u;
        y = recurrence_step<T, false>(dt, dtu, y, As + v * N * W, reset ? zeros : hv, hv, nullptr, Brow, Crow, N);
        if (a.z.p) {
          const Vec<T> z = load(a.z.row(k.b, t) + d, nl);
          y = y * z * sigmoid(z);
        }
        store(y, a.out + (k.b * L + t) * a.dim + d, nl);
      }
    }
  }
  for (int64_t v = 0; v < k.n_vec; ++v) {
    const int64_t d = k.d0 + v * W, nl = k.lanes(v, W);
    for (int64_t n = 0; n < N; ++n)
      store(Vec<T>::loadu(h + (v * N + n) * W), a.last_state + (k.b * N + n) * a.dim + d, nl);
  }
}

template <typename T>
void bwd_task(const ScanArgs<T>& a, int64_t task, T* scratch) {
  constexpr int64_t W = Vec<T>::size();
  const int64_t N = a.dstate, L = a.seqlen, TN = kTaskChannels * N;
  const Block k = block_of(a, task);
  // Scratch, all (..., n_vec, N, W) or (..., n_vec, W) with the block's vectors packed.
  T* As = scratch;               // A
  T* H = As + TN;                // (kChunk + 1): states, H[j + 1] after step t0 + j
  T* E = H + (kChunk + 1) * TN;  // (kChunk): decays exp(Δ·A)
  T* q = E + kChunk * TN;        // gradient reaching h_t from later steps, times a_{t+1}
  T* dA = q + TN;
  T* Y = dA + TN;                             // (kChunk): y before gating
  T* DT = Y + kChunk * kTaskChannels;         // (kChunk): Δ
  T* lanes_dB = DT + kChunk * kTaskChannels;  // (kChunk, N, W): dB/dC summed over the vectors
  T* lanes_dC = lanes_dB + kChunk * N * kMaxLanes;
  T* dD = lanes_dC + kChunk * N * kMaxLanes;  // (n_vec, W)
  T* dbias = dD + kTaskChannels;
  T* zeros = dbias + kTaskChannels;  // (N, W): the state before a document's first step
  gather_A(a, k, As);
  for (int64_t i = 0; i < N * W; ++i) zeros[i] = T(0);
  const int64_t state = k.n_vec * N * W;
  for (int64_t i = 0; i < state; ++i) q[i] = dA[i] = T(0);
  for (int64_t i = 0; i < k.n_vec * W; ++i) dD[i] = dbias[i] = T(0);

  for (int64_t c = a.n_chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * kChunk, len = min_i64(L, t0 + kChunk) - t0;
    // Recompute the chunk from its checkpoint.
    const T* ckpt = a.checkpoints + (k.b * a.n_chunks + c) * N * a.dim_padded + k.d0;
    for (int64_t v = 0; v < k.n_vec; ++v) {
      for (int64_t n = 0; n < N; ++n) Vec<T>::loadu(ckpt + n * a.dim_padded + v * W).store(H + (v * N + n) * W);
    }
    for (int64_t j = 0; j < len; ++j) {
      const int64_t t = t0 + j;
      const T* Brow = a.B.row(k.b, t);
      const T* Crow = a.C.row(k.b, t);
      const bool reset = resets_at(a, k.b, t);
      for (int64_t v = 0; v < k.n_vec; ++v) {
        const int64_t d = k.d0 + v * W, nl = k.lanes(v, W);
        const auto [u, dt] = step_inputs(a, k.b, t, d, nl);
        dt.store(DT + (j * k.n_vec + v) * W);
        const Vec<T> dtu = dt * u;
        const T* Av = As + v * N * W;
        const T* hp = H + j * state + v * N * W;
        T* hn = H + (j + 1) * state + v * N * W;
        T* e = E + j * state + v * N * W;
        Vec<T> y = load_or_zero(a.D ? a.D + d : nullptr, nl) * u;
        y = recurrence_step<T, true>(dt, dtu, y, Av, reset ? zeros : hp, hn, e, Brow, Crow, N);
        if (reset) {  // no decay into this step: nothing flows back past it
          for (int64_t n = 0; n < N; ++n) Vec<T>(T(0)).store(e + n * W);
        }
        y.store(Y + (j * k.n_vec + v) * W);
      }
    }
    // Walk the chunk backwards.
    for (int64_t i = 0; i < len * N * W; ++i) lanes_dB[i] = lanes_dC[i] = T(0);
    for (int64_t j = len - 1; j >= 0; --j) {
      const int64_t t = t0 + j;
      const T* Brow = a.B.row(k.b, t);
      const T* Crow = a.C.row(k.b, t);
      T* ldB = lanes_dB + j * N * W;
      T* ldC = lanes_dC + j * N * W;
      for (int64_t v = 0; v < k.n_vec; ++v) {
        const int64_t d = k.d0 + v * W, nl = k.lanes(v, W);
        const Vec<T> u = load(a.u.row(k.b, t) + d, nl);
        const Vec<T> dt = Vec<T>::loadu(DT + (j * k.n_vec + v) * W), dtu = dt * u;
        Vec<T> dy = load(a.dout.row(k.b, t) + d, nl);
        if (a.z.p) {
          const Vec<T> z = load(a.z.row(k.b, t) + d, nl), sz = sigmoid(z);
          const Vec<T> y = Vec<T>::loadu(Y + (j * k.n_vec + v) * W);
          store(dy * y * sz * (Vec<T>(T(1)) + z * (Vec<T>(T(1)) - sz)), a.dz + (k.b * L + t) * a.dim + d, nl);
          dy = dy * z * sz;
        }
        T* dDv = dD + v * W;
        at::vec::fmadd(dy, u, Vec<T>::loadu(dDv)).store(dDv);
        const T* Av = As + v * N * W;
        const T* hp = H + j * state + v * N * W;
        const T* hn = H + (j + 1) * state + v * N * W;
        const T* e = E + j * state + v * N * W;
        T* qv = q + v * N * W;
        T* dAv = dA + v * N * W;
        Vec<T> sum_gB(T(0)), sum_ghaA(T(0));
        for (int64_t n = 0; n < N; ++n) {
          const Vec<T> en = Vec<T>::loadu(e + n * W);
          const Vec<T> gh = at::vec::fmadd(Vec<T>(Crow[n]), dy, Vec<T>::loadu(qv + n * W));  // ∂L/∂h_t
          at::vec::fmadd(dy, Vec<T>::loadu(hn + n * W), Vec<T>::loadu(ldC + n * W)).store(ldC + n * W);
          at::vec::fmadd(gh, dtu, Vec<T>::loadu(ldB + n * W)).store(ldB + n * W);
          sum_gB = at::vec::fmadd(gh, Vec<T>(Brow[n]), sum_gB);
          const Vec<T> gha = gh * Vec<T>::loadu(hp + n * W) * en;  // ∂L/∂a_t · a_t
          at::vec::fmadd(gha, dt, Vec<T>::loadu(dAv + n * W)).store(dAv + n * W);
          sum_ghaA = at::vec::fmadd(gha, Vec<T>::loadu(Av + n * W), sum_ghaA);
          (gh * en).store(qv + n * W);
        }
        const Vec<T> Dv = load_or_zero(a.D ? a.D + d : nullptr, nl);
        store(at::vec::fmadd(dy, Dv, sum_gB * dt), a.du + (k.b * L + t) * a.dim + d, nl);
        Vec<T> ddt = at::vec::fmadd(sum_gB, u, sum_ghaA);
        if (a.softplus) ddt = ddt * softplus_grad(raw_delta(a, k.b, t, d, nl));
        store(ddt, a.ddelta + (k.b * L + t) * a.dim + d, nl);
        T* dbv = dbias + v * W;
        (Vec<T>::loadu(dbv) + ddt).store(dbv);
      }
    }
    // This chunk's dB/dC: the lanes summed in a fixed order into the task's partial rows.
    const int64_t part = k.b * a.tasks_per_batch + k.task_in_batch;
    for (int64_t j = 0; j < len; ++j) {
      T* dBrow = a.dB_part + (part * L + t0 + j) * N;
      T* dCrow = a.dC_part + (part * L + t0 + j) * N;
      for (int64_t n = 0; n < N; ++n) {
        const T* lb = lanes_dB + (j * N + n) * W;
        const T* lc = lanes_dC + (j * N + n) * W;
        T sb = lb[0], sc = lc[0];
        for (int64_t w = 1; w < W; ++w) {
          sb += lb[w];
          sc += lc[w];
        }
        dBrow[n] = sb;
        dCrow[n] = sc;
      }
    }
  }
  for (int64_t v = 0; v < k.n_vec; ++v) {
    const int64_t d = k.d0 + v * W, nl = k.lanes(v, W);
    for (int64_t n = 0; n < N; ++n)
      store(Vec<T>::loadu(dA + (v * N + n) * W), a.dA_part + (k.b * N + n) * a.dim + d, nl);
    store(Vec<T>::loadu(dD + v * W), a.dD_part + k.b * a.dim + d, nl);
    store(Vec<T>::loadu(dbias + v * W), a.dbias_part + k.b * a.dim + d, nl);
  }
}

}  // namespace

void fwd_tasks(const ScanArgs<float>& a, int64_t begin, int64_t end, float* scratch) {
  for (int64_t i = begin; i < end; ++i) fwd_task(a, i, scratch);
}
void fwd_tasks(const ScanArgs<double>& a, int64_t begin, int64_t end, double* scratch) {
  for (int64_t i = begin; i < end; ++i) fwd_task(a, i, scratch);
}
void bwd_tasks(const ScanArgs<float>& a, int64_t begin, int64_t end, float* scratch) {
  for (int64_t i = begin; i < end; ++i) bwd_task(a, i, scratch);
}
void bwd_tasks(const ScanArgs<double>& a, int64_t begin, int64_t end, double* scratch) {
  for (int64_t i = begin; i < end; ++i) bwd_task(a, i, scratch);
}

}  // namespace CPU_CAPABILITY
}  // namespace hgpt::ops::cpu_scan
