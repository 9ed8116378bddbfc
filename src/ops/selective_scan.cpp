// selective_scan.cpp — the one selective_scan entry point: dispatch between the reference, the
// fused CPU kernel and the fused CUDA kernel, and the autograd op wrapping the fused kernels.
#include "hgpt/ops/selective_scan.h"

#include "selective_scan_dispatch.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <limits>
#include <optional>
#include <vector>

namespace hgpt::ops {
namespace {

#ifdef HGPT_WITH_CUDA
constexpr bool kCudaKernelBuilt = true;
#else
constexpr bool kCudaKernelBuilt = false;
#endif

// The tensors the autograd op saves, by name: the nine inputs (undefined where absent) and the
// forward's checkpoints.
enum SavedSlot { kU, kDelta, kA, kB, kC, kD, kZ, kDeltaBias, kReset, kCheckpoints };

std::vector<at::Tensor> saved_list(const ScanInputs& in, const at::Tensor& checkpoints) {
  return {in.u, in.delta, in.A, in.B, in.C, in.D_skip, in.z, in.delta_bias, in.reset, checkpoints};
}

detail::ScanSaved saved_from_list(const std::vector<at::Tensor>& s, bool delta_softplus) {
  detail::ScanSaved saved;
  saved.in.u = s[kU];
  saved.in.delta = s[kDelta];
  saved.in.A = s[kA];
  saved.in.B = s[kB];
  saved.in.C = s[kC];
  saved.in.D_skip = s[kD];
  saved.in.z = s[kZ];
  saved.in.delta_bias = s[kDeltaBias];
  saved.in.reset = s[kReset];
  saved.in.delta_softplus = delta_softplus;
  saved.checkpoints = s[kCheckpoints];
  return saved;
}

// Autograd op over a fused kernel. Saves the inputs and the per-chunk state checkpoints (not the
// states themselves: backward recomputes them); the last state is a non-differentiable output.
class SelectiveScanFn : public torch::autograd::Function<SelectiveScanFn> {
 public:
  // The tensors travel one by one (optional ones as std::optional: autograd registers an input
  // only when present) because autograd tracks the arguments of forward().
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& u,
                                                const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                                                const at::Tensor& C, const std::optional<at::Tensor>& D_opt,
                                                const std::optional<at::Tensor>& z_opt,
                                                const std::optional<at::Tensor>& delta_bias_opt,
                                                const std::optional<at::Tensor>& reset_opt, bool delta_softplus,
                                                bool use_cuda) {
    ScanInputs in;
    in.u = u;
    in.delta = delta;
    in.A = A;
    in.B = B;
    in.C = C;
    in.D_skip = D_opt.value_or(at::Tensor());
    in.z = z_opt.value_or(at::Tensor());
    in.delta_bias = delta_bias_opt.value_or(at::Tensor());
    in.reset = reset_opt.value_or(at::Tensor());
    in.delta_softplus = delta_softplus;
    detail::ScanFwdResult r;
    if (use_cuda) {
#ifdef HGPT_WITH_CUDA
      r = detail::scan_fwd_cuda(in);
#endif
    } else {
      r = detail::scan_fwd_cpu(in);
    }
    ctx->save_for_backward(saved_list(in, r.checkpoints));
    ctx->saved_data["delta_softplus"] = delta_softplus;
    ctx->saved_data["use_cuda"] = use_cuda;
    ctx->mark_non_differentiable({r.last_state});
    return {r.out, r.last_state};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const detail::ScanSaved saved =
        saved_from_list(ctx->get_saved_variables(), ctx->saved_data["delta_softplus"].toBool());
    detail::ScanGrads g;
    if (ctx->saved_data["use_cuda"].toBool()) {
#ifdef HGPT_WITH_CUDA
      g = detail::scan_bwd_cuda(saved, grad_outputs[0]);
#endif
    } else {
      g = detail::scan_bwd_cpu(saved, grad_outputs[0]);
    }
    // reset, delta_softplus and use_cuda have no gradient.
    return {g.du, g.ddelta, g.dA, g.dB, g.dC, g.dD, g.dz, g.ddelta_bias, at::Tensor(), at::Tensor(), at::Tensor()};
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

int64_t scan_checkpoint_interval(bool cuda) { return cuda ? detail::kCudaScanChunk : detail::kCpuScanChunk; }

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
  auto outs = SelectiveScanFn::apply(in.u, in.delta, in.A, in.B, in.C, opt(in.D_skip), opt(in.z), opt(in.delta_bias),
                                     opt(in.reset), in.delta_softplus, impl == ScanImpl::Cuda);
  ScanOutputs result;
  result.out = outs[0];
  if (return_last_state) result.last_state = outs[1];
  return result;
}

}  // namespace hgpt::ops
