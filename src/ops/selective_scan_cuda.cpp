// selective_scan_cuda.cpp — ATen side of the fused CUDA selective scan: checks and converts the
// tensors (activations in one of fp32/bf16/fp16, B and C in that dtype or fp32, the rest fp32, all
// contiguous), allocates the outputs and calls the plain launcher on the current stream. CUDA
// builds only.
#include "selective_scan_dispatch.h"

#include "kernels/selective_scan/selective_scan.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>

#include <vector>

namespace hgpt::ops::detail {
namespace {

using hgpt::kernels::ScanElem;
using hgpt::kernels::ScanParams;
static_assert(kCudaScanChunk == hgpt::kernels::kScanChunk, "chunk sizes out of sync");

struct CudaPrepared {
  at::Tensor u, delta, z, A, B, C, D, bias, reset;
  ScanParams p;
};

ScanElem elem_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return ScanElem::kFloat32;
    case at::kBFloat16:
      return ScanElem::kBFloat16;
    case at::kHalf:
      return ScanElem::kFloat16;
    default:
      break;
  }
  TORCH_CHECK(false, "selective_scan (CUDA): u must be fp32, bf16 or fp16, got ", t);
}

CudaPrepared prepare(const ScanInputs& in) {
  const at::Tensor &u = in.u, &delta = in.delta, &A = in.A, &B = in.B, &C = in.C, &D = in.D_skip;
  const at::Tensor &z = in.z, &delta_bias = in.delta_bias;
  const bool delta_softplus = in.delta_softplus;
  TORCH_CHECK(u.is_cuda(), "selective_scan (CUDA): inputs must be CUDA tensors");
  elem_of(u.scalar_type());  // rejects fp64 and other dtypes up front
  const auto dstate = A.size(1);
  TORCH_CHECK(dstate >= 1 && dstate <= hgpt::kernels::kScanMaxDState, "selective_scan (CUDA): d_state must be in [1, ",
              hgpt::kernels::kScanMaxDState, "], got ", dstate);
  TORCH_CHECK(u.size(0) <= 65535, "selective_scan (CUDA): batch must be at most 65535, got ", u.size(0));
  CudaPrepared r;
  // The kernel reads u, delta and z in one dtype: u's when they all share it, else fp32, so that
  // an fp32 delta next to a bf16 u is never rounded down (outputs go back to each input's dtype).
  const bool same = delta.scalar_type() == u.scalar_type() && (!z.defined() || z.scalar_type() == u.scalar_type());
  const auto act = same ? u.scalar_type() : at::kFloat;
  auto as_act = [act](const at::Tensor& t) { return t.defined() ? t.to(act).contiguous() : t; };
  auto as_f32 = [](const at::Tensor& t) { return t.defined() ? t.to(at::kFloat).contiguous() : t; };
  r.u = as_act(u);
  r.delta = as_act(delta);
  r.z = as_act(z);
  r.A = as_f32(A);
  // B and C are read in their own dtype when it is the activations' (the kernel widens them as it
  // stages them), so the common bf16 case needs no separate widening pass; else fp32.
  const bool bc_as_act = B.scalar_type() == act && C.scalar_type() == act;
  auto as_bc = [&](const at::Tensor& t) { return bc_as_act ? t.contiguous() : as_f32(t); };
  r.B = as_bc(B);
  r.C = as_bc(C);
  r.D = as_f32(D);
  r.bias = as_f32(delta_bias);
  r.reset = in.reset.defined() ? in.reset.contiguous() : in.reset;

  ScanParams& p = r.p;
  p.elem = elem_of(act);
  p.batch = u.size(0);
  p.dim = u.size(1);
  p.seqlen = u.size(2);
  p.dstate = dstate;
  const int64_t chunk = hgpt::kernels::scan_chunk_for(p.seqlen);
  p.n_chunks = (p.seqlen + chunk - 1) / chunk;
  p.x_batch_stride = p.dim * p.seqlen;
  p.x_dim_stride = p.seqlen;
  p.bc_batch_stride = dstate * p.seqlen;
  p.bc_state_stride = p.seqlen;
  p.delta_softplus = delta_softplus;
  p.u = r.u.data_ptr();
  p.delta = r.delta.data_ptr();
  p.z = r.z.defined() ? r.z.data_ptr() : nullptr;
  p.A = r.A.data_ptr<float>();
  p.B = r.B.data_ptr();
  p.C = r.C.data_ptr();
  p.bc_is_float = r.B.scalar_type() == at::kFloat;
  p.D = r.D.defined() ? r.D.data_ptr<float>() : nullptr;
  p.delta_bias = r.bias.defined() ? r.bias.data_ptr<float>() : nullptr;
  p.reset = r.reset.defined() ? r.reset.data_ptr<bool>() : nullptr;
  return r;
}

// An error left pending by earlier asynchronous work would otherwise be returned by this launch's
// cudaGetLastError() and blamed on it: report it as the earlier error it is, before launching.
void check_no_pending_error(const char* pass) {
  const cudaError_t earlier = cudaGetLastError();
  TORCH_CHECK(earlier == cudaSuccess, "selective_scan (CUDA) ", pass,
              ": a CUDA error from earlier work was pending "
              "before the launch (not this kernel's): ",
              cudaGetErrorString(earlier));
}

void check_launch(cudaError_t err, const char* pass, const ScanParams& p) {
  TORCH_CHECK(err == cudaSuccess, "selective_scan (CUDA) ", pass, " kernel launch failed for B=", p.batch, " D=", p.dim,
              " L=", p.seqlen, " N=", p.dstate, ": ", cudaGetErrorString(err));
}

}  // namespace

ScanFwdResult scan_fwd_cuda(const ScanInputs& in) {
  const at::Tensor& u = in.u;
  const c10::cuda::CUDAGuard guard(u.device());
  CudaPrepared r = prepare(in);
  ScanParams& p = r.p;
  const auto f32 = u.options().dtype(at::kFloat);
  ScanFwdResult out;
  out.out = new_output(r.u.sizes(), r.u.options());
  out.checkpoints = new_output({p.batch, p.dim, p.n_chunks, p.dstate}, f32);
  out.last_state = new_output({p.batch, p.dim, p.dstate}, f32);
  p.out = out.out.data_ptr();
  p.checkpoints = out.checkpoints.data_ptr<float>();
  p.last_state = out.last_state.data_ptr<float>();
  check_no_pending_error("forward");
  check_launch(hgpt::kernels::selective_scan_fwd_launch(p, at::cuda::getCurrentCUDAStream()), "forward", p);
  if (p.seqlen == 0) out.last_state.zero_();  // no kernel ran: the state is h_{-1} = 0
  out.out = out.out.to(u.scalar_type());      // no-op unless u was widened to fp32
  return out;
}

ScanGrads scan_bwd_cuda(const ScanSaved& saved, const at::Tensor& dout) {
  const ScanInputs& in = saved.in;
  const at::Tensor &u = in.u, &delta = in.delta, &A = in.A, &B = in.B, &C = in.C, &D = in.D_skip;
  const at::Tensor &z = in.z, &delta_bias = in.delta_bias, &checkpoints = saved.checkpoints;
  const c10::cuda::CUDAGuard guard(u.device());
  CudaPrepared r = prepare(in);
  ScanParams& p = r.p;
  // The kernel indexes the saved states and the incoming gradient by the inputs' shape: a
  // mismatch would read out of bounds, so it is an error here rather than in the kernel.
  TORCH_CHECK(dout.sizes() == u.sizes(), "selective_scan (CUDA) backward: dout has shape ", dout.sizes(),
              ", expected u's ", u.sizes());
  TORCH_CHECK(dout.device() == u.device(), "selective_scan (CUDA) backward: dout is on ", dout.device(), ", u on ",
              u.device());
  const std::vector<int64_t> ckpt_shape = {p.batch, p.dim, p.n_chunks, p.dstate};
  TORCH_CHECK(checkpoints.sizes() == at::IntArrayRef(ckpt_shape),
              "selective_scan (CUDA) backward: checkpoints have shape ", checkpoints.sizes(), ", expected ",
              at::IntArrayRef(ckpt_shape), " (from the forward with the same inputs)");
  TORCH_CHECK(checkpoints.device() == u.device(), "selective_scan (CUDA) backward: checkpoints are on ",
              checkpoints.device(), ", u on ", u.device());
  const auto f32 = u.options().dtype(at::kFloat);
  const auto ckpt = checkpoints.to(at::kFloat).contiguous();
  const auto dout_c = dout.to(r.u.scalar_type()).contiguous();
  auto du = new_output(r.u.sizes(), r.u.options()), ddelta = new_output(r.u.sizes(), r.u.options());
  auto dz = r.z.defined() ? new_output(r.u.sizes(), r.u.options()) : at::Tensor();
  auto dB = at::zeros({p.batch, p.dstate, p.seqlen}, f32), dC = at::zeros({p.batch, p.dstate, p.seqlen}, f32);
  auto dA_part = new_output({p.batch, p.dim, p.dstate}, f32);
  auto dD_part = new_output({p.batch, p.dim}, f32), dbias_part = new_output({p.batch, p.dim}, f32);
  p.checkpoints = const_cast<float*>(ckpt.data_ptr<float>());
  p.dout = dout_c.data_ptr();
  p.du = du.data_ptr();
  p.ddelta = ddelta.data_ptr();
  p.dz = dz.defined() ? dz.data_ptr() : nullptr;
  // The kernel addresses dB/dC with B's strides (bc_*_stride): B and C must stay contiguous.
  TORCH_CHECK(p.bc_batch_stride == p.dstate * p.seqlen && p.bc_state_stride == p.seqlen,
              "selective_scan (CUDA) backward: B/C strides differ from dB/dC's contiguous layout");
  p.dB = dB.data_ptr<float>();
  p.dC = dC.data_ptr<float>();
  p.dA_part = dA_part.data_ptr<float>();
  p.dD_part = dD_part.data_ptr<float>();
  p.ddelta_bias_part = dbias_part.data_ptr<float>();
  check_no_pending_error("backward");
  check_launch(hgpt::kernels::selective_scan_bwd_launch(p, at::cuda::getCurrentCUDAStream()), "backward", p);
  if (p.seqlen == 0) {  // no kernel ran: the parameter gradients are empty sums
    dA_part.zero_();
    dD_part.zero_();
    dbias_part.zero_();
  }

  auto cast = [](const at::Tensor& g, const at::Tensor& like) {
    return g.defined() && like.defined() ? g.to(like.scalar_type()) : at::Tensor();
  };
  ScanGrads g;
  g.du = cast(du, u);
  g.ddelta = cast(ddelta, delta);
  g.dz = cast(dz, z);
  g.dB = cast(dB, B);
  g.dC = cast(dC, C);
  g.dA = cast(dA_part.sum(0), A);  // ATen's CUDA sum is a fixed-order reduction
  g.dD = cast(dD_part.sum(0), D);
  g.ddelta_bias = cast(dbias_part.sum(0), delta_bias);
  return g;
}

}  // namespace hgpt::ops::detail
