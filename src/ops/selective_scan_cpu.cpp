// selective_scan_cpu.cpp — ATen side of the fused CPU selective scan: converts the tensors to the
// kernel's layout (channels last, in the compute dtype; no copy when they already are), picks the
// kernel compiled for this CPU (selective_scan_cpu_kernel.h), runs its tasks with
// at::parallel_for and adds up the per-task partial sums in a fixed order, so that results are
// bitwise the same for any number of threads.
#include "selective_scan_dispatch.h"

#include "cpu_capability.h"
#include "selective_scan_cpu_kernel.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <c10/util/Exception.h>

#include <string>
#include <vector>

namespace hgpt::ops::detail {
namespace {

using cpu_scan::Rows;
using cpu_scan::ScanArgs;

template <typename T>
void run_tasks(const ScanArgs<T>& a, bool backward, int64_t begin, int64_t end, T* scratch) {
  switch (cpu_capability()) {
#ifdef HGPT_SCAN_HAVE_AVX512
    case Capability::Avx512:
      return backward ? cpu_scan::AVX512::bwd_tasks(a, begin, end, scratch)
                      : cpu_scan::AVX512::fwd_tasks(a, begin, end, scratch);
#endif
#ifdef HGPT_SCAN_HAVE_AVX2
    case Capability::Avx2:
      return backward ? cpu_scan::AVX2::bwd_tasks(a, begin, end, scratch)
                      : cpu_scan::AVX2::fwd_tasks(a, begin, end, scratch);
#endif
    default:
      return backward ? cpu_scan::DEFAULT::bwd_tasks(a, begin, end, scratch)
                      : cpu_scan::DEFAULT::fwd_tasks(a, begin, end, scratch);
  }
}

// A task is one batch row's block of kTaskChannels channels.
int64_t tasks_per_batch(int64_t dim) { return (dim + cpu_scan::kTaskChannels - 1) / cpu_scan::kTaskChannels; }

// The one place the scan's tasks are spread over the threads: fn(begin, end) for ranges of them.
template <typename Fn>
void spread_tasks(int64_t n_tasks, const Fn& fn) {
  at::parallel_for(0, n_tasks, 1, fn);
}

// Every task once, spread over the threads; each thread owns one scratch buffer.
template <typename T>
void parallel_tasks(const ScanArgs<T>& a, bool backward) {
  const int64_t n_tasks = a.batch * a.tasks_per_batch;
  const int64_t scratch = backward ? cpu_scan::bwd_scratch_size(a.dstate) : cpu_scan::fwd_scratch_size(a.dstate);
  spread_tasks(n_tasks, [&](int64_t begin, int64_t end) {
    // Kept per thread across calls: a fresh buffer of this size would be fresh pages each time.
    thread_local std::vector<T> buffer;
    if (buffer.size() < static_cast<size_t>(scratch)) buffer.resize(static_cast<size_t>(scratch));
    run_tasks(a, backward, begin, end, buffer.data());
  });
}

// ---- Layout: a (B, X, L) tensor as (B, L, X) rows with X contiguous, in `dtype`. No copy when
// it already is (the Mamba mixer hands over transposed views of (B, L, X) activations).
at::Tensor channels_last(const at::Tensor& t, at::ScalarType dtype) {
  if (!t.defined()) return t;
  auto r = t.transpose(1, 2).to(dtype);
  return r.size(2) <= 1 || r.stride(2) == 1 ? r : r.contiguous();
}

template <typename T>
Rows<const T> rows_of(const at::Tensor& t) {
  if (!t.defined()) return {};
  return {t.data_ptr<T>(), t.stride(0), t.stride(1)};
}

template <typename T>
const T* ptr_or_null(const at::Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

// The inputs in the kernel's layout and dtype (kept alive while the kernel runs).
struct Prepared {
  at::Tensor u, delta, z, B, C, A_t, D, bias, reset;
};

Prepared prepare(const ScanInputs& in, at::ScalarType dtype) {
  auto flat = [dtype](const at::Tensor& t) { return t.defined() ? t.to(dtype).contiguous() : t; };
  return {channels_last(in.u, dtype),
          channels_last(in.delta, dtype),
          channels_last(in.z, dtype),
          channels_last(in.B, dtype),
          channels_last(in.C, dtype),
          flat(in.A.t()),
          flat(in.D_skip),
          flat(in.delta_bias),
          in.reset.defined() ? in.reset.contiguous() : in.reset};
}

template <typename T>
ScanArgs<T> make_args(const Prepared& p, bool delta_softplus) {
  ScanArgs<T> a;
  a.batch = p.u.size(0);
  a.seqlen = p.u.size(1);
  a.dim = p.u.size(2);
  a.dstate = p.A_t.size(0);
  a.n_chunks = (a.seqlen + cpu_scan::kChunk - 1) / cpu_scan::kChunk;
  a.dim_padded = (a.dim + cpu_scan::kMaxLanes - 1) / cpu_scan::kMaxLanes * cpu_scan::kMaxLanes;
  a.tasks_per_batch = tasks_per_batch(a.dim);
  a.softplus = delta_softplus;
  a.u = rows_of<T>(p.u);
  a.delta = rows_of<T>(p.delta);
  a.z = rows_of<T>(p.z);
  a.B = rows_of<T>(p.B);
  a.C = rows_of<T>(p.C);
  a.A_t = p.A_t.data_ptr<T>();
  a.D = ptr_or_null<T>(p.D);
  a.bias = ptr_or_null<T>(p.bias);
  a.reset = ptr_or_null<bool>(p.reset);
  return a;
}

at::ScalarType compute_type(const at::Tensor& u) { return u.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// (B, L, X) → the (B, X, L) view the callers see.
at::Tensor as_bxl(const at::Tensor& t) { return t.defined() ? t.transpose(1, 2) : t; }

template <typename T>
ScanFwdResult fwd_impl(const ScanInputs& in) {
  const Prepared p = prepare(in, compute_type(in.u));
  auto a = make_args<T>(p, in.delta_softplus);
  const auto opts = p.u.options();
  at::Tensor out = new_output({a.batch, a.seqlen, a.dim}, opts);
  at::Tensor ckpt = new_output({a.batch, a.n_chunks, a.dstate, a.dim_padded}, opts);
  at::Tensor last = new_output({a.batch, a.dstate, a.dim}, opts);
  a.out = out.data_ptr<T>();
  a.checkpoints = ckpt.data_ptr<T>();
  a.last_state = last.data_ptr<T>();
  parallel_tasks(a, /*backward=*/false);
  return {as_bxl(out).to(in.u.scalar_type()), ckpt, as_bxl(last)};
}

// Σ over dim 1 of (B, G, ...) in the order g = 0, 1, ...: (B, ...).
at::Tensor sum_groups_in_order(const at::Tensor& part) {
  auto total = part.select(1, 0).clone();
  for (int64_t g = 1; g < part.size(1); ++g) total.add_(part.select(1, g));
  return total;
}
at::Tensor sum_batch_in_order(const at::Tensor& part) {
  auto total = part.select(0, 0).clone();
  for (int64_t b = 1; b < part.size(0); ++b) total.add_(part.select(0, b));
  return total;
}

template <typename T>
ScanGrads bwd_impl(const ScanSaved& saved, const at::Tensor& dout) {
  const ScanInputs& in = saved.in;
  const auto dtype = compute_type(in.u);
  const Prepared p = prepare(in, dtype);
  auto a = make_args<T>(p, in.delta_softplus);
  const int64_t Bn = a.batch, L = a.seqlen, Dn = a.dim, N = a.dstate, tasks = a.tasks_per_batch;
  const auto opts = p.u.options();
  const auto ckpt = saved.checkpoints.to(dtype).contiguous();
  const auto dout_rows = channels_last(dout, dtype);
  auto du = new_output({Bn, L, Dn}, opts), ddelta = new_output({Bn, L, Dn}, opts);
  auto dz = p.z.defined() ? new_output({Bn, L, Dn}, opts) : at::Tensor();
  auto dB_part = new_output({Bn, tasks, L, N}, opts);
  auto dC_part = new_output({Bn, tasks, L, N}, opts);
  auto dA_part = new_output({Bn, N, Dn}, opts);
  auto dD_part = new_output({Bn, Dn}, opts), dbias_part = new_output({Bn, Dn}, opts);
  a.checkpoints = const_cast<T*>(ckpt.data_ptr<T>());
  a.dout = rows_of<T>(dout_rows);
  a.du = du.data_ptr<T>();
  a.ddelta = ddelta.data_ptr<T>();
  a.dz = dz.defined() ? dz.data_ptr<T>() : nullptr;
  a.dB_part = dB_part.data_ptr<T>();
  a.dC_part = dC_part.data_ptr<T>();
  a.dA_part = dA_part.data_ptr<T>();
  a.dD_part = dD_part.data_ptr<T>();
  a.dbias_part = dbias_part.data_ptr<T>();
  parallel_tasks(a, /*backward=*/true);

  ScanGrads r;
  r.du = as_bxl(du);
  r.ddelta = as_bxl(ddelta);
  r.dz = as_bxl(dz);
  r.dB = as_bxl(sum_groups_in_order(dB_part));
  r.dC = as_bxl(sum_groups_in_order(dC_part));
  r.dA = sum_batch_in_order(dA_part).t();
  r.dD = sum_batch_in_order(dD_part);
  r.ddelta_bias = sum_batch_in_order(dbias_part);
  return r;
}

}  // namespace

const char* scan_cpu_capability() { return cpu_capability_name(); }

int scan_cpu_threads_used(int64_t batch, int64_t dim) {
  const int64_t tasks = batch * tasks_per_batch(dim);
  // Through spread_tasks, as parallel_tasks.
  std::vector<char> used(static_cast<size_t>(at::get_num_threads()), 0);
  spread_tasks(tasks, [&](int64_t, int64_t) { used[static_cast<size_t>(at::get_thread_num())] = 1; });
  int n = 0;
  for (char u : used) n += u;
  return n;
}

ScanFwdResult scan_fwd_cpu(const ScanInputs& in) {
  TORCH_CHECK(in.u.device().is_cpu(), "selective_scan (fused CPU): inputs must be CPU tensors");
  return compute_type(in.u) == at::kDouble ? fwd_impl<double>(in) : fwd_impl<float>(in);
}

ScanGrads scan_bwd_cpu(const ScanSaved& saved, const at::Tensor& dout) {
  const ScanInputs& in = saved.in;
  TORCH_CHECK(in.u.device().is_cpu(), "selective_scan (fused CPU): inputs must be CPU tensors");
  ScanGrads r = compute_type(in.u) == at::kDouble ? bwd_impl<double>(saved, dout) : bwd_impl<float>(saved, dout);
  // Each gradient in its input's dtype.
  auto cast = [](const at::Tensor& g, const at::Tensor& like) {
    return g.defined() && like.defined() ? g.to(like.scalar_type()) : at::Tensor();
  };
  return {cast(r.du, in.u), cast(r.ddelta, in.delta), cast(r.dA, in.A), cast(r.dB, in.B),
          cast(r.dC, in.C), cast(r.dD, in.D_skip),    cast(r.dz, in.z), cast(r.ddelta_bias, in.delta_bias)};
}

}  // namespace hgpt::ops::detail
