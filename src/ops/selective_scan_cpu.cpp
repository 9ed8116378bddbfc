// selective_scan_cpu.cpp — the fused CPU selective scan (forward and backward); the design is in
// docs/ARCHITECTURE.md, "Selective scan".
//
// Work is split over (batch, group of kGroupChannels channels) with at::parallel_for; each task
// walks its channels one after another, the sequence in chunks of kCpuScanChunk steps, the state
// (N values) in a small buffer whose loops over n are written branch-free so the compiler
// vectorises them (a polynomial exp stands in for std::exp, which would not vectorise).
// Forward saves the state at the start of every chunk; backward recomputes the states of one
// chunk from that checkpoint (they stay in L1/L2), then runs the reverse scan over it.
// dB/dC are summed over channels: each channel group writes its own partial buffer and the
// partials are added in a fixed order, so results do not depend on the number of threads.
#include "selective_scan_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace hgpt::ops::detail {
namespace {

// Channels per task: partial dB/dC buffers are (batch, groups, L, N), summed afterwards.
constexpr int64_t kGroupChannels = 32;

// exp(x) = 2^k · e^r with k = round(x / ln 2) and |r| ≤ ln2/2; a degree-7 polynomial for e^r
// (truncation error < 1e-8 relative). Branch-free so loops over the state vectorise. Inputs are
// clamped to [-87, 88] (the normal fp32 range); below that the true value is < 2e-38 anyway.
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // Adding and removing 1.5·2^23 rounds to the nearest integer (round-to-nearest mode).
  const float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - kf * 0.693145751953125f) - kf * 1.428606820309417232e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t k = static_cast<int32_t>(kf);
  const uint32_t bits = static_cast<uint32_t>(k + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}
inline double exp_approx(double x) { return std::exp(x); }  // fp64 is for exactness, not speed

// torch's softplus (beta 1, threshold 20) and its derivative, so results match the reference.
template <typename T>
inline T softplus(T x) { return x > T(20) ? x : std::log1p(std::exp(x)); }
template <typename T>
inline T softplus_grad(T x) { return x > T(20) ? T(1) : T(1) / (T(1) + std::exp(-x)); }
template <typename T>
inline T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

// Raw pointers to the inputs converted to the compute dtype, B and C transposed to (B, L, N) so
// that the state loop reads contiguous memory.
template <typename T>
struct CpuScanArgs {
  int64_t batch, dim, seqlen, dstate, n_chunks;
  const T* u;      // (B, D, L)
  const T* delta;  // (B, D, L)
  const T* z;      // (B, D, L) or null
  const T* A;      // (D, N)
  const T* Bt;     // (B, L, N)
  const T* Ct;     // (B, L, N)
  const T* Dsk;    // (D) or null
  const T* bias;   // (D) or null
  bool use_softplus;

  T dt_at(int64_t d, T raw) const {
    const T x = raw + (bias ? bias[d] : T(0));
    return use_softplus ? softplus(x) : x;
  }
};

struct Prepared {
  at::Tensor u, delta, z, A, Bt, Ct, D, bias;
};

Prepared prepare(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                 const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                 const at::Tensor& z, const at::Tensor& delta_bias, at::ScalarType compute) {
  auto conv = [compute](const at::Tensor& t) {
    return t.defined() ? t.to(compute).contiguous() : at::Tensor();
  };
  return {conv(u), conv(delta), conv(z), conv(A), conv(B.transpose(1, 2)), conv(C.transpose(1, 2)),
          conv(D), conv(delta_bias)};
}

template <typename T>
CpuScanArgs<T> make_args(const Prepared& p, bool delta_softplus) {
  CpuScanArgs<T> a;
  a.batch = p.u.size(0);
  a.dim = p.u.size(1);
  a.seqlen = p.u.size(2);
  a.dstate = p.A.size(1);
  a.n_chunks = (a.seqlen + kCpuScanChunk - 1) / kCpuScanChunk;
  auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; };
  a.u = ptr(p.u);
  a.delta = ptr(p.delta);
  a.z = ptr(p.z);
  a.A = ptr(p.A);
  a.Bt = ptr(p.Bt);
  a.Ct = ptr(p.Ct);
  a.Dsk = ptr(p.D);
  a.bias = ptr(p.bias);
  a.use_softplus = delta_softplus;
  return a;
}

// One channel's forward over the whole sequence: writes out (pre-cast), the checkpoints and
// the last state. `h` and `acc` are N-sized scratch buffers.
template <typename T>
void forward_channel(const CpuScanArgs<T>& a, int64_t b, int64_t d, T* out, T* ckpt, T* last,
                     T* __restrict h, T* __restrict acc) {
  const int64_t N = a.dstate, L = a.seqlen, row = (b * a.dim + d) * L;
  const T* __restrict Ad = a.A + d * N;
  const T Dd = a.Dsk ? a.Dsk[d] : T(0);
  std::fill(h, h + N, T(0));
  for (int64_t c = 0; c < a.n_chunks; ++c) {
    std::copy(h, h + N, ckpt + c * N);
    const int64_t t_end = std::min(L, (c + 1) * kCpuScanChunk);
    for (int64_t t = c * kCpuScanChunk; t < t_end; ++t) {
      const T ut = a.u[row + t];
      const T dt = a.dt_at(d, a.delta[row + t]);
      const T dtu = dt * ut;
      const T* __restrict Brow = a.Bt + (b * L + t) * N;
      const T* __restrict Crow = a.Ct + (b * L + t) * N;
      for (int64_t n = 0; n < N; ++n) {
        h[n] = exp_approx(dt * Ad[n]) * h[n] + dtu * Brow[n];
        acc[n] = Crow[n] * h[n];
      }
      T y = Dd * ut;
      for (int64_t n = 0; n < N; ++n) y += acc[n];
      if (a.z) {
        const T zt = a.z[row + t];
        y *= zt * sigmoid(zt);
      }
      out[row + t] = y;
    }
  }
  std::copy(h, h + N, last);
}

// Per-task scratch of the backward: one chunk of recomputed states and decays.
template <typename T>
struct BwdScratch {
  std::vector<T> H, E, dt, y, q, gB, ghaA, dA;
  explicit BwdScratch(int64_t N)
      : H((kCpuScanChunk + 1) * N), E(kCpuScanChunk * N), dt(kCpuScanChunk), y(kCpuScanChunk),
        q(N), gB(N), ghaA(N), dA(N) {}
};

// Pointers of the backward's outputs (compute dtype). dBt/dCt point at this task's partial
// (L, N) buffers; dA_part/dD_part/dbias_part at per-(batch, channel) partials.
template <typename T>
struct CpuScanGradPtrs {
  const T* dout;
  T *du, *ddelta, *dz, *dBt, *dCt, *dA_part, *dD_part, *dbias_part;
};

// One channel's backward: per chunk (last first) recompute states from the checkpoint, then walk
// the chunk backwards. q[n] carries a_{t+1}·∂L/∂h_{t+1}, the gradient reaching h_t from later steps.
template <typename T>
void backward_channel(const CpuScanArgs<T>& a, const CpuScanGradPtrs<T>& g, int64_t b, int64_t d,
                      const T* ckpt, BwdScratch<T>& s) {
  const int64_t N = a.dstate, L = a.seqlen, row = (b * a.dim + d) * L;
  const T* __restrict Ad = a.A + d * N;
  const T Dd = a.Dsk ? a.Dsk[d] : T(0);
  T* __restrict q = s.q.data();
  T* __restrict dA = s.dA.data();
  T* __restrict gB = s.gB.data();
  T* __restrict ghaA = s.ghaA.data();
  std::fill(s.q.begin(), s.q.end(), T(0));
  std::fill(s.dA.begin(), s.dA.end(), T(0));
  T dD = 0, dbias = 0;
  for (int64_t c = a.n_chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * kCpuScanChunk, len = std::min(L, t0 + kCpuScanChunk) - t0;
    // Recompute the chunk: H[j+1] = state after step t0+j, H[0] = checkpoint, E[j] = decay.
    std::copy(ckpt + c * N, ckpt + (c + 1) * N, s.H.begin());
    for (int64_t j = 0; j < len; ++j) {
      const int64_t t = t0 + j;
      const T ut = a.u[row + t];
      const T dt = a.dt_at(d, a.delta[row + t]);
      const T dtu = dt * ut;
      s.dt[j] = dt;
      const T* __restrict Brow = a.Bt + (b * L + t) * N;
      const T* __restrict Crow = a.Ct + (b * L + t) * N;
      const T* __restrict hp = s.H.data() + j * N;
      T* __restrict hn = s.H.data() + (j + 1) * N;
      T* __restrict e = s.E.data() + j * N;
      for (int64_t n = 0; n < N; ++n) {
        e[n] = exp_approx(dt * Ad[n]);
        hn[n] = e[n] * hp[n] + dtu * Brow[n];
      }
      if (a.z) {  // y before gating, for dz
        T y = Dd * ut;
        for (int64_t n = 0; n < N; ++n) y += Crow[n] * hn[n];
        s.y[j] = y;
      }
    }
    for (int64_t j = len - 1; j >= 0; --j) {
      const int64_t t = t0 + j;
      const T ut = a.u[row + t], dt = s.dt[j], dtu = dt * ut;
      T dy = g.dout[row + t];
      if (a.z) {
        const T zt = a.z[row + t], sz = sigmoid(zt);
        g.dz[row + t] = dy * s.y[j] * sz * (T(1) + zt * (T(1) - sz));
        dy *= zt * sz;
      }
      dD += dy * ut;
      const T* __restrict Brow = a.Bt + (b * L + t) * N;
      const T* __restrict Crow = a.Ct + (b * L + t) * N;
      T* __restrict dBrow = g.dBt + t * N;
      T* __restrict dCrow = g.dCt + t * N;
      const T* __restrict hp = s.H.data() + j * N;
      const T* __restrict hn = s.H.data() + (j + 1) * N;
      const T* __restrict e = s.E.data() + j * N;
      // Every iteration touches index n only, and the scratch, input and gradient buffers are
      // distinct allocations: tell GCC so, or it keeps this loop scalar.
#pragma GCC ivdep
      for (int64_t n = 0; n < N; ++n) {
        const T gh = q[n] + Crow[n] * dy;  // ∂L/∂h_t
        dCrow[n] += dy * hn[n];
        dBrow[n] += gh * dtu;
        gB[n] = gh * Brow[n];
        const T gha = gh * hp[n] * e[n];  // ∂L/∂a_t · a_t
        dA[n] += gha * dt;
        ghaA[n] = gha * Ad[n];
        q[n] = gh * e[n];
      }
      T sum_gB = 0, sum_ghaA = 0;
      for (int64_t n = 0; n < N; ++n) {
        sum_gB += gB[n];
        sum_ghaA += ghaA[n];
      }
      g.du[row + t] = dy * Dd + sum_gB * dt;
      T ddt = sum_gB * ut + sum_ghaA;
      if (a.use_softplus) {
        ddt *= softplus_grad(a.delta[row + t] + (a.bias ? a.bias[d] : T(0)));
      }
      g.ddelta[row + t] = ddt;
      dbias += ddt;
    }
  }
  std::copy(dA, dA + N, g.dA_part + (b * a.dim + d) * N);
  g.dD_part[b * a.dim + d] = dD;
  g.dbias_part[b * a.dim + d] = dbias;
}

at::ScalarType compute_type(const at::Tensor& u) {
  return u.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

template <typename T>
ScanFwdResult fwd_impl(const Prepared& p, bool delta_softplus, at::ScalarType out_dtype) {
  const auto a = make_args<T>(p, delta_softplus);
  const auto opts = p.u.options();
  at::Tensor out = new_output({a.batch, a.dim, a.seqlen}, opts);
  at::Tensor ckpt = new_output({a.batch, a.dim, a.n_chunks, a.dstate}, opts);
  at::Tensor last = new_output({a.batch, a.dim, a.dstate}, opts);
  T* out_p = out.data_ptr<T>();
  T* ckpt_p = ckpt.data_ptr<T>();
  T* last_p = last.data_ptr<T>();
  at::parallel_for(0, a.batch * a.dim, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> h(a.dstate), acc(a.dstate);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / a.dim, d = i % a.dim;
      forward_channel(a, b, d, out_p, ckpt_p + i * a.n_chunks * a.dstate, last_p + i * a.dstate,
                      h.data(), acc.data());
    }
  });
  return {out.to(out_dtype), ckpt, last};
}

template <typename T>
ScanGrads bwd_impl(const Prepared& p, bool delta_softplus, const at::Tensor& ckpt_in,
                   const at::Tensor& dout_in) {
  const auto a = make_args<T>(p, delta_softplus);
  const int64_t Bn = a.batch, Dn = a.dim, L = a.seqlen, N = a.dstate;
  const int64_t n_groups = (Dn + kGroupChannels - 1) / kGroupChannels;
  const auto opts = p.u.options();
  const auto ckpt = ckpt_in.to(p.u.scalar_type()).contiguous();
  const auto dout = dout_in.to(p.u.scalar_type()).contiguous();
  auto du = new_output({Bn, Dn, L}, opts), ddelta = new_output({Bn, Dn, L}, opts);
  auto dz = p.z.defined() ? new_output({Bn, Dn, L}, opts) : at::Tensor();
  auto dBt_part = at::zeros({Bn, n_groups, L, N}, opts), dCt_part = at::zeros({Bn, n_groups, L, N}, opts);
  auto dA_part = new_output({Bn, Dn, N}, opts);
  auto dD_part = new_output({Bn, Dn}, opts), dbias_part = new_output({Bn, Dn}, opts);
  CpuScanGradPtrs<T> g{dout.data_ptr<T>(), du.data_ptr<T>(), ddelta.data_ptr<T>(),
                       dz.defined() ? dz.data_ptr<T>() : nullptr, nullptr, nullptr,
                       dA_part.data_ptr<T>(), dD_part.data_ptr<T>(), dbias_part.data_ptr<T>()};
  T* dBt_p = dBt_part.data_ptr<T>();
  T* dCt_p = dCt_part.data_ptr<T>();
  const T* ckpt_p = ckpt.data_ptr<T>();
  at::parallel_for(0, Bn * n_groups, 1, [&](int64_t begin, int64_t end) {
    BwdScratch<T> scratch(N);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / n_groups, grp = i % n_groups;
      CpuScanGradPtrs<T> gi = g;
      gi.dBt = dBt_p + i * L * N;
      gi.dCt = dCt_p + i * L * N;
      for (int64_t d = grp * kGroupChannels; d < std::min(Dn, (grp + 1) * kGroupChannels); ++d) {
        backward_channel(a, gi, b, d, ckpt_p + (b * Dn + d) * a.n_chunks * N, scratch);
      }
    }
  });
  // Fixed-order reductions over groups (dB, dC) and over the batch (dA, dD, d(delta_bias)).
  auto dBt = new_output({Bn, L, N}, opts), dCt = new_output({Bn, L, N}, opts);
  T* dBt_o = dBt.data_ptr<T>();
  T* dCt_o = dCt.data_ptr<T>();
  at::parallel_for(0, Bn * L, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / L, t = i % L;
      for (int64_t n = 0; n < N; ++n) {
        T sb = 0, sc = 0;
        for (int64_t grp = 0; grp < n_groups; ++grp) {
          const int64_t off = ((b * n_groups + grp) * L + t) * N + n;
          sb += dBt_p[off];
          sc += dCt_p[off];
        }
        dBt_o[i * N + n] = sb;
        dCt_o[i * N + n] = sc;
      }
    }
  });
  auto sum_batch = [Bn](const at::Tensor& part) {
    auto total = part.select(0, 0).clone();
    for (int64_t b = 1; b < Bn; ++b) total.add_(part.select(0, b));
    return total;
  };
  ScanGrads r;
  r.du = du;
  r.ddelta = ddelta;
  r.dz = dz;
  r.dB = dBt.transpose(1, 2);
  r.dC = dCt.transpose(1, 2);
  r.dA = sum_batch(dA_part);
  r.dD = sum_batch(dD_part);
  r.ddelta_bias = sum_batch(dbias_part);
  return r;
}

}  // namespace

ScanFwdResult scan_fwd_cpu(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                           const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                           const at::Tensor& z, const at::Tensor& delta_bias, bool delta_softplus) {
  TORCH_CHECK(u.device().is_cpu(), "selective_scan (fused CPU): inputs must be CPU tensors");
  const auto compute = compute_type(u);
  const auto p = prepare(u, delta, A, B, C, D, z, delta_bias, compute);
  return compute == at::kDouble ? fwd_impl<double>(p, delta_softplus, u.scalar_type())
                                : fwd_impl<float>(p, delta_softplus, u.scalar_type());
}

ScanGrads scan_bwd_cpu(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                       const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                       const at::Tensor& z, const at::Tensor& delta_bias, bool delta_softplus,
                       const at::Tensor& checkpoints, const at::Tensor& dout) {
  TORCH_CHECK(u.device().is_cpu(), "selective_scan (fused CPU): inputs must be CPU tensors");
  const auto compute = compute_type(u);
  const auto p = prepare(u, delta, A, B, C, D, z, delta_bias, compute);
  ScanGrads r = compute == at::kDouble ? bwd_impl<double>(p, delta_softplus, checkpoints, dout)
                                       : bwd_impl<float>(p, delta_softplus, checkpoints, dout);
  // Each gradient in its input's dtype.
  auto cast = [](const at::Tensor& g, const at::Tensor& like) {
    return g.defined() && like.defined() ? g.to(like.scalar_type()) : at::Tensor();
  };
  return {cast(r.du, u),       cast(r.ddelta, delta), cast(r.dA, A), cast(r.dB, B),
          cast(r.dC, C),       cast(r.dD, D),         cast(r.dz, z), cast(r.ddelta_bias, delta_bias)};
}

}  // namespace hgpt::ops::detail
