// selective_scan_reference.cpp — the reference selective scan (plain ATen ops) and the input
// checks every implementation shares. The reference is the oracle of the fused kernels' tests:
// it is written for obviousness, not speed, and is differentiable through ATen's autograd.
#include "hgpt/ops/selective_scan.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <vector>

namespace hgpt::ops {

const char* scan_impl_name(ScanImpl impl) {
  switch (impl) {
    case ScanImpl::Auto:
      return "auto";
    case ScanImpl::Reference:
      return "reference";
    case ScanImpl::FusedCpu:
      return "fused_cpu";
    case ScanImpl::Cuda:
      return "cuda";
  }
  return "?";
}

void check_scan_inputs(const ScanInputs& in) {
  TORCH_CHECK(in.u.defined() && in.u.dim() == 3, "selective_scan: u must be (batch, dim, seqlen)");
  const auto batch = in.u.size(0), dim = in.u.size(1), seqlen = in.u.size(2);
  TORCH_CHECK(in.delta.defined() && in.delta.sizes() == in.u.sizes(), "selective_scan: delta must have u's shape ",
              in.u.sizes(), ", got ", in.delta.defined() ? in.delta.sizes() : at::IntArrayRef{});
  TORCH_CHECK(in.A.defined() && in.A.dim() == 2 && in.A.size(0) == dim, "selective_scan: A must be (dim=", dim,
              ", d_state)");
  const auto d_state = in.A.size(1);
  for (const auto* t : {&in.B, &in.C}) {
    TORCH_CHECK(t->defined() && t->dim() == 3 && t->size(0) == batch && t->size(1) == d_state && t->size(2) == seqlen,
                "selective_scan: B and C must be (batch=", batch, ", d_state=", d_state, ", seqlen=", seqlen, ")");
  }
  if (in.z.defined()) {
    TORCH_CHECK(in.z.sizes() == in.u.sizes(), "selective_scan: z must have u's shape");
  }
  for (const auto* t : {&in.D_skip, &in.delta_bias}) {
    if (t->defined()) {
      TORCH_CHECK(t->dim() == 1 && t->size(0) == dim, "selective_scan: D and delta_bias must be (dim=", dim, ")");
    }
  }
  if (in.reset.defined()) {
    TORCH_CHECK(in.reset.scalar_type() == at::kBool && in.reset.dim() == 2 && in.reset.size(0) == batch &&
                    in.reset.size(1) == seqlen,
                "selective_scan: reset must be a bool (batch=", batch, ", seqlen=", seqlen, ") tensor");
    TORCH_CHECK(in.reset.device() == in.u.device(), "selective_scan: all inputs must be on u's device");
  }
  for (const at::Tensor* t : {&in.u, &in.delta, &in.A, &in.B, &in.C, &in.D_skip, &in.z, &in.delta_bias}) {
    if (t->defined()) {
      TORCH_CHECK(t->device() == in.u.device(), "selective_scan: all inputs must be on u's device");
      TORCH_CHECK(at::isFloatingType(t->scalar_type()), "selective_scan: inputs must be floating point");
    }
  }
}

ScanOutputs selective_scan_reference(const ScanInputs& in, bool return_last_state) {
  check_scan_inputs(in);
  // Compute in fp32, or fp64 when the inputs are fp64 (the finite-difference tests).
  const auto compute = in.u.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto u = in.u.to(compute);
  auto delta = in.delta.to(compute);
  if (in.delta_bias.defined()) delta = delta + in.delta_bias.to(compute).view({1, -1, 1});
  if (in.delta_softplus) delta = at::softplus(delta);
  const auto A = in.A.to(compute);                   // (D, N)
  const auto Bt = in.B.to(compute).transpose(1, 2);  // (B, L, N)
  const auto Ct = in.C.to(compute).transpose(1, 2);  // (B, L, N)

  // Discretise: deltaA = exp(Δ·A), deltaB_u = Δ·B·u, both (B, D, L, N); a reset zeroes the decay.
  auto deltaA = at::exp(delta.unsqueeze(-1) * A.unsqueeze(1));
  if (in.reset.defined()) deltaA = deltaA * in.reset.logical_not().to(compute).view({u.size(0), 1, -1, 1});
  const auto deltaB_u = (delta * u).unsqueeze(-1) * Bt.unsqueeze(1);

  const auto seqlen = u.size(2);
  auto h = at::zeros({u.size(0), u.size(1), A.size(1)}, u.options());
  std::vector<at::Tensor> ys;
  ys.reserve(seqlen);
  for (int64_t t = 0; t < seqlen; ++t) {
    h = deltaA.select(2, t) * h + deltaB_u.select(2, t);
    ys.push_back((h * Ct.select(1, t).unsqueeze(1)).sum(-1));  // (B, D)
  }
  auto y = at::stack(ys, 2);
  if (in.D_skip.defined()) y = y + u * in.D_skip.to(compute).view({1, -1, 1});
  if (in.z.defined()) y = y * at::silu(in.z.to(compute));

  ScanOutputs result;
  result.out = y.to(in.u.scalar_type());
  if (return_last_state) result.last_state = h;
  return result;
}

}  // namespace hgpt::ops
