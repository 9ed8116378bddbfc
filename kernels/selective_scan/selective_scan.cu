// selective_scan.cu — the fused CUDA selective scan, forward and backward kernels; the design is in
// docs/ARCHITECTURE.md, "Selective scan". The per-thread arithmetic and the chunk layout live in
// scan_thread.h, shared with the host emulation that checks these kernels without a GPU; this
// file holds what only a GPU does: global loads and stores, warp shuffles, shared memory,
// barriers and atomics.
//
// Algorithm. One thread block per (batch b, channel d) of 32, 64 or 128 threads
// (scan::threads_for: the fewest whose chunk covers L). The sequence is walked in chunks of
// threads × 4 steps; thread tid holds the 4 consecutive steps 4·tid … 4·tid+3 of each chunk in
// both passes (blocked layout) and reads its own u, Δ, z, B_n, C_n straight from global memory
// into registers (one vector load each where aligned), the B_n, C_n of the next state already in
// flight while state n is scanned. For each state n the recurrence h_t = a_t·h_{t−1} + b_t
// (a_t = exp(Δ_t·A_n), b_t = Δ_t·B_t·u_t) is solved as a scan over pairs (a, b) with
// (a0,b0)∘(a1,b1) = (a1·a0, a1·b0 + b1): each thread composes its 4 pairs, a warp scan by shuffles
// combines the lanes, the warps' totals meet in shared memory behind ONE block barrier per
// (chunk, state) step, and each thread takes the state carried from the previous chunk through
// the earlier warps' totals and its lane prefix, then walks its steps. y_t accumulates C_t·h_t over
// n in registers. Steps past the sequence end are the identity pair (1, 0), so a ragged tail
// leaves the state untouched and is never written.
//
// Saved for backward: only the state at the start of every chunk, (B, D, n_chunks, N) fp32.
// Backward walks the chunks last to first. Per (chunk, state) it recomputes the thread's decays
// and states with the same forward scan, and runs the reverse scan x_t = a_t·(x_{t+1} + C_t·dy_t)
// (x carrying ∂L/∂h from later steps) in the same layout with shuffles down the warp, reusing the
// decays in registers; both scans share the step's one barrier. y (for dz) is summed from the
// states this recomputation produces, so there is no separate pass for it. Each warp hands its
// dB, dC through shared memory so that its atomics cover 32 consecutive steps per instruction.
//
// Accumulation and determinism: all arithmetic is fp32. dB and dC (summed over channels, which
// are different blocks) are accumulated with fp32 atomicAdd into (B, N, L) buffers: their
// summation order varies, so dB/dC are NOT bitwise deterministic. dA is reduced per warp with a
// fixed shuffle pattern into per-warp slots that only that warp's lane 0 writes, and summed over
// the warps in order at the end; dD and d(delta_bias) likewise; so dA, dD, d(delta_bias), du,
// ddelta and dz are deterministic, and so is the forward pass.
#include "kernels/selective_scan/selective_scan.h"

#include "kernels/selective_scan/scan_thread.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace hgpt::kernels {
namespace {

using scan::kItems;
using scan::kWarpSize;
using Pair = scan::Pair<float>;
constexpr unsigned kFullWarp = 0xffffffffu;

// ---- element conversions -------------------------------------------------------------------
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16(x);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half(x);
}

// ---- a thread's 4 consecutive steps in global memory ----------------------------------------
// One vector access (16 bytes for fp32, 8 for bf16/fp16) when all 4 steps are inside the sequence
// and the address is aligned to it (a warp then moves one contiguous 512- or 256-byte span);
// element by element otherwise (a ragged tail, or rows of a length that is not a multiple of 4).
template <typename T>
struct alignas(sizeof(T) * kItems) ItemsOf {
  T v[kItems];
};

template <typename T>
__device__ __forceinline__ bool vector_ok(const T* p, int valid) {
  return valid == kItems && reinterpret_cast<uintptr_t>(p) % sizeof(ItemsOf<T>) == 0;
}

// v[i] = x[t_first + i] widened to fp32, 0 past the end.
template <typename T>
__device__ __forceinline__ void load_items(const T* x, int64_t t_first, int valid, float (&v)[kItems]) {
  const T* p = x + t_first;
  if (vector_ok(p, valid)) {
    const ItemsOf<T> q = *reinterpret_cast<const ItemsOf<T>*>(p);
#pragma unroll
    for (int i = 0; i < kItems; ++i) v[i] = to_float(q.v[i]);
  } else {
#pragma unroll
    for (int i = 0; i < kItems; ++i) v[i] = i < valid ? to_float(p[i]) : 0.f;
  }
}

// keep[i] = 0 where step t_first + i starts a document (row: the batch row's reset flags), else 1.
__device__ __forceinline__ void load_keep(const bool* row, int64_t t_first, int valid, float (&keep)[kItems]) {
#pragma unroll
  for (int i = 0; i < kItems; ++i) keep[i] = row && i < valid && row[t_first + i] ? 0.f : 1.f;
}

// x[t_first + i] = v[i] for the steps inside the sequence.
template <typename T>
__device__ __forceinline__ void store_items(T* x, int64_t t_first, int valid, const float (&v)[kItems]) {
  T* p = x + t_first;
  if (vector_ok(p, valid)) {
    ItemsOf<T> q;
#pragma unroll
    for (int i = 0; i < kItems; ++i) q.v[i] = from_float<T>(v[i]);
    *reinterpret_cast<ItemsOf<T>*>(p) = q;
  } else {
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      if (i < valid) p[i] = from_float<T>(v[i]);
    }
  }
}

// B[b, n, steps] and C likewise: fp32 or the activations' dtype T (p.bc_is_float, uniform).
template <typename T>
__device__ __forceinline__ void load_bc(const ScanParams& p, int64_t b, int n, int64_t t_first, int valid,
                                        float (&B)[kItems], float (&C)[kItems]) {
  const int64_t row = b * p.bc_batch_stride + n * p.bc_state_stride;
  if (p.bc_is_float) {
    load_items(static_cast<const float*>(p.B) + row, t_first, valid, B);
    load_items(static_cast<const float*>(p.C) + row, t_first, valid, C);
  } else {
    load_items(static_cast<const T*>(p.B) + row, t_first, valid, B);
    load_items(static_cast<const T*>(p.C) + row, t_first, valid, C);
  }
}

// B_n, C_n of a thread's steps for n = 0, 1, …: the next state's loads are issued when the current
// state's values are taken, so they are in flight while the current state is scanned.
template <typename T>
struct BcStream {
  const ScanParams& p;
  int64_t b, t_first;
  int valid, n_states;
  float B_next[kItems], C_next[kItems];

  __device__ __forceinline__ BcStream(const ScanParams& params, int64_t batch, int64_t first, int n_valid)
      : p(params), b(batch), t_first(first), valid(n_valid), n_states(static_cast<int>(params.dstate)) {
    load_bc<T>(p, b, 0, t_first, valid, B_next, C_next);
  }
  __device__ __forceinline__ void take(int n, float (&B)[kItems], float (&C)[kItems]) {
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      B[i] = B_next[i];
      C[i] = C_next[i];
    }
    if (n + 1 < n_states) load_bc<T>(p, b, n + 1, t_first, valid, B_next, C_next);
  }
};

// ---- warp scans and sums (the steps themselves are scan_thread.h's) -------------------------
__device__ __forceinline__ Pair shfl_up(const Pair& v, int offset) {
  return {__shfl_up_sync(kFullWarp, v.a, offset), __shfl_up_sync(kFullWarp, v.b, offset)};
}
__device__ __forceinline__ Pair shfl_down(const Pair& v, int offset) {
  return {__shfl_down_sync(kFullWarp, v.a, offset), __shfl_down_sync(kFullWarp, v.b, offset)};
}

// Inclusive scan over the warp's lanes, earlier lanes first (forward) or later lanes first (reverse).
__device__ __forceinline__ Pair warp_scan_forward(Pair v, int lane) {
#pragma unroll
  for (int offset = 1; offset < kWarpSize; offset *= 2)
    v = scan::forward_scan_step(v, shfl_up(v, offset), lane, offset);
  return v;
}
__device__ __forceinline__ Pair warp_scan_reverse(Pair v, int lane) {
#pragma unroll
  for (int offset = 1; offset < kWarpSize; offset *= 2)
    v = scan::reverse_scan_step(v, shfl_down(v, offset), lane, offset);
  return v;
}

// Sum over the warp by a fixed butterfly: every lane gets the same, run-to-run identical, value.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullWarp, v, offset);
  return v;
}

// ---- forward -------------------------------------------------------------------------------
template <typename T, int kThreads>
__global__ void __launch_bounds__(kThreads) scan_fwd_kernel(ScanParams p) {
  constexpr int kWarps = kThreads / kWarpSize;
  constexpr int kChunk = kThreads * kItems;
  __shared__ Pair warp_totals[2][kWarps];       // per (chunk, state) step, alternating buffers
  __shared__ float carry[2][scan::kMaxDState];  // state before the chunk, alternating by chunk

  const int tid = static_cast<int>(threadIdx.x), warp = tid / kWarpSize, lane = tid % kWarpSize;
  const int64_t d = blockIdx.x, b = blockIdx.y;
  const int N = static_cast<int>(p.dstate);
  const int64_t x_off = b * p.x_batch_stride + d * p.x_dim_stride;
  const T* u_row = static_cast<const T*>(p.u) + x_off;
  const T* delta_row = static_cast<const T*>(p.delta) + x_off;
  const T* z_row = p.z ? static_cast<const T*>(p.z) + x_off : nullptr;
  T* out_row = static_cast<T*>(p.out) + x_off;
  const float* A_d = p.A + d * p.dstate;
  const float D_d = p.D ? p.D[d] : 0.f;
  const float bias = p.delta_bias ? p.delta_bias[d] : 0.f;
  float* ckpt = p.checkpoints + (b * p.dim + d) * p.n_chunks * p.dstate;
  float* last_state = p.last_state + (b * p.dim + d) * p.dstate;
  const bool* reset_row = p.reset ? p.reset + b * p.seqlen : nullptr;

  for (int n = tid; n < N; n += kThreads) carry[0][n] = 0.f;
  __syncthreads();

  int totals = 0;  // warp_totals buffer of this step
  for (int64_t c = 0; c < p.n_chunks; ++c) {
    const int cur = static_cast<int>(c & 1);
    const int64_t t_first = c * kChunk + scan::first_item(tid);
    const int valid = scan::valid_items(t_first, p.seqlen);
    float u[kItems], dt[kItems], keep[kItems], y[kItems] = {};
    load_items(u_row, t_first, valid, u);
    load_items(delta_row, t_first, valid, dt);
    load_keep(reset_row, t_first, valid, keep);
#pragma unroll
    for (int i = 0; i < kItems; ++i) dt[i] = scan::step_size(dt[i], bias, p.delta_softplus);
    BcStream<T> bc(p, b, t_first, valid);

    for (int n = 0; n < N; ++n) {
      float B[kItems], C[kItems];
      bc.take(n, B, C);
      Pair pairs[kItems];
      scan::forward_pairs(dt, u, B, keep, A_d[n], valid, pairs);
      const Pair inclusive = warp_scan_forward(scan::compose_forward(pairs), lane);
      const Pair lane_prefix = scan::forward_exclusive(shfl_up(inclusive, 1), lane);
      if (lane == kWarpSize - 1) warp_totals[totals][warp] = inclusive;
      __syncthreads();  // the step's one barrier: every warp's total is in

      const float h_chunk = carry[cur][n];
      float states[kItems];
      scan::walk_forward(pairs, scan::apply(lane_prefix, scan::state_before_warp(warp_totals[totals], warp, h_chunk)),
                         states);
      scan::accumulate_y(C, states, y);
      if (tid == 0) ckpt[c * N + n] = h_chunk;
      if (tid == kThreads - 1) {  // its last state ends the chunk (padding is the identity)
        carry[scan::other_buffer(cur)][n] = states[kItems - 1];
        if (c == p.n_chunks - 1) last_state[n] = states[kItems - 1];
      }
      totals = scan::other_buffer(totals);
    }

    float z[kItems] = {}, out[kItems];
    if (z_row) load_items(z_row, t_first, valid, z);
#pragma unroll
    for (int i = 0; i < kItems; ++i) out[i] = scan::output_of(y[i], D_d, u[i], z[i], z_row != nullptr);
    store_items(out_row, t_first, valid, out);
  }
}

// ---- backward ------------------------------------------------------------------------------
template <typename T, int kThreads>
__global__ void __launch_bounds__(kThreads) scan_bwd_kernel(ScanParams p) {
  constexpr int kWarps = kThreads / kWarpSize;
  constexpr int kChunk = kThreads * kItems;
  __shared__ Pair fwd_totals[2][kWarps];  // per (chunk, state) step, alternating buffers
  __shared__ Pair rev_totals[2][kWarps];
  __shared__ float x_carry[2][scan::kMaxDState];       // x at the later chunk's first step, alternating by chunk
  __shared__ float dA_warp[scan::kMaxDState][kWarps];  // slot [n][w] written only by warp w's lane 0
  __shared__ float sums[2][kWarps];                    // dD and d(bias) per warp, at the end
  // dB and dC of each warp's steps on their way to the atomics; rewritten only after the next
  // step's barrier, which every lane reaches after its reads.
  __shared__ __align__(16) float stripes[kWarps][2][kWarpSize * kItems];
  static_assert(kItems == 4, "the stripes are written as one float4 per lane");

  const int tid = static_cast<int>(threadIdx.x), warp = tid / kWarpSize, lane = tid % kWarpSize;
  const int64_t d = blockIdx.x, b = blockIdx.y;
  const int N = static_cast<int>(p.dstate);
  const int64_t x_off = b * p.x_batch_stride + d * p.x_dim_stride;
  const T* u_row = static_cast<const T*>(p.u) + x_off;
  const T* delta_row = static_cast<const T*>(p.delta) + x_off;
  const T* z_row = p.z ? static_cast<const T*>(p.z) + x_off : nullptr;
  const T* dout_row = static_cast<const T*>(p.dout) + x_off;
  T* du_row = static_cast<T*>(p.du) + x_off;
  T* ddelta_row = static_cast<T*>(p.ddelta) + x_off;
  T* dz_row = z_row ? static_cast<T*>(p.dz) + x_off : nullptr;
  const float* A_d = p.A + d * p.dstate;
  const float D_d = p.D ? p.D[d] : 0.f;
  const float bias = p.delta_bias ? p.delta_bias[d] : 0.f;
  const float* ckpt = p.checkpoints + (b * p.dim + d) * p.n_chunks * p.dstate;
  const bool* reset_row = p.reset ? p.reset + b * p.seqlen : nullptr;
  const bool has_z = z_row != nullptr;

  for (int n = tid; n < N; n += kThreads) {
    x_carry[0][n] = 0.f;
    for (int w = 0; w < kWarps; ++w) dA_warp[n][w] = 0.f;
  }
  __syncthreads();

  float dD_acc = 0.f, dbias_acc = 0.f;
  int totals = 0, cur = 0;  // buffers of this step and of this chunk
  for (int64_t c = p.n_chunks - 1; c >= 0; --c, cur = scan::other_buffer(cur)) {
    const int64_t t_first = c * kChunk + scan::first_item(tid);
    const int valid = scan::valid_items(t_first, p.seqlen);
    float u[kItems], delta[kItems], dt[kItems], dout[kItems], z[kItems] = {}, dy[kItems], dz_per_y[kItems];
    float y[kItems] = {}, ddt[kItems] = {}, du[kItems] = {}, keep[kItems];
    load_items(u_row, t_first, valid, u);
    load_items(delta_row, t_first, valid, delta);
    load_keep(reset_row, t_first, valid, keep);
    load_items(dout_row, t_first, valid, dout);
    if (has_z) load_items(z_row, t_first, valid, z);
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      dt[i] = scan::step_size(delta[i], bias, p.delta_softplus);
      scan::output_grads(dout[i], z[i], has_z, dy[i], dz_per_y[i]);
      if (i < valid) dD_acc += dy[i] * u[i];
    }
    BcStream<T> bc(p, b, t_first, valid);

    for (int n = 0; n < N; ++n) {
      float B[kItems], C[kItems];
      bc.take(n, B, C);
      const float A_n = A_d[n];
      const float h_chunk = ckpt[c * N + n];

      // Both scans' warp parts before the step's one barrier: the reverse pairs need only the
      // decays and dy, not the states.
      Pair fwd[kItems], rev[kItems];
      scan::forward_pairs(dt, u, B, keep, A_n, valid, fwd);
      scan::reverse_pairs(fwd, C, dy, valid, rev);
      const Pair fwd_inclusive = warp_scan_forward(scan::compose_forward(fwd), lane);
      const Pair fwd_prefix = scan::forward_exclusive(shfl_up(fwd_inclusive, 1), lane);
      const Pair rev_inclusive = warp_scan_reverse(scan::compose_reverse(rev), lane);
      const Pair rev_suffix = scan::reverse_exclusive(shfl_down(rev_inclusive, 1), lane);
      if (lane == kWarpSize - 1) fwd_totals[totals][warp] = fwd_inclusive;
      if (lane == 0) rev_totals[totals][warp] = rev_inclusive;
      __syncthreads();  // the step's one barrier

      const float h_before = scan::apply(fwd_prefix, scan::state_before_warp(fwd_totals[totals], warp, h_chunk));
      float states[kItems];
      scan::walk_forward(fwd, h_before, states);
      if (has_z) scan::accumulate_y(C, states, y);
      const float x_after =
          scan::apply(rev_suffix, scan::x_after_warp(rev_totals[totals], warp, kWarps, x_carry[cur][n]));
      scan::StateGrads<float> g;
      const float x_first = scan::walk_reverse(x_after, h_before, states, fwd, dt, u, B, C, dy, A_n, valid, g, ddt, du);

      // dB, dC through the warp's stripes: written blocked (one 128-bit store each), read striped.
      float* warp_dB = stripes[warp][0];
      float* warp_dC = stripes[warp][1];
      reinterpret_cast<float4*>(warp_dB)[lane] = make_float4(g.dB[0], g.dB[1], g.dB[2], g.dB[3]);
      reinterpret_cast<float4*>(warp_dC)[lane] = make_float4(g.dC[0], g.dC[1], g.dC[2], g.dC[3]);
      __syncwarp();
      const int64_t t_warp = c * kChunk + scan::warp_first_step(warp);
      float* dB_row = p.dB + b * p.bc_batch_stride + n * p.bc_state_stride + t_warp;
      float* dC_row = p.dC + b * p.bc_batch_stride + n * p.bc_state_stride + t_warp;
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        const int j = scan::striped_slot(lane, i);
        if (t_warp + j < p.seqlen) {
          atomicAdd(dB_row + j, warp_dB[j]);
          atomicAdd(dC_row + j, warp_dC[j]);
        }
      }
      const float dA = warp_sum(g.dA);
      if (lane == 0) dA_warp[n][warp] += dA;
      if (tid == 0) x_carry[scan::other_buffer(cur)][n] = x_first;  // thread 0 holds the chunk's first step
      totals = scan::other_buffer(totals);
    }

    float du_out[kItems], ddelta_out[kItems], dz_out[kItems];
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      du_out[i] = dy[i] * D_d + du[i];
      ddelta_out[i] = ddt[i] * scan::step_size_grad(delta[i], bias, p.delta_softplus);
      if (i < valid) dbias_acc += ddelta_out[i];
      dz_out[i] = dz_per_y[i] * (y[i] + D_d * u[i]);
    }
    store_items(du_row, t_first, valid, du_out);
    store_items(ddelta_row, t_first, valid, ddelta_out);
    if (has_z) store_items(dz_row, t_first, valid, dz_out);
  }

  // Block totals, each summed over the warps in a fixed order.
  const float dD_w = warp_sum(dD_acc), dbias_w = warp_sum(dbias_acc);
  if (lane == 0) {
    sums[0][warp] = dD_w;
    sums[1][warp] = dbias_w;
  }
  __syncthreads();
  const int64_t bd = b * p.dim + d;
  for (int n = tid; n < N; n += kThreads) {
    float total = 0.f;
    for (int w = 0; w < kWarps; ++w) total += dA_warp[n][w];
    p.dA_part[bd * p.dstate + n] = total;
  }
  if (tid == 0) {
    float dD = 0.f, dbias = 0.f;
    for (int w = 0; w < kWarps; ++w) {
      dD += sums[0][w];
      dbias += sums[1][w];
    }
    if (p.dD_part) p.dD_part[bd] = dD;
    if (p.ddelta_bias_part) p.ddelta_bias_part[bd] = dbias;
  }
}

template <typename T, int kThreads>
struct LaunchFwd {
  static void run(const ScanParams& p, cudaStream_t stream) {
    scan_fwd_kernel<T, kThreads>
        <<<dim3(static_cast<unsigned>(p.dim), static_cast<unsigned>(p.batch)), kThreads, 0, stream>>>(p);
  }
};
template <typename T, int kThreads>
struct LaunchBwd {
  static void run(const ScanParams& p, cudaStream_t stream) {
    scan_bwd_kernel<T, kThreads>
        <<<dim3(static_cast<unsigned>(p.dim), static_cast<unsigned>(p.batch)), kThreads, 0, stream>>>(p);
  }
};

// The block size chosen at run time, each a separate instance of the kernel.
template <template <typename, int> class Launch, typename T>
void launch_with(int threads, const ScanParams& p, cudaStream_t stream) {
  switch (threads) {
    case 32:
      Launch<T, 32>::run(p, stream);
      break;
    case 64:
      Launch<T, 64>::run(p, stream);
      break;
    default:
      Launch<T, 128>::run(p, stream);
      break;
  }
}

template <template <typename, int> class Launch>
cudaError_t dispatch(const ScanParams& p, cudaStream_t stream) {
  if (p.batch == 0 || p.dim == 0 || p.seqlen == 0) return cudaSuccess;
  if (p.dstate < 1 || p.dstate > kScanMaxDState || p.batch > 65535) return cudaErrorInvalidValue;
  if (p.n_chunks != scan::chunks_for(p.seqlen)) return cudaErrorInvalidValue;
  const int threads = scan::threads_for(p.seqlen);
  switch (p.elem) {
    case ScanElem::kFloat32:
      launch_with<Launch, float>(threads, p, stream);
      break;
    case ScanElem::kBFloat16:
      launch_with<Launch, __nv_bfloat16>(threads, p, stream);
      break;
    case ScanElem::kFloat16:
      launch_with<Launch, __half>(threads, p, stream);
      break;
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
