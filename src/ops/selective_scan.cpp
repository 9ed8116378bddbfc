// selective_scan.cpp — the one selective_scan entry point: dispatch between the reference, the
// fused CPU kernel and the fused CUDA kernel, and the autograd op wrapping the fused kernels.
#include "hgpt/ops/selective_scan.h"

#include "selective_scan_kernels.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <limits>
#include <optional>

namespace hgpt::ops {
namespace {

#ifdef HGPT_WITH_CUDA
constexpr bool kCudaKernelBuilt = true;
#else
constexpr bool kCudaKernelBuilt = false;
#endif

// Autograd op over a fused kernel. Saves the inputs and the per-chunk state checkpoints (not the
// states themselves: backward recomputes them); the last state is a non-differentiable output.
class SelectiveScanFn : public torch::autograd::Function<SelectiveScanFn> {
 public:
  static torch::autograd::variable_list forward(
      torch::autograd::AutogradContext* ctx, const at::Tensor& u, const at::Tensor& delta,
      const at::Tensor& A, const at::Tensor& B, const at::Tensor& C,
      const std::optional<at::Tensor>& D_opt, const std::optional<at::Tensor>& z_opt,
      const std::optional<at::Tensor>& delta_bias_opt, bool delta_softplus, bool use_cuda) {
    // Optional inputs travel as std::optional: autograd registers an input only when present.
    const at::Tensor D = D_opt.value_or(at::Tensor()), z = z_opt.value_or(at::Tensor());
    const at::Tensor delta_bias = delta_bias_opt.value_or(at::Tensor());
    detail::ScanFwdResult r;
    if (use_cuda) {
#ifdef HGPT_WITH_CUDA
      r = detail::scan_fwd_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus);
#endif
    } else {
      r = detail::scan_fwd_cpu(u, delta, A, B, C, D, z, delta_bias, delta_softplus);
    }
    ctx->save_for_backward({u, delta, A, B, C, D, z, delta_bias, r.checkpoints});
    ctx->saved_data["delta_softplus"] = delta_softplus;
    ctx->saved_data["use_cuda"] = use_cuda;
    ctx->mark_non_differentiable({r.last_state});
    return {r.out, r.last_state};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto s = ctx->get_saved_variables();
    const bool delta_softplus = ctx->saved_data["delta_softplus"].toBool();
    const bool use_cuda = ctx->saved_data["use_cuda"].toBool();
    detail::ScanGrads g;
    if (use_cuda) {
#ifdef HGPT_WITH_CUDA
      g = detail::scan_bwd_cuda(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], delta_softplus,
                                s[8], grad_outputs[0]);
#endif
    } else {
      g = detail::scan_bwd_cpu(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], delta_softplus,
                               s[8], grad_outputs[0]);
    }
    return {g.du, g.ddelta, g.dA, g.dB, g.dC, g.dD, g.dz, g.ddelta_bias, at::Tensor(), at::Tensor()};
  }
};

std::atomic<bool> g_poison_outputs{false};

}  // namespace

namespace detail {
void set_poison_outputs(bool on) { g_poison_outputs = on; }
at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return g_poison_outputs ? at::full(sizes, std::numeric_limits<double>::quiet_NaN(), options)
                          : at::empty(sizes, options);
}
}  // namespace detail

bool scan_cuda_available() { return kCudaKernelBuilt && at::hasCUDA(); }

ScanOutputs selective_scan(const ScanInputs& in, bool return_last_state, ScanImpl impl) {
  check_scan_inputs(in);
  const auto device = in.u.device();
  if (impl == ScanImpl::Auto) {
    // fp64 on a GPU only happens in checks: the CUDA kernel computes in fp32, so take the reference.
    const bool cuda_kernel = device.is_cuda() && in.u.scalar_type() != at::kDouble;
    impl = cuda_kernel ? ScanImpl::Cuda : device.is_cpu() ? ScanImpl::FusedCpu : ScanImpl::Reference;
  }
  if (impl == ScanImpl::Reference) return selective_scan_reference(in, return_last_state);
  if (impl == ScanImpl::FusedCpu) {
    TORCH_CHECK(device.is_cpu(), "selective_scan: the fused CPU kernel needs CPU tensors, got ", device);
  } else {
    TORCH_CHECK(kCudaKernelBuilt,
                "selective_scan: the CUDA kernel is not built (configure with a CUDA LibTorch and nvcc)");
    TORCH_CHECK(device.is_cuda(), "selective_scan: the CUDA kernel needs CUDA tensors, got ", device);
  }
  auto opt = [](const at::Tensor& t) { return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt; };
  auto outs = SelectiveScanFn::apply(in.u, in.delta, in.A, in.B, in.C, opt(in.D_skip), opt(in.z),
                                     opt(in.delta_bias), in.delta_softplus, impl == ScanImpl::Cuda);
  ScanOutputs result;
  result.out = outs[0];
  if (return_last_state) result.last_state = outs[1];
  return result;
}

}  // namespace hgpt::ops
