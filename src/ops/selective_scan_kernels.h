// selective_scan_kernels.h — internal entry points of the fused selective-scan kernels (CPU and
// CUDA) on at::Tensor. Only selective_scan.cpp (the autograd op), the tests and the benchmark use
// them; everyone else calls hgpt::ops::selective_scan.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace hgpt::ops::detail {

// Timesteps per checkpoint of the fused CPU kernel: the forward saves the state at the start of
// every chunk, the backward recomputes the states inside a chunk from that checkpoint.
constexpr int64_t kCpuScanChunk = 64;
// Timesteps per chunk of the CUDA kernel (equals hgpt::kernels::kScanChunk, checked there).
constexpr int64_t kCudaScanChunk = 512;

// Testing aid: when on, the kernels' outputs and gradients are allocated NaN-filled instead of
// uninitialised, so an element a kernel forgets to write shows up as NaN in the comparisons.
void set_poison_outputs(bool on);
// An output buffer: uninitialised, or NaN-filled when poisoning is on.
at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options);

// What the forward hands to the backward (besides the inputs) and to the caller.
struct ScanFwdResult {
  at::Tensor out;          // (B, D, L), u's dtype
  at::Tensor checkpoints;  // (B, D, n_chunks, N), compute dtype: state before each chunk
  at::Tensor last_state;   // (B, D, N), compute dtype (fp32, or fp64 for fp64 inputs on CPU)
};

// Gradients for the eight inputs, each in its input's dtype; undefined where the input was.
struct ScanGrads {
  at::Tensor du, ddelta, dA, dB, dC, dD, dz, ddelta_bias;
};

// Fused CPU kernel. Inputs as in ScanInputs (optional ones may be undefined). fp32/bf16 inputs
// compute in fp32, fp64 inputs in fp64.
ScanFwdResult scan_fwd_cpu(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                           const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                           const at::Tensor& z, const at::Tensor& delta_bias, bool delta_softplus);
ScanGrads scan_bwd_cpu(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                       const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                       const at::Tensor& z, const at::Tensor& delta_bias, bool delta_softplus,
                       const at::Tensor& checkpoints, const at::Tensor& dout);

// Fused CUDA kernel (defined in selective_scan_cuda.cpp, CUDA builds only). u/delta/z fp32,
// bf16 or fp16; A, D, delta_bias and the state fp32; d_state ≤ 64.
ScanFwdResult scan_fwd_cuda(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                            const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                            const at::Tensor& z, const at::Tensor& delta_bias, bool delta_softplus);
ScanGrads scan_bwd_cuda(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                        const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                        const at::Tensor& z, const at::Tensor& delta_bias, bool delta_softplus,
                        const at::Tensor& checkpoints, const at::Tensor& dout);

}  // namespace hgpt::ops::detail
