// scan_thread.h — what one thread of the CUDA selective scan computes between two block barriers:
// how a chunk of the sequence is laid out over the threads, the (a, b) pairs and their
// composition, the steps of the warp scans, and the walks over a thread's own steps forward and
// backward. Plain C++ that nvcc and a host compiler both accept: the kernels (selective_scan.cu)
// call these functions, and the host emulation of the kernels
// (tests/ops/test_selective_scan_cuda_emulation.cpp) calls the same functions, in float and in
// double, against the reference scan. The rest of each kernel — where its barriers are, which
// thread writes which shared slot, the B/C prefetch, the vector loads, the dB/dC stripe
// addresses, the launcher — the emulation transcribes by hand in the kernels' thread, warp and
// barrier order: a change to selective_scan.cu must be made there too, or the test no longer
// speaks for the kernel.
//
// Notation (per batch row, channel and state n): Δ_t the step size, a_t = exp(Δ_t·A_n) the decay,
// b_t = Δ_t·B_t·u_t the input; h_t = a_t·h_{t−1} + b_t. The backward carries
// x_t = a_t·∂L/∂h_t from later steps to earlier ones: ∂L/∂h_t = C_t·dy_t + x_{t+1}.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define HGPT_SCAN_FN __host__ __device__ __forceinline__
#else
#define HGPT_SCAN_FN inline
#endif

namespace hgpt::kernels::scan {

// ---- chunk layout --------------------------------------------------------------------------
// A block of 32, 64 or 128 threads walks the sequence in chunks of threads × kItems steps. Thread
// tid holds the kItems consecutive steps first_item(tid) … first_item(tid) + kItems − 1 of each
// chunk (a blocked layout), in the forward and in the backward, so the decays and states it
// computes stay in its registers.
constexpr int kItems = 4;
constexpr int kWarpSize = 32;
constexpr int kMaxThreads = 128;
constexpr int kMaxWarps = kMaxThreads / kWarpSize;
constexpr int kMaxDState = 64;

// The fewest threads whose chunk covers L (128 beyond 256 steps), so a short sequence does not
// leave most threads on padding.
constexpr int threads_for(int64_t seqlen) { return seqlen <= 128 ? 32 : seqlen <= 256 ? 64 : kMaxThreads; }
constexpr int64_t chunk_for(int64_t seqlen) { return int64_t{threads_for(seqlen)} * kItems; }
constexpr int64_t chunks_for(int64_t seqlen) { return (seqlen + chunk_for(seqlen) - 1) / chunk_for(seqlen); }

HGPT_SCAN_FN int first_item(int tid) { return tid * kItems; }
// How many of the thread's steps starting at t_first lie inside the sequence; the rest is padding
// (identity pairs, never written). Only the last thread(s) of the last chunk have padding.
HGPT_SCAN_FN int valid_items(int64_t t_first, int64_t seqlen) {
  const int64_t left = seqlen - t_first;
  return left <= 0 ? 0 : left >= kItems ? kItems : static_cast<int>(left);
}

// dB and dC are summed over channels with atomics. In the blocked layout the 32 atomics of one
// warp instruction would be 4 steps apart (16 memory sectors); each warp instead passes its
// kWarpSize·kItems values through shared memory — lane l writes slots first_item(l) + i, then reads
// slots striped_slot(l, i) — so one instruction covers 32 consecutive steps (4 sectors).
HGPT_SCAN_FN int warp_first_step(int warp) { return warp * kWarpSize * kItems; }  // within the chunk
HGPT_SCAN_FN int striped_slot(int lane, int i) { return i * kWarpSize + lane; }

// ---- scalar maths --------------------------------------------------------------------------
// On the device these are the fast fp32 intrinsics the kernels were always built with
// (--use_fast_math); on the host the exact functions (the emulation's float and double runs).
template <typename F>
HGPT_SCAN_FN F exp_of(F x) {
#if defined(__CUDA_ARCH__)
  return __expf(x);
#else
  return std::exp(x);
#endif
}
template <typename F>
HGPT_SCAN_FN F sigmoid(F x) {
  return F(1) / (F(1) + exp_of(-x));
}
// torch's softplus (threshold 20) and its derivative.
template <typename F>
HGPT_SCAN_FN F softplus(F x) {
#if defined(__CUDA_ARCH__)
  return x > 20.f ? x : log1pf(expf(x));
#else
  return x > F(20) ? x : std::log1p(std::exp(x));
#endif
}
template <typename F>
HGPT_SCAN_FN F step_size(F delta, F bias, bool delta_softplus) {
  return delta_softplus ? softplus(delta + bias) : delta + bias;
}
template <typename F>
HGPT_SCAN_FN F step_size_grad(F delta, F bias, bool delta_softplus) {  // dΔ/d(delta)
  return delta_softplus && delta + bias <= F(20) ? sigmoid(delta + bias) : F(1);
}

// out = (y + D·u)·SiLU(z), z optional.
template <typename F>
HGPT_SCAN_FN F output_of(F y, F D, F u, F z, bool has_z) {
  const F pre = y + D * u;
  return has_z ? pre * (z * sigmoid(z)) : pre;
}
// From ∂L/∂out: dy = ∂L/∂y (the scan's own output gradient) and dz_per_y, with
// ∂L/∂z = dz_per_y · (y + D·u). Neither needs y, so the backward gets dy before its scan and
// multiplies dz out once the scan has recomputed y.
template <typename F>
HGPT_SCAN_FN void output_grads(F dout, F z, bool has_z, F& dy, F& dz_per_y) {
  if (!has_z) {
    dy = dout;
    dz_per_y = F(0);
    return;
  }
  const F sz = sigmoid(z);
  dy = dout * (z * sz);
  dz_per_y = dout * sz * (F(1) + z * (F(1) - sz));
}

// ---- the scan operator ---------------------------------------------------------------------
template <typename F>
struct Pair {
  F a, b;  // h ↦ a·h + b
};
template <typename F>
HGPT_SCAN_FN Pair<F> identity_pair() {
  return {F(1), F(0)};
}
// first, then second.
template <typename F>
HGPT_SCAN_FN Pair<F> then(const Pair<F>& first, const Pair<F>& second) {
  return {second.a * first.a, second.a * first.b + second.b};
}
template <typename F>
HGPT_SCAN_FN F apply(const Pair<F>& p, F h) {
  return p.a * h + p.b;
}

// ---- warp scans (Hillis–Steele, offsets 1, 2, 4, 8, 16) --------------------------------------
// One step of the forward scan: `below` is the inclusive value `offset` lanes below (earlier
// steps), as a shuffle-up returns it (the lane's own value where there is no such lane).
template <typename F>
HGPT_SCAN_FN Pair<F> forward_scan_step(const Pair<F>& own, const Pair<F>& below, int lane, int offset) {
  return lane >= offset ? then(below, own) : own;
}
// One step of the reverse scan: `above` covers later steps, so it is applied first.
template <typename F>
HGPT_SCAN_FN Pair<F> reverse_scan_step(const Pair<F>& own, const Pair<F>& above, int lane, int offset) {
  return lane + offset < kWarpSize ? then(above, own) : own;
}
// Exclusive values from the inclusive value of the neighbouring lane (shuffled by 1).
template <typename F>
HGPT_SCAN_FN Pair<F> forward_exclusive(const Pair<F>& below_inclusive, int lane) {
  return lane == 0 ? identity_pair<F>() : below_inclusive;
}
template <typename F>
HGPT_SCAN_FN Pair<F> reverse_exclusive(const Pair<F>& above_inclusive, int lane) {
  return lane == kWarpSize - 1 ? identity_pair<F>() : above_inclusive;
}

// The state before warp `warp`'s first step: the chunk's start state taken through the totals of
// the warps before it, in order (each warp total is its lane 31's inclusive forward value).
template <typename F>
HGPT_SCAN_FN F state_before_warp(const Pair<F>* warp_totals, int warp, F h_chunk_start) {
  F h = h_chunk_start;
  for (int w = 0; w < warp; ++w) h = apply(warp_totals[w], h);
  return h;
}
// x after warp `warp`'s last step: x at the next chunk's first step taken back through the totals
// of the later warps, last first (each its lane 0's inclusive reverse value).
template <typename F>
HGPT_SCAN_FN F x_after_warp(const Pair<F>* warp_totals, int warp, int n_warps, F x_chunk_end) {
  F x = x_chunk_end;
  for (int w = n_warps - 1; w > warp; --w) x = apply(warp_totals[w], x);
  return x;
}

// Shared slots written before a step's barrier and read after it alternate between two buffers
// from one (chunk, state) step to the next: a warp that has passed the next barrier may already
// write its next totals while a slower warp still reads this step's. The carried state (forward)
// and x (backward) alternate by chunk for the same reason.
HGPT_SCAN_FN int other_buffer(int buffer) { return buffer ^ 1; }

// ---- a thread's steps, forward -------------------------------------------------------------
// Pairs (a_t, b_t) of the thread's steps for state n; identity past the end of the sequence.
// keep_t is 0 where a document starts (the state restarts: a_t = 0, a zero carry) and 1 elsewhere;
// every later use of a_t — the reverse pairs, ∂L/∂a_t — then sees the restart too.
template <typename F>
HGPT_SCAN_FN void forward_pairs(const F (&dt)[kItems], const F (&u)[kItems], const F (&B)[kItems],
                                const F (&keep)[kItems], F A_n, int valid, Pair<F> (&pairs)[kItems]) {
  for (int i = 0; i < kItems; ++i) {
    pairs[i] = i < valid ? Pair<F>{keep[i] * exp_of(dt[i] * A_n), dt[i] * u[i] * B[i]} : identity_pair<F>();
  }
}
// The thread's pairs composed in time order: its input to the block's forward scan.
template <typename F>
HGPT_SCAN_FN Pair<F> compose_forward(const Pair<F> (&pairs)[kItems]) {
  Pair<F> total = identity_pair<F>();
  for (int i = 0; i < kItems; ++i) total = then(total, pairs[i]);
  return total;
}
// From the state before the thread's first step: states[i] = h after step i.
template <typename F>
HGPT_SCAN_FN void walk_forward(const Pair<F> (&pairs)[kItems], F h, F (&states)[kItems]) {
  for (int i = 0; i < kItems; ++i) {
    h = apply(pairs[i], h);
    states[i] = h;
  }
}
// y_t += C_t·h_t for this state.
template <typename F>
HGPT_SCAN_FN void accumulate_y(const F (&C)[kItems], const F (&states)[kItems], F (&y)[kItems]) {
  for (int i = 0; i < kItems; ++i) y[i] += C[i] * states[i];
}

// ---- a thread's steps, backward ------------------------------------------------------------
// Step t maps x_{t+1} to x_t = a_t·(x_{t+1} + C_t·dy_t): the pair (a_t, a_t·C_t·dy_t), the decay
// a_t reused from the forward pairs. Identity past the end.
template <typename F>
HGPT_SCAN_FN void reverse_pairs(const Pair<F> (&fwd)[kItems], const F (&C)[kItems], const F (&dy)[kItems], int valid,
                                Pair<F> (&rev)[kItems]) {
  for (int i = 0; i < kItems; ++i) {
    rev[i] = i < valid ? Pair<F>{fwd[i].a, fwd[i].a * C[i] * dy[i]} : identity_pair<F>();
  }
}
// The thread's reverse pairs composed last step first: its input to the block's reverse scan.
template <typename F>
HGPT_SCAN_FN Pair<F> compose_reverse(const Pair<F> (&rev)[kItems]) {
  Pair<F> total = identity_pair<F>();
  for (int i = kItems - 1; i >= 0; --i) total = then(total, rev[i]);
  return total;
}

// What the thread's steps contribute to the gradients for one state.
template <typename F>
struct StateGrads {
  F dB[kItems], dC[kItems];  // this state's ∂L/∂B_t, ∂L/∂C_t (0 past the end)
  F dA;                      // Σ over the thread's steps of ∂L/∂A_n
};

// Walks the thread's steps last to first from x after its last step (x_after), with the states
// of the forward walk (h_before: the state before its first step). Adds to ddt (∂L/∂Δ) and du
// (the scan's part of ∂L/∂u), fills g, returns x at its first step.
template <typename F>
HGPT_SCAN_FN F walk_reverse(F x_after, F h_before, const F (&states)[kItems], const Pair<F> (&fwd)[kItems],
                            const F (&dt)[kItems], const F (&u)[kItems], const F (&B)[kItems], const F (&C)[kItems],
                            const F (&dy)[kItems], F A_n, int valid, StateGrads<F>& g, F (&ddt)[kItems],
                            F (&du)[kItems]) {
  F x = x_after;
  g.dA = F(0);
  for (int i = kItems - 1; i >= 0; --i) {
    g.dB[i] = F(0);
    g.dC[i] = F(0);
    if (i >= valid) continue;
    const F a = fwd[i].a;
    const F dh = x + C[i] * dy[i];  // ∂L/∂h_t
    const F h_prev = i > 0 ? states[i - 1] : h_before;
    const F dh_a = dh * h_prev * a;  // ∂L/∂a_t · a_t
    g.dC[i] = dy[i] * states[i];
    g.dB[i] = dh * dt[i] * u[i];
    ddt[i] += dh * B[i] * u[i] + dh_a * A_n;
    du[i] += dh * dt[i] * B[i];
    g.dA += dh_a * dt[i];
    x = a * dh;
  }
  return x;
}

}  // namespace hgpt::kernels::scan
