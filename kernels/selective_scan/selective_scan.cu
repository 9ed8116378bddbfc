// selective_scan.cu — the fused CUDA selective scan, forward and backward kernels; the design is in
// docs/ARCHITECTURE.md, "Selective scan".
//
// Algorithm. One thread block per (batch b, channel d) of kThreads threads, 32, 64 or 128 by the
// sequence length (scan_threads_for: the smallest whose chunk covers L, so a short sequence does
// not leave most threads on padding). The sequence is walked in chunks of kThreads × 4 items
// (128, 256 or 512 steps). Per chunk the per-step
// scalars (u, Δ = softplus(delta + bias)) are staged in shared memory; then for each state n the
// chunk's B_n, C_n are staged and the recurrence h_t = a_t·h_{t−1} + b_t (a_t = exp(Δ_t·A_n),
// b_t = Δ_t·B_t·u_t) is solved with a block-wide exclusive scan (cub::BlockScan) over pairs (a, b)
// with the operator (a0,b0)∘(a1,b1) = (a1·a0, a1·b0 + b1): each thread composes its 4 items, the
// block scans the 128 aggregates, each thread then applies the prefix to the running state carried
// from the previous chunk (shared memory, one float per n) and walks its items. y_t accumulates
// C_t·h_t over n in registers. Steps past the sequence end are the identity pair (1, 0), so a
// ragged tail leaves the state untouched and is never written.
//
// Saved for backward: only the state at the start of every chunk, (B, D, n_chunks, N) fp32.
// Backward walks the chunks last to first. Per chunk it recomputes y (only when z is given, for
// dz), then for each n recomputes the chunk's states from the checkpoint (forward scan, into
// shared memory) and runs the reverse scan q_t = a_t·(q_{t+1} + C_t·dy_t), q carrying the gradient
// from later steps, as a forward scan over threads whose items are laid out back to front.
//
// Accumulation and determinism: all arithmetic is fp32. dB and dC (summed over channels, which
// are different blocks) are accumulated with fp32 atomicAdd into (B, N, L) buffers: their
// summation order varies, so dB/dC are NOT bitwise deterministic. dA, dD and d(delta_bias) are
// reduced inside the block (cub::BlockReduce, fixed order) into per-(batch, channel) partials that
// the caller sums over the batch, so they, du, ddelta and dz are deterministic. The forward pass
// is deterministic.
#include "kernels/selective_scan/selective_scan.h"

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace hgpt::kernels {
namespace {

// ---- element conversions -------------------------------------------------------------------
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half(x); }

// ---- the scan operator ---------------------------------------------------------------------
struct ScanPair {
  float a, b;  // h ↦ a·h + b
};

struct ComposePairs {  // apply x first, then y
  __device__ __forceinline__ ScanPair operator()(const ScanPair& x, const ScanPair& y) const {
    return {y.a * x.a, y.a * x.b + y.b};
  }
};

// torch's softplus (threshold 20) and its derivative.
__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }
__device__ __forceinline__ float softplus_grad(float x) { return x > 20.f ? 1.f : 1.f / (1.f + expf(-x)); }
__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

template <int kThreads>
using BlockScan = cub::BlockScan<ScanPair, kThreads>;
template <int kThreads>
using BlockReduce = cub::BlockReduce<float, kThreads>;

// Shared per-chunk staging of the per-step scalars and of one state's B and C. 16-byte aligned so
// that each thread reads its kScanItems = 4 consecutive steps with one 128-bit load (a quarter-warp
// per 512-byte wavefront, no bank conflicts) instead of 4 scalar loads at a 16-byte stride.
template <int kChunk>
struct __align__(16) ChunkStage {
  float u[kChunk];
  float dt[kChunk];
  float B[kChunk];
  float C[kChunk];
};

static_assert(kScanItems == 4, "the shared-memory reads below move 4 items as one float4");

// The 4 consecutive floats s[4q .. 4q+3] of a 16-byte-aligned shared array, as one 128-bit load.
__device__ __forceinline__ float4 load4(const float* s, int q) { return reinterpret_cast<const float4*>(s)[q]; }
__device__ __forceinline__ void store4(float* s, int q, float4 v) { reinterpret_cast<float4*>(s)[q] = v; }
// Component i of v (i a compile-time constant after unrolling).
__device__ __forceinline__ float item(const float4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

// Stages B[b, n, t0 : t0 + chunk] and C likewise (zeros past the end), widened to fp32 here: B and
// C are fp32 or the activations' dtype T (p.bc_is_float, uniform over the block). Caller synchronises.
template <int kThreads, typename T>
__device__ void stage_bc(const ScanParams& p, ChunkStage<kThreads * kScanItems>& s, int64_t b, int n, int64_t t0) {
  const int64_t row = b * p.bc_batch_stride + n * p.bc_state_stride;
  for (int j = threadIdx.x; j < kThreads * kScanItems; j += kThreads) {
    const int64_t t = t0 + j;
    float bv = 0.f, cv = 0.f;
    if (t < p.seqlen) {
      if (p.bc_is_float) {
        bv = static_cast<const float*>(p.B)[row + t];
        cv = static_cast<const float*>(p.C)[row + t];
      } else {
        bv = to_float(static_cast<const T*>(p.B)[row + t]);
        cv = to_float(static_cast<const T*>(p.C)[row + t]);
      }
    }
    s.B[j] = bv;
    s.C[j] = cv;
  }
}

// The states of this thread's items (forward layout: steps tid·4 … tid·4+3 of the chunk) for
// state n, from the running state h_start before the chunk. Returns the state after the thread's
// last item; states[i] receives h after item i. Uses scan storage: caller syncs before reuse.
template <int kThreads>
__device__ float scan_chunk_forward(const ChunkStage<kThreads * kScanItems>& s, float A_n, float h_start, int64_t t0,
                                    int64_t seqlen, typename BlockScan<kThreads>::TempStorage& tmp,
                                    float (&states)[kScanItems]) {
  ScanPair items[kScanItems];
  ScanPair agg{1.f, 0.f};
  const float4 dt4 = load4(s.dt, threadIdx.x), u4 = load4(s.u, threadIdx.x), B4 = load4(s.B, threadIdx.x);
#pragma unroll
  for (int i = 0; i < kScanItems; ++i) {
    const int j = threadIdx.x * kScanItems + i;
    const bool ok = t0 + j < seqlen;
    const float dt = item(dt4, i);
    items[i] = ok ? ScanPair{__expf(dt * A_n), dt * item(u4, i) * item(B4, i)} : ScanPair{1.f, 0.f};
    agg = ComposePairs()(agg, items[i]);
  }
  ScanPair prefix;
  BlockScan<kThreads>(tmp).ExclusiveScan(agg, prefix, ScanPair{1.f, 0.f}, ComposePairs());
  float h = prefix.a * h_start + prefix.b;
#pragma unroll
  for (int i = 0; i < kScanItems; ++i) {
    h = items[i].a * h + items[i].b;
    states[i] = h;
  }
  return h;
}

// Stages u and Δ of the chunk starting at t0 (zeros past the end). Caller synchronises.
template <int kThreads, typename T>
__device__ void stage_scalars(const ScanParams& p, ChunkStage<kThreads * kScanItems>& s, const T* u, const T* delta,
                              float bias, int64_t t0) {
  for (int j = threadIdx.x; j < kThreads * kScanItems; j += kThreads) {
    const int64_t t = t0 + j;
    float uu = 0.f, dt = 0.f;
    if (t < p.seqlen) {
      uu = to_float(u[t]);
      dt = to_float(delta[t]) + bias;
      if (p.delta_softplus) dt = softplus(dt);
    }
    s.u[j] = uu;
    s.dt[j] = dt;
  }
}

// ---- forward -------------------------------------------------------------------------------
template <typename T, int kThreads>
__global__ void __launch_bounds__(kThreads) scan_fwd_kernel(ScanParams p) {
  constexpr int kChunk = kThreads * kScanItems;
  __shared__ typename BlockScan<kThreads>::TempStorage scan_tmp;
  __shared__ ChunkStage<kChunk> stage;
  __shared__ float carry[kScanMaxDState];  // running state between chunks

  const int64_t d = blockIdx.x, b = blockIdx.y;
  const int N = static_cast<int>(p.dstate);
  const int64_t x_off = b * p.x_batch_stride + d * p.x_dim_stride;
  const T* u = static_cast<const T*>(p.u) + x_off;
  const T* delta = static_cast<const T*>(p.delta) + x_off;
  const T* z = p.z ? static_cast<const T*>(p.z) + x_off : nullptr;
  T* out = static_cast<T*>(p.out) + x_off;
  const float* A_d = p.A + d * p.dstate;
  const float D_d = p.D ? p.D[d] : 0.f;
  const float bias = p.delta_bias ? p.delta_bias[d] : 0.f;
  float* ckpt = p.checkpoints + (b * p.dim + d) * p.n_chunks * p.dstate;

  for (int n = threadIdx.x; n < N; n += kThreads) carry[n] = 0.f;
  __syncthreads();

  for (int64_t c = 0; c < p.n_chunks; ++c) {
    const int64_t t0 = c * kChunk;
    for (int n = threadIdx.x; n < N; n += kThreads) ckpt[c * N + n] = carry[n];
    stage_scalars<kThreads>(p, stage, u, delta, bias, t0);
    float y[kScanItems] = {};
    for (int n = 0; n < N; ++n) {
      __syncthreads();  // previous users of stage.B/C and scan_tmp are done
      stage_bc<kThreads, T>(p, stage, b, n, t0);
      __syncthreads();
      float states[kScanItems];
      const float h_end = scan_chunk_forward<kThreads>(stage, A_d[n], carry[n], t0, p.seqlen, scan_tmp, states);
      const float4 C4 = load4(stage.C, threadIdx.x);
#pragma unroll
      for (int i = 0; i < kScanItems; ++i) y[i] += item(C4, i) * states[i];
      __syncthreads();  // every thread has read carry[n]
      if (threadIdx.x == kThreads - 1) carry[n] = h_end;  // padding is the identity
    }
    const float4 u4 = load4(stage.u, threadIdx.x);
#pragma unroll
    for (int i = 0; i < kScanItems; ++i) {
      const int64_t t = t0 + threadIdx.x * kScanItems + i;
      if (t < p.seqlen) {
        float yv = y[i] + D_d * item(u4, i);
        if (z) {
          const float zt = to_float(z[t]);
          yv *= zt * sigmoid(zt);
        }
        out[t] = from_float<T>(yv);
      }
    }
    __syncthreads();  // carry updates visible, stage free for the next chunk
  }
  for (int n = threadIdx.x; n < N; n += kThreads) p.last_state[(b * p.dim + d) * p.dstate + n] = carry[n];
}

// ---- backward ------------------------------------------------------------------------------
template <typename T, int kThreads>
__global__ void __launch_bounds__(kThreads) scan_bwd_kernel(ScanParams p) {
  constexpr int kChunk = kThreads * kScanItems;
  __shared__ typename BlockScan<kThreads>::TempStorage scan_tmp;
  __shared__ typename BlockReduce<kThreads>::TempStorage reduce_tmp;
  __shared__ ChunkStage<kChunk> stage;
  __shared__ __align__(16) float s_y[kChunk];   // y before gating (recomputed, only with z)
  __shared__ __align__(16) float s_dy[kChunk];  // ∂L/∂y
  __shared__ __align__(16) float s_h[kChunk];   // states of the chunk for the current n
  __shared__ float q_carry[kScanMaxDState];  // q at the first step of the later chunk
  __shared__ float dA_acc[kScanMaxDState];

  const int64_t d = blockIdx.x, b = blockIdx.y;
  const int N = static_cast<int>(p.dstate);
  const int64_t x_off = b * p.x_batch_stride + d * p.x_dim_stride;
  const T* u = static_cast<const T*>(p.u) + x_off;
  const T* delta = static_cast<const T*>(p.delta) + x_off;
  const T* z = p.z ? static_cast<const T*>(p.z) + x_off : nullptr;
  const T* dout = static_cast<const T*>(p.dout) + x_off;
  T* du = static_cast<T*>(p.du) + x_off;
  T* ddelta = static_cast<T*>(p.ddelta) + x_off;
  T* dz = z ? static_cast<T*>(p.dz) + x_off : nullptr;
  const float* A_d = p.A + d * p.dstate;
  const float D_d = p.D ? p.D[d] : 0.f;
  const float bias = p.delta_bias ? p.delta_bias[d] : 0.f;
  const float* ckpt = p.checkpoints + (b * p.dim + d) * p.n_chunks * p.dstate;

  for (int n = threadIdx.x; n < N; n += kThreads) {
    q_carry[n] = 0.f;
    dA_acc[n] = 0.f;
  }
  float dD_thread = 0.f, dbias_thread = 0.f;

  for (int64_t c = p.n_chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * kChunk;
    __syncthreads();  // the previous chunk's readers of the staging buffers are done
    stage_scalars<kThreads>(p, stage, u, delta, bias, t0);
    for (int j = threadIdx.x; j < kThreads * kScanItems; j += kThreads) s_y[j] = D_d * stage.u[j];

    if (z) {  // recompute y = Σ_n C·h + D·u for dz
      float y[kScanItems] = {};
      for (int n = 0; n < N; ++n) {
        __syncthreads();
        stage_bc<kThreads, T>(p, stage, b, n, t0);
        __syncthreads();
        float states[kScanItems];
        scan_chunk_forward<kThreads>(stage, A_d[n], ckpt[c * N + n], t0, p.seqlen, scan_tmp, states);
        const float4 C4 = load4(stage.C, threadIdx.x);
#pragma unroll
        for (int i = 0; i < kScanItems; ++i) y[i] += item(C4, i) * states[i];
      }
      __syncthreads();
      float4 y4 = load4(s_y, threadIdx.x);
      y4.x += y[0], y4.y += y[1], y4.z += y[2], y4.w += y[3];
      store4(s_y, threadIdx.x, y4);
    }
    __syncthreads();
    // ∂L/∂y, dz and the D-skip terms.
    for (int j = threadIdx.x; j < kThreads * kScanItems; j += kThreads) {
      const int64_t t = t0 + j;
      float dy = 0.f;
      if (t < p.seqlen) {
        dy = to_float(dout[t]);
        if (z) {
          const float zt = to_float(z[t]), sz = sigmoid(zt);
          dz[t] = from_float<T>(dy * s_y[j] * sz * (1.f + zt * (1.f - sz)));
          dy *= zt * sz;
        }
        dD_thread += dy * stage.u[j];
      }
      s_dy[j] = dy;
    }

    // Reverse layout: item i of thread tid is step rev(i) = chunk−1 − (tid·4 + i), so a forward
    // block scan over threads runs backwards in time. Those 4 steps are the float4 number
    // rq = chunk/4 − 1 − tid of each shared array, item i being its component 3 − i.
    const int rq = kChunk / kScanItems - 1 - static_cast<int>(threadIdx.x);
    float ddt[kScanItems] = {}, du_acc[kScanItems] = {};
    for (int n = 0; n < N; ++n) {
      __syncthreads();
      stage_bc<kThreads, T>(p, stage, b, n, t0);
      __syncthreads();
      const float A_n = A_d[n];
      const float h0 = ckpt[c * N + n];
      float states[kScanItems];
      scan_chunk_forward<kThreads>(stage, A_n, h0, t0, p.seqlen, scan_tmp, states);
      store4(s_h, threadIdx.x, make_float4(states[0], states[1], states[2], states[3]));
      __syncthreads();  // s_h complete; scan_tmp free again

      const float4 dt4 = load4(stage.dt, rq), u4 = load4(stage.u, rq), B4 = load4(stage.B, rq),
                   C4 = load4(stage.C, rq), dy4 = load4(s_dy, rq), h4 = load4(s_h, rq);
      const float h_before = rq > 0 ? s_h[rq * kScanItems - 1] : h0;  // state before the 4 steps
      ScanPair items[kScanItems];
      ScanPair agg{1.f, 0.f};
#pragma unroll
      for (int i = 0; i < kScanItems; ++i) {
        const int j = kChunk - 1 - (threadIdx.x * kScanItems + i);
        const bool ok = t0 + j < p.seqlen;
        const float a = ok ? __expf(item(dt4, 3 - i) * A_n) : 1.f;
        items[i] = ok ? ScanPair{a, a * item(C4, 3 - i) * item(dy4, 3 - i)} : ScanPair{1.f, 0.f};
        agg = ComposePairs()(agg, items[i]);
      }
      ScanPair prefix;
      BlockScan<kThreads>(scan_tmp).ExclusiveScan(agg, prefix, ScanPair{1.f, 0.f}, ComposePairs());
      float q = prefix.a * q_carry[n] + prefix.b;  // = a_{t+1}·∂L/∂h_{t+1} for the first item
      float dA_thread = 0.f;
      float* dB_row = p.dB + b * p.bc_batch_stride + n * p.bc_state_stride;
      float* dC_row = p.dC + b * p.bc_batch_stride + n * p.bc_state_stride;
#pragma unroll
      for (int i = 0; i < kScanItems; ++i) {
        const int j = kChunk - 1 - (threadIdx.x * kScanItems + i);
        const int64_t t = t0 + j;
        if (t < p.seqlen) {
          const int k = 3 - i;  // component of step j in this thread's float4s
          const float a = items[i].a, dt = item(dt4, k), uu = item(u4, k), Bj = item(B4, k), dy = item(dy4, k);
          const float g = q + item(C4, k) * dy;  // ∂L/∂h_t
          const float h_prev = k > 0 ? item(h4, k - 1) : h_before;
          atomicAdd(dC_row + t, dy * item(h4, k));
          atomicAdd(dB_row + t, g * dt * uu);
          const float gha = g * h_prev * a;  // ∂L/∂a_t · a_t
          ddt[i] += g * Bj * uu + gha * A_n;
          du_acc[i] += g * dt * Bj;
          dA_thread += gha * dt;
          q = a * g;
        }
      }
      const float dA_block = BlockReduce<kThreads>(reduce_tmp).Sum(dA_thread);
      __syncthreads();  // all reads of q_carry[n], s_h, scan/reduce storage done
      if (threadIdx.x == kThreads - 1) q_carry[n] = q;  // holds the chunk's first step
      if (threadIdx.x == 0) dA_acc[n] += dA_block;
    }
    const float4 dy4 = load4(s_dy, rq);
#pragma unroll
    for (int i = 0; i < kScanItems; ++i) {
      const int j = kChunk - 1 - (threadIdx.x * kScanItems + i);
      const int64_t t = t0 + j;
      if (t < p.seqlen) {
        du[t] = from_float<T>(item(dy4, 3 - i) * D_d + du_acc[i]);
        float g = ddt[i];
        if (p.delta_softplus) g *= softplus_grad(to_float(delta[t]) + bias);
        ddelta[t] = from_float<T>(g);
        dbias_thread += g;
      }
    }
  }
  __syncthreads();
  const int64_t bd = b * p.dim + d;
  for (int n = threadIdx.x; n < N; n += kThreads) p.dA_part[bd * p.dstate + n] = dA_acc[n];
  const float dD_block = BlockReduce<kThreads>(reduce_tmp).Sum(dD_thread);
  __syncthreads();
  const float dbias_block = BlockReduce<kThreads>(reduce_tmp).Sum(dbias_thread);
  if (threadIdx.x == 0) {
    if (p.dD_part) p.dD_part[bd] = dD_block;
    if (p.ddelta_bias_part) p.ddelta_bias_part[bd] = dbias_block;
  }
}

template <typename T, int kThreads>
struct LaunchFwd {
  static void run(const ScanParams& p, cudaStream_t stream) {
    scan_fwd_kernel<T, kThreads><<<dim3(static_cast<unsigned>(p.dim), static_cast<unsigned>(p.batch)), kThreads, 0, stream>>>(p);
  }
};
template <typename T, int kThreads>
struct LaunchBwd {
  static void run(const ScanParams& p, cudaStream_t stream) {
    scan_bwd_kernel<T, kThreads><<<dim3(static_cast<unsigned>(p.dim), static_cast<unsigned>(p.batch)), kThreads, 0, stream>>>(p);
  }
};

// The block size chosen at run time, each a separate instance of the kernel.
template <template <typename, int> class Launch, typename T>
void launch_with(int threads, const ScanParams& p, cudaStream_t stream) {
  switch (threads) {
    case 32: Launch<T, 32>::run(p, stream); break;
    case 64: Launch<T, 64>::run(p, stream); break;
    default: Launch<T, 128>::run(p, stream); break;
  }
}

template <template <typename, int> class Launch>
cudaError_t dispatch(const ScanParams& p, cudaStream_t stream) {
  if (p.batch == 0 || p.dim == 0 || p.seqlen == 0) return cudaSuccess;
  if (p.dstate < 1 || p.dstate > kScanMaxDState || p.batch > 65535) return cudaErrorInvalidValue;
  const int threads = scan_threads_for(p.seqlen);
  if (p.n_chunks != (p.seqlen + scan_chunk_for(p.seqlen) - 1) / scan_chunk_for(p.seqlen)) return cudaErrorInvalidValue;
  switch (p.elem) {
    case ScanElem::kFloat32: launch_with<Launch, float>(threads, p, stream); break;
    case ScanElem::kBFloat16: launch_with<Launch, __nv_bfloat16>(threads, p, stream); break;
    case ScanElem::kFloat16: launch_with<Launch, __half>(threads, p, stream); break;
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t selective_scan_fwd_launch(const ScanParams& p, cudaStream_t stream) {
  return dispatch<LaunchFwd>(p, stream);
}

cudaError_t selective_scan_bwd_launch(const ScanParams& p, cudaStream_t stream) {
  return dispatch<LaunchBwd>(p, stream);
}

}  // namespace hgpt::kernels
