// test_selective_scan_cuda_emulation.cpp — the CUDA selective scan's kernels run on the host, so
// that their layout, scans and shared-memory protocol are checked on machines without a GPU.
//
// The emulation follows kernels/selective_scan/selective_scan.cu statement by statement and calls
// the kernels' own per-thread code (kernels/selective_scan/scan_thread.h): a block's warps are
// host threads of which exactly one runs at a time, each until its next block barrier, in a fixed
// order; a warp's 32 lanes run in a loop, and a shuffle reads the other lanes' registers as the
// hardware returns them. Running the warps in turn to the next barrier means a warp that is ahead
// does everything up to the next barrier before a slower warp reads what the barrier protects —
// the worst case of the GPU's scheduling — so a shared slot overwritten too early changes the
// result; both warp orders are run. Results in double (against the fp64 reference: the same
// maths, so agreement to rounding) and in float (the GPU tests' fp32 tolerances) on odd shapes.
// What the emulation does not cover: the device's fast exp (the host uses the exact one), global
// vector loads (the same values), the B/C prefetch (the same values one step earlier) and the
// atomics' order (dB, dC are sums either way).
#include "hgpt/ops/selective_scan.h"
#include "kernels/selective_scan/scan_thread.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace hgpt::kernels::scan {
namespace {

// ---- a block whose warps run one at a time, each to its next barrier -------------------------
class OneWarpAtATime {
 public:
  OneWarpAtATime(int n_warps, bool last_warp_first) : order_(n_warps) {
    std::iota(order_.begin(), order_.end(), 0);
    if (last_warp_first) std::reverse(order_.begin(), order_.end());
  }

  // __syncthreads(): hand over to the next warp in the order; resume when the turn comes back,
  // which is after every other warp has reached this barrier.
  void barrier(int warp) {
    std::unique_lock<std::mutex> lock(mutex_);
    pass_turn();
    wait_turn(lock, warp);
  }

  template <typename Body>
  void run(Body body) {
    std::vector<std::thread> warps;
    for (int w = 0; w < static_cast<int>(order_.size()); ++w) {
      warps.emplace_back([this, w, &body] {
        {
          std::unique_lock<std::mutex> lock(mutex_);
          wait_turn(lock, w);
        }
        body(w);
        std::lock_guard<std::mutex> lock(mutex_);
        pass_turn();
      });
    }
    for (auto& t : warps) t.join();
  }

 private:
  void pass_turn() {
    turn_ = (turn_ + 1) % order_.size();
    changed_.notify_all();
  }
  void wait_turn(std::unique_lock<std::mutex>& lock, int warp) {
    changed_.wait(lock, [&] { return order_[turn_] == warp; });
  }

  std::vector<int> order_;
  size_t turn_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
};

// ---- warp collectives on the lanes' registers, as the shuffles return them -------------------
template <typename V>
using Lanes = std::vector<V>;  // one value per lane

template <typename V>
V shuffle_up(const Lanes<V>& v, int lane, int offset) {
  return lane >= offset ? v[lane - offset] : v[lane];
}
template <typename V>
V shuffle_down(const Lanes<V>& v, int lane, int offset) {
  return lane + offset < kWarpSize ? v[lane + offset] : v[lane];
}

template <typename F>
void warp_scan_forward(Lanes<Pair<F>>& v) {
  for (int offset = 1; offset < kWarpSize; offset *= 2) {
    const Lanes<Pair<F>> before = v;
    for (int lane = 0; lane < kWarpSize; ++lane)
      v[lane] = forward_scan_step(before[lane], shuffle_up(before, lane, offset), lane, offset);
  }
}
template <typename F>
void warp_scan_reverse(Lanes<Pair<F>>& v) {
  for (int offset = 1; offset < kWarpSize; offset *= 2) {
    const Lanes<Pair<F>> before = v;
    for (int lane = 0; lane < kWarpSize; ++lane)
      v[lane] = reverse_scan_step(before[lane], shuffle_down(before, lane, offset), lane, offset);
  }
}
template <typename F>
void warp_sum(Lanes<F>& v) {  // the butterfly: v += shfl_xor(v, offset)
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const Lanes<F> before = v;
    for (int lane = 0; lane < kWarpSize; ++lane) v[lane] = before[lane] + before[lane ^ offset];
  }
}

// ---- the kernels' global memory --------------------------------------------------------------
// Inputs contiguous as the launcher passes them: u, delta, z, dout (B, D, L); B, C (B, N, L);
// A (D, N); D, bias (D).
template <typename F>
struct Problem {
  int64_t batch = 0, dim = 0, seqlen = 0, dstate = 0;
  bool has_z = false, has_D = false, has_bias = false, softplus = false;
  std::vector<F> u, delta, z, A, B, C, D, bias, dout;
  std::vector<bool> reset;  // (B, L), or empty: no document starts
  int64_t n_chunks() const { return chunks_for(seqlen); }
};

template <typename F>
struct Results {
  std::vector<F> out, checkpoints, last_state;                          // forward
  std::vector<F> du, ddelta, dz, dB, dC, dA_part, dD_part, dbias_part;  // backward
};

// v[i] = x[t_first + i], 0 past the end (the kernels' load_items).
template <typename F>
void load_items(const F* x, int64_t t_first, int valid, F (&v)[kItems]) {
  for (int i = 0; i < kItems; ++i) v[i] = i < valid ? x[t_first + i] : F(0);
}
template <typename F>
void store_items(F* x, int64_t t_first, int valid, const F (&v)[kItems]) {
  for (int i = 0; i < kItems; ++i) {
    if (i < valid) x[t_first + i] = v[i];
  }
}

// keep[i] = 0 where step t_first + i starts a document, else 1 (the kernels' load_keep).
template <typename F>
void load_keep(const Problem<F>& p, int64_t b, int64_t t_first, int valid, F (&keep)[kItems]) {
  for (int i = 0; i < kItems; ++i)
    keep[i] = !p.reset.empty() && i < valid && p.reset[b * p.seqlen + t_first + i] ? F(0) : F(1);
}

template <typename F>
F nan_of() {
  return std::numeric_limits<F>::quiet_NaN();
}

// ---- forward: one warp of block (b, d), as scan_fwd_kernel --------------------------------------
template <typename F>
struct FwdShared {
  Pair<F> warp_totals[2][kMaxWarps];
  F carry[2][kMaxDState];
  FwdShared() {  // NaN: a read before any write shows in the results
    for (auto& buf : warp_totals) std::fill(std::begin(buf), std::end(buf), Pair<F>{nan_of<F>(), nan_of<F>()});
    for (auto& buf : carry) std::fill(std::begin(buf), std::end(buf), nan_of<F>());
  }
};

template <typename F>
void forward_warp(const Problem<F>& p, int64_t b, int64_t d, int warp, FwdShared<F>& sh, OneWarpAtATime& block,
                  Results<F>& r) {
  const int threads = threads_for(p.seqlen), N = static_cast<int>(p.dstate);
  const int64_t chunk = chunk_for(p.seqlen), x_off = (b * p.dim + d) * p.seqlen;
  const F D_d = p.has_D ? p.D[d] : F(0), bias = p.has_bias ? p.bias[d] : F(0);
  F* ckpt = r.checkpoints.data() + (b * p.dim + d) * p.n_chunks() * N;
  struct Lane {
    int64_t t_first;
    int valid;
    F u[kItems], dt[kItems], keep[kItems], y[kItems], B[kItems], C[kItems];
    Pair<F> pairs[kItems], prefix;
  };
  std::vector<Lane> lanes(kWarpSize);
  Lanes<Pair<F>> inclusive(kWarpSize);
  auto tid_of = [warp](int lane) { return warp * kWarpSize + lane; };

  for (int lane = 0; lane < kWarpSize; ++lane) {
    for (int n = tid_of(lane); n < N; n += threads) sh.carry[0][n] = F(0);
  }
  block.barrier(warp);

  int totals = 0;
  for (int64_t c = 0; c < p.n_chunks(); ++c) {
    const int cur = static_cast<int>(c & 1);
    for (int lane = 0; lane < kWarpSize; ++lane) {
      Lane& l = lanes[lane];
      l.t_first = c * chunk + first_item(tid_of(lane));
      l.valid = valid_items(l.t_first, p.seqlen);
      load_items(p.u.data() + x_off, l.t_first, l.valid, l.u);
      load_items(p.delta.data() + x_off, l.t_first, l.valid, l.dt);
      load_keep(p, b, l.t_first, l.valid, l.keep);
      for (int i = 0; i < kItems; ++i) {
        l.dt[i] = step_size(l.dt[i], bias, p.softplus);
        l.y[i] = F(0);
      }
    }
    for (int n = 0; n < N; ++n) {
      const int64_t bc_row = (b * N + n) * p.seqlen;
      for (int lane = 0; lane < kWarpSize; ++lane) {
        Lane& l = lanes[lane];
        load_items(p.B.data() + bc_row, l.t_first, l.valid, l.B);
        load_items(p.C.data() + bc_row, l.t_first, l.valid, l.C);
        forward_pairs(l.dt, l.u, l.B, l.keep, p.A[d * N + n], l.valid, l.pairs);
        inclusive[lane] = compose_forward(l.pairs);
      }
      warp_scan_forward(inclusive);
      for (int lane = 0; lane < kWarpSize; ++lane) {
        lanes[lane].prefix = forward_exclusive(shuffle_up(inclusive, lane, 1), lane);
      }
      sh.warp_totals[totals][warp] = inclusive[kWarpSize - 1];
      block.barrier(warp);

      for (int lane = 0; lane < kWarpSize; ++lane) {
        Lane& l = lanes[lane];
        const F h_chunk = sh.carry[cur][n];
        F states[kItems];
        walk_forward(l.pairs, apply(l.prefix, state_before_warp(sh.warp_totals[totals], warp, h_chunk)), states);
        accumulate_y(l.C, states, l.y);
        if (tid_of(lane) == 0) ckpt[c * N + n] = h_chunk;
        if (tid_of(lane) == threads - 1) {
          sh.carry[other_buffer(cur)][n] = states[kItems - 1];
          if (c == p.n_chunks() - 1) r.last_state[(b * p.dim + d) * N + n] = states[kItems - 1];
        }
      }
      totals = other_buffer(totals);
    }
    for (int lane = 0; lane < kWarpSize; ++lane) {
      Lane& l = lanes[lane];
      F z[kItems] = {}, out[kItems];
      if (p.has_z) load_items(p.z.data() + x_off, l.t_first, l.valid, z);
      for (int i = 0; i < kItems; ++i) out[i] = output_of(l.y[i], D_d, l.u[i], z[i], p.has_z);
      store_items(r.out.data() + x_off, l.t_first, l.valid, out);
    }
  }
}

// ---- backward: one warp of block (b, d), as scan_bwd_kernel --------------------------------------
template <typename F>
struct BwdShared {
  Pair<F> fwd_totals[2][kMaxWarps], rev_totals[2][kMaxWarps];
  F x_carry[2][kMaxDState];
  F dA_warp[kMaxDState][kMaxWarps];
  F sums[2][kMaxWarps];
  F stripes[kMaxWarps][2][kWarpSize * kItems];
  BwdShared() {
    const Pair<F> nan_pair{nan_of<F>(), nan_of<F>()};
    for (auto* buf : {&fwd_totals, &rev_totals}) {
      for (auto& row : *buf) std::fill(std::begin(row), std::end(row), nan_pair);
    }
    for (auto& row : x_carry) std::fill(std::begin(row), std::end(row), nan_of<F>());
    for (auto& row : dA_warp) std::fill(std::begin(row), std::end(row), nan_of<F>());
    for (auto& row : sums) std::fill(std::begin(row), std::end(row), nan_of<F>());
    for (auto& warp : stripes) {
      for (auto& row : warp) std::fill(std::begin(row), std::end(row), nan_of<F>());
    }
  }
};

template <typename F>
void backward_warp(const Problem<F>& p, int64_t b, int64_t d, int warp, BwdShared<F>& sh, OneWarpAtATime& block,
                   Results<F>& r) {
  const int threads = threads_for(p.seqlen), warps = threads / kWarpSize, N = static_cast<int>(p.dstate);
  const int64_t chunk = chunk_for(p.seqlen), x_off = (b * p.dim + d) * p.seqlen;
  const F D_d = p.has_D ? p.D[d] : F(0), bias = p.has_bias ? p.bias[d] : F(0);
  const F* ckpt = r.checkpoints.data() + (b * p.dim + d) * p.n_chunks() * N;
  struct Lane {
    int64_t t_first;
    int valid;
    F u[kItems], delta[kItems], dt[kItems], dy[kItems], dz_per_y[kItems];
    F y[kItems], ddt[kItems], du[kItems], B[kItems], C[kItems], keep[kItems];
    Pair<F> fwd[kItems], fwd_prefix, rev_suffix;
    F dD_acc, dbias_acc;
  };
  std::vector<Lane> lanes(kWarpSize);
  Lanes<Pair<F>> fwd_inclusive(kWarpSize), rev_inclusive(kWarpSize);
  Lanes<F> dA(kWarpSize);
  auto tid_of = [warp](int lane) { return warp * kWarpSize + lane; };

  for (int lane = 0; lane < kWarpSize; ++lane) {
    for (int n = tid_of(lane); n < N; n += threads) {
      sh.x_carry[0][n] = F(0);
      for (int w = 0; w < warps; ++w) sh.dA_warp[n][w] = F(0);
    }
    lanes[lane].dD_acc = lanes[lane].dbias_acc = F(0);
  }
  block.barrier(warp);

  int totals = 0, cur = 0;
  for (int64_t c = p.n_chunks() - 1; c >= 0; --c, cur = other_buffer(cur)) {
    for (int lane = 0; lane < kWarpSize; ++lane) {
      Lane& l = lanes[lane];
      l.t_first = c * chunk + first_item(tid_of(lane));
      l.valid = valid_items(l.t_first, p.seqlen);
      F dout[kItems], z[kItems] = {};
      load_items(p.u.data() + x_off, l.t_first, l.valid, l.u);
      load_items(p.delta.data() + x_off, l.t_first, l.valid, l.delta);
      load_keep(p, b, l.t_first, l.valid, l.keep);
      load_items(p.dout.data() + x_off, l.t_first, l.valid, dout);
      if (p.has_z) load_items(p.z.data() + x_off, l.t_first, l.valid, z);
      for (int i = 0; i < kItems; ++i) {
        l.dt[i] = step_size(l.delta[i], bias, p.softplus);
        output_grads(dout[i], z[i], p.has_z, l.dy[i], l.dz_per_y[i]);
        if (i < l.valid) l.dD_acc += l.dy[i] * l.u[i];
        l.y[i] = l.ddt[i] = l.du[i] = F(0);
      }
    }
    for (int n = 0; n < N; ++n) {
      const int64_t bc_row = (b * N + n) * p.seqlen;
      const F A_n = p.A[d * N + n];
      const F h_chunk = ckpt[c * N + n];
      for (int lane = 0; lane < kWarpSize; ++lane) {
        Lane& l = lanes[lane];
        load_items(p.B.data() + bc_row, l.t_first, l.valid, l.B);
        load_items(p.C.data() + bc_row, l.t_first, l.valid, l.C);
        Pair<F> rev[kItems];
        forward_pairs(l.dt, l.u, l.B, l.keep, A_n, l.valid, l.fwd);
        reverse_pairs(l.fwd, l.C, l.dy, l.valid, rev);
        fwd_inclusive[lane] = compose_forward(l.fwd);
        rev_inclusive[lane] = compose_reverse(rev);
      }
      warp_scan_forward(fwd_inclusive);
      warp_scan_reverse(rev_inclusive);
      for (int lane = 0; lane < kWarpSize; ++lane) {
        lanes[lane].fwd_prefix = forward_exclusive(shuffle_up(fwd_inclusive, lane, 1), lane);
        lanes[lane].rev_suffix = reverse_exclusive(shuffle_down(rev_inclusive, lane, 1), lane);
      }
      sh.fwd_totals[totals][warp] = fwd_inclusive[kWarpSize - 1];
      sh.rev_totals[totals][warp] = rev_inclusive[0];
      block.barrier(warp);

      for (int lane = 0; lane < kWarpSize; ++lane) {
        Lane& l = lanes[lane];
        const F h_before = apply(l.fwd_prefix, state_before_warp(sh.fwd_totals[totals], warp, h_chunk));
        F states[kItems];
        walk_forward(l.fwd, h_before, states);
        if (p.has_z) accumulate_y(l.C, states, l.y);
        const F x_after = apply(l.rev_suffix, x_after_warp(sh.rev_totals[totals], warp, warps, sh.x_carry[cur][n]));
        StateGrads<F> g;
        const F x_first =
            walk_reverse(x_after, h_before, states, l.fwd, l.dt, l.u, l.B, l.C, l.dy, A_n, l.valid, g, l.ddt, l.du);
        for (int i = 0; i < kItems; ++i) {
          sh.stripes[warp][0][first_item(lane) + i] = g.dB[i];
          sh.stripes[warp][1][first_item(lane) + i] = g.dC[i];
        }
        dA[lane] = g.dA;
        if (tid_of(lane) == 0) sh.x_carry[other_buffer(cur)][n] = x_first;
      }
      const int64_t t_warp = c * chunk + warp_first_step(warp);  // after __syncwarp: the atomics, striped
      for (int lane = 0; lane < kWarpSize; ++lane) {
        for (int i = 0; i < kItems; ++i) {
          const int j = striped_slot(lane, i);
          if (t_warp + j < p.seqlen) {
            r.dB[bc_row + t_warp + j] += sh.stripes[warp][0][j];
            r.dC[bc_row + t_warp + j] += sh.stripes[warp][1][j];
          }
        }
      }
      warp_sum(dA);
      sh.dA_warp[n][warp] += dA[0];
      totals = other_buffer(totals);
    }
    for (int lane = 0; lane < kWarpSize; ++lane) {
      Lane& l = lanes[lane];
      F du_out[kItems], ddelta_out[kItems], dz_out[kItems];
      for (int i = 0; i < kItems; ++i) {
        du_out[i] = l.dy[i] * D_d + l.du[i];
        ddelta_out[i] = l.ddt[i] * step_size_grad(l.delta[i], bias, p.softplus);
        if (i < l.valid) l.dbias_acc += ddelta_out[i];
        dz_out[i] = l.dz_per_y[i] * (l.y[i] + D_d * l.u[i]);
      }
      store_items(r.du.data() + x_off, l.t_first, l.valid, du_out);
      store_items(r.ddelta.data() + x_off, l.t_first, l.valid, ddelta_out);
      if (p.has_z) store_items(r.dz.data() + x_off, l.t_first, l.valid, dz_out);
    }
  }

  Lanes<F> dD(kWarpSize), dbias(kWarpSize);
  for (int lane = 0; lane < kWarpSize; ++lane) {
    dD[lane] = lanes[lane].dD_acc;
    dbias[lane] = lanes[lane].dbias_acc;
  }
  warp_sum(dD);
  warp_sum(dbias);
  sh.sums[0][warp] = dD[0];
  sh.sums[1][warp] = dbias[0];
  block.barrier(warp);
  const int64_t bd = b * p.dim + d;
  for (int lane = 0; lane < kWarpSize; ++lane) {
    for (int n = tid_of(lane); n < N; n += threads) {
      F total = F(0);
      for (int w = 0; w < warps; ++w) total += sh.dA_warp[n][w];
      r.dA_part[bd * N + n] = total;
    }
    if (tid_of(lane) == 0) {
      F dD_total = F(0), dbias_total = F(0);
      for (int w = 0; w < warps; ++w) {
        dD_total += sh.sums[0][w];
        dbias_total += sh.sums[1][w];
      }
      r.dD_part[bd] = dD_total;
      r.dbias_part[bd] = dbias_total;
    }
  }
}

// Both kernels over the grid, each block's warps in the given order. Outputs start NaN (as the
// GPU tests poison them) except dB/dC, which the launcher zeroes for the atomics.
template <typename F>
Results<F> emulate(const Problem<F>& p, bool last_warp_first) {
  const int64_t x_size = p.batch * p.dim * p.seqlen, N = p.dstate;
  Results<F> r;
  for (auto* v : {&r.out, &r.du, &r.ddelta, &r.dz}) v->assign(x_size, nan_of<F>());
  r.checkpoints.assign(p.batch * p.dim * p.n_chunks() * N, nan_of<F>());
  r.last_state.assign(p.batch * p.dim * N, nan_of<F>());
  r.dA_part.assign(p.batch * p.dim * N, nan_of<F>());
  r.dD_part.assign(p.batch * p.dim, nan_of<F>());
  r.dbias_part.assign(p.batch * p.dim, nan_of<F>());
  r.dB.assign(p.batch * N * p.seqlen, F(0));
  r.dC.assign(p.batch * N * p.seqlen, F(0));
  const int warps = threads_for(p.seqlen) / kWarpSize;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t d = 0; d < p.dim; ++d) {
      FwdShared<F> sh;
      OneWarpAtATime block(warps, last_warp_first);
      block.run([&](int warp) { forward_warp(p, b, d, warp, sh, block, r); });
    }
  }
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t d = 0; d < p.dim; ++d) {
      BwdShared<F> sh;
      OneWarpAtATime block(warps, last_warp_first);
      block.run([&](int warp) { backward_warp(p, b, d, warp, sh, block, r); });
    }
  }
  return r;
}

// ---- the test: emulation vs the reference scan ---------------------------------------------
struct Case {
  int64_t seqlen, dstate;
  bool with_z, with_bias, softplus;
  bool with_reset = false;  // document starts at random steps, at the first and at chunk edges
};

std::string describe(const Case& c) {
  return "L=" + std::to_string(c.seqlen) + " N=" + std::to_string(c.dstate) + " z=" + std::to_string(c.with_z) +
         " bias=" + std::to_string(c.with_bias) + " softplus=" + std::to_string(c.softplus) +
         " reset=" + std::to_string(c.with_reset);
}

template <typename F>
std::vector<F> values_of(const at::Tensor& t) {
  if (!t.defined()) return {};
  const auto c = t.to(at::kDouble).contiguous();
  const double* p = c.data_ptr<double>();
  return std::vector<F>(p, p + c.numel());
}

at::Tensor tensor_of(const std::vector<double>& v, at::IntArrayRef sizes) {
  return at::tensor(v, at::TensorOptions().dtype(at::kDouble)).view(sizes);
}

// |actual − expected| ≤ rtol·|expected| + atol elementwise (the GPU tests' rule), and no NaN.
void expect_close(const at::Tensor& actual, const at::Tensor& expected, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  ASSERT_FALSE(at::isnan(actual).any().item<bool>()) << what << ": NaN (an element never written, or read too early)";
  const auto excess = (actual - expected).abs() - (expected.abs() * rtol + atol);
  EXPECT_LE(excess.max().item<double>(), 0.0)
      << what << ": max |diff| = " << (actual - expected).abs().max().item<double>()
      << ", max |expected| = " << expected.abs().max().item<double>();
}

// The reference's many tiny ATen ops run fastest on one intra-op thread (on a busy machine, more
// threads spin at barriers); the previous count is restored afterwards.
class OneIntraOpThread {
 public:
  OneIntraOpThread() : saved_(at::get_num_threads()) { at::set_num_threads(1); }
  ~OneIntraOpThread() { at::set_num_threads(saved_); }

 private:
  int saved_;
};

// Runs the emulation in F on inputs rounded to F, once per warp order, and compares every output
// with the fp64 reference on the same rounded values (loss Σ out·w, w = the emulation's dout).
template <typename F>
void check_case(const Case& c, uint64_t seed, double rtol, double atol, const std::vector<bool>& last_warp_first) {
  const OneIntraOpThread one_thread;
  const int64_t Bn = 2, Dn = 2, L = c.seqlen, N = c.dstate;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const auto round = [](const at::Tensor& t) { return t.to(c10::CppTypeToScalarType<F>::value).to(at::kDouble); };
  ops::ScanInputs in;
  in.u = round(at::randn({Bn, Dn, L}, gen, f64));
  in.delta =
      round(c.softplus ? at::randn({Bn, Dn, L}, gen, f64) * 0.7 - 0.5 : at::rand({Bn, Dn, L}, gen, f64) * 0.5 + 0.05);
  in.A = round(-(at::rand({Dn, N}, gen, f64) * 1.5 + 0.2));
  in.B = round(at::randn({Bn, N, L}, gen, f64));
  in.C = round(at::randn({Bn, N, L}, gen, f64));
  in.D_skip = round(at::randn({Dn}, gen, f64));
  if (c.with_z) in.z = round(at::randn({Bn, Dn, L}, gen, f64));
  if (c.with_bias) in.delta_bias = round(at::rand({Dn}, gen, f64) * 0.5 + 0.1);
  in.delta_softplus = c.softplus;
  if (c.with_reset) {
    in.reset = at::rand({Bn, L}, gen, f64) < 0.05;
    in.reset.select(1, 0).fill_(true);
    for (int64_t t : {chunk_for(L) - 1, chunk_for(L), chunk_for(L) + 1}) {
      if (t < L) in.reset.select(1, t).fill_(true);
    }
  }
  const auto w = round(at::randn({Bn, Dn, L}, gen, f64));

  // The oracle: the reference scan in fp64 through autograd.
  ops::ScanInputs ref = in;
  std::vector<at::Tensor*> leaves_of = {&ref.u, &ref.delta,  &ref.A, &ref.B,
                                        &ref.C, &ref.D_skip, &ref.z, &ref.delta_bias};
  std::vector<at::Tensor> leaves;
  for (at::Tensor* t : leaves_of) {
    if (t->defined()) {
      *t = t->clone().requires_grad_(true);
      leaves.push_back(*t);
    }
  }
  const auto expected = ops::selective_scan_reference(ref, true);
  const auto grads = torch::autograd::grad({(expected.out * w).sum()}, leaves);
  std::vector<at::Tensor> expected_grads;
  size_t k = 0;
  for (at::Tensor* t : leaves_of) expected_grads.push_back(t->defined() ? grads[k++] : at::Tensor());

  Problem<F> p;
  p.batch = Bn, p.dim = Dn, p.seqlen = L, p.dstate = N;
  p.has_z = c.with_z, p.has_D = true, p.has_bias = c.with_bias, p.softplus = c.softplus;
  p.u = values_of<F>(in.u), p.delta = values_of<F>(in.delta), p.z = values_of<F>(in.z), p.A = values_of<F>(in.A);
  p.B = values_of<F>(in.B), p.C = values_of<F>(in.C), p.D = values_of<F>(in.D_skip),
  p.bias = values_of<F>(in.delta_bias);
  p.dout = values_of<F>(w);
  if (in.reset.defined()) {
    const auto flags = in.reset.contiguous();
    p.reset.assign(flags.data_ptr<bool>(), flags.data_ptr<bool>() + flags.numel());
  }
  auto as_tensor = [](const std::vector<F>& v, at::IntArrayRef sizes) {
    return tensor_of(std::vector<double>(v.begin(), v.end()), sizes);
  };
  const char* names[] = {"du", "ddelta", "dA", "dB", "dC", "dD", "dz", "ddelta_bias"};
  for (bool order : last_warp_first) {
    const Results<F> r = emulate(p, order);
    const std::string what = describe(c) + (order ? " (last warp first)" : " (first warp first)");
    expect_close(as_tensor(r.out, {Bn, Dn, L}), expected.out.detach(), rtol, atol, "out " + what);
    expect_close(as_tensor(r.last_state, {Bn, Dn, N}), expected.last_state.detach(), rtol, atol, "last_state " + what);
    // The launcher sums the per-(batch, channel) partials over the batch.
    const std::vector<at::Tensor> got = {as_tensor(r.du, {Bn, Dn, L}),
                                         as_tensor(r.ddelta, {Bn, Dn, L}),
                                         as_tensor(r.dA_part, {Bn, Dn, N}).sum(0),
                                         as_tensor(r.dB, {Bn, N, L}),
                                         as_tensor(r.dC, {Bn, N, L}),
                                         as_tensor(r.dD_part, {Bn, Dn}).sum(0),
                                         c.with_z ? as_tensor(r.dz, {Bn, Dn, L}) : at::Tensor(),
                                         c.with_bias ? as_tensor(r.dbias_part, {Bn, Dn}).sum(0) : at::Tensor()};
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].defined(), expected_grads[i].defined()) << names[i];
      if (got[i].defined()) expect_close(got[i], expected_grads[i], rtol, atol, std::string(names[i]) + " " + what);
    }
  }
}

// Every length that changes the layout: 1 step, one short of a 128-step chunk, one short of and
// one past a 512-step chunk, several full chunks; d_state 1, odd, the model's 16 and the maximum.
std::vector<Case> odd_cases() {
  std::vector<Case> cases;
  int k = 0;
  for (int64_t L : {1, 127, 511, 513, 2048}) {
    for (int64_t N : {1, 7, 16, 64}) {
      cases.push_back({L, N, k % 2 == 0, k % 3 != 1, k % 4 != 3});
      ++k;
    }
  }
  return cases;
}

TEST(SelectiveScanCudaEmulation, DoubleMatchesReference) {
  uint64_t seed = 7000;
  for (const Case& c : odd_cases()) check_case<double>(c, seed++, 1e-9, 1e-9, {false, true});
}

TEST(SelectiveScanCudaEmulation, FloatWithinTheGpuTestsTolerances) {
  uint64_t seed = 8000;
  for (const Case& c : odd_cases()) {
    check_case<float>(c, seed++, 6e-4, 2e-3, {true});
  }
}

// The switch points of the block size (32, 64, 128 threads), with and without every option.
// Document starts (the reset flags): the zero carry inside a thread's steps, across lanes, warps
// and chunks, forward and backward.
TEST(SelectiveScanCudaEmulation, DocumentResetsMatchReference) {
  uint64_t seed = 9500;
  for (const Case& c : odd_cases()) {
    if (c.seqlen > 513) continue;  // two chunks already cross a chunk edge
    Case with_reset = c;
    with_reset.with_reset = true;
    check_case<double>(with_reset, seed++, 1e-9, 1e-9, {false, true});
  }
}

TEST(SelectiveScanCudaEmulation, BlockSizeSwitchPointsAndOptions) {
  uint64_t seed = 9000;
  for (int64_t L : {128, 129, 256, 257}) {
    for (const Case& c : {Case{L, 3, true, true, true}, Case{L, 3, false, false, false}}) {
      check_case<double>(c, seed++, 1e-9, 1e-9, {false, true});
    }
  }
}

}  // namespace
}  // namespace hgpt::kernels::scan
