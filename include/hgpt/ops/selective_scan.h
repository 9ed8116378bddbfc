// selective_scan.h — the one entry point for Mamba's selective scan (design: docs/ARCHITECTURE.md,
// "Selective scan").
//
// Semantics are those of mamba's `selective_scan_fn`, per (batch b, channel d, state n), in fp32:
//   Δ_t  = softplus(delta_t + delta_bias)            (softplus only when delta_softplus)
//   h_t  = exp(Δ_t·A) · h_{t−1} + Δ_t · B_t · u_t     (h_{−1} = 0)
//   y_t  = Σ_n C_t · h_t + D · u_t
//   out  = y · SiLU(z)                                (when z is given)
// With `reset` (document boundaries): at a step t where reset is true the state starts afresh,
// h_t = Δ_t · B_t · u_t — the decay is replaced by 0 (a zero carry, not an infinite decay).
// Shapes: u, delta, z (B, D, L); A (D, N) fp32; B, C (B, N, L); D_skip, delta_bias (D) fp32.
// The output has u's dtype. Optional tensors may be undefined (at::Tensor()).
//
// Three implementations sit behind `selective_scan`: the reference (ATen ops; the test oracle),
// the fused CPU kernel and the fused CUDA kernel. `ScanImpl::Auto` picks the fused kernel for
// the tensors' device; the others force one (tests and benchmarks).
#pragma once

#include <ATen/core/Tensor.h>

namespace hgpt::ops {

enum class ScanImpl { Auto, Reference, FusedCpu, Cuda };

struct ScanInputs {
  at::Tensor u;           // (B, D, L)
  at::Tensor delta;       // (B, D, L)
  at::Tensor A;           // (D, N) fp32
  at::Tensor B;           // (B, N, L)
  at::Tensor C;           // (B, N, L)
  at::Tensor D_skip;      // (D) fp32, optional
  at::Tensor z;           // (B, D, L), optional
  at::Tensor delta_bias;  // (D) fp32, optional
  at::Tensor reset;       // (B, L) bool, optional: true where a document starts (h_{t−1} taken as 0)
  bool delta_softplus = false;
};

struct ScanOutputs {
  at::Tensor out;         // (B, D, L), u's dtype
  at::Tensor last_state;  // (B, D, N) fp32; defined only when asked for
};

// Differentiable with respect to every floating input (autograd); dispatches on `impl`.
ScanOutputs selective_scan(const ScanInputs& in, bool return_last_state = false, ScanImpl impl = ScanImpl::Auto);

// The reference: plain ATen ops over the sequence, differentiable through ATen's autograd.
// Slow; the oracle every other implementation is tested against.
ScanOutputs selective_scan_reference(const ScanInputs& in, bool return_last_state = false);

// Shape/dtype checks shared by every implementation (throws c10::Error naming the tensor).
void check_scan_inputs(const ScanInputs& in);

const char* scan_impl_name(ScanImpl impl);

// Timesteps between the states the fused forward saves for its backward (the backward recomputes
// the states in between): the CPU kernel's chunk, or the CUDA kernel's for long sequences.
int64_t scan_checkpoint_interval(bool cuda);

// True when this build has the fused CUDA kernel and a CUDA device is present.
bool scan_cuda_available();

}  // namespace hgpt::ops
