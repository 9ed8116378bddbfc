// selective_scan_dispatch.h — the fused selective-scan implementations (CPU and CUDA) on
// at::Tensor, below the autograd op: what the forward saves for the backward and the entry
// points selective_scan.cpp dispatches to. Only the scan's own files (src/ops/selective_scan*.cpp),
// the tests and bench_scan include it; everyone else calls hgpt::ops::selective_scan (and reads
// the checkpoint spacing through scan_checkpoint_interval).
#pragma once

#include "hgpt/ops/selective_scan.h"
#include "src/ops/selective_scan_cpu_kernel.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace hgpt::ops::detail {

// Timesteps per checkpoint of the fused CPU kernel (cpu_scan::kChunk): the forward saves the
// state at the start of every chunk, the backward recomputes the states inside a chunk from it.
constexpr int64_t kCpuScanChunk = cpu_scan::kChunk;
// Timesteps per chunk of the CUDA kernel for sequences longer than 256 steps (shorter ones use a
// chunk of 128 or 256; equals hgpt::kernels::kScanChunk, checked there).
constexpr int64_t kCudaScanChunk = 512;

// Testing aid: when on, the kernels' outputs and gradients are allocated NaN-filled instead of
// uninitialised, so an element a kernel forgets to write shows up as NaN in the comparisons.
void set_poison_outputs(bool on);
// An output buffer: uninitialised, or NaN-filled when poisoning is on.
at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options);

// What the forward hands to the caller.
struct ScanFwdResult {
  at::Tensor out;          // (B, D, L), u's dtype
  at::Tensor checkpoints;  // the state before each chunk, in the implementation's own layout
  at::Tensor last_state;   // (B, D, N), compute dtype (fp32, or fp64 for fp64 inputs on CPU)
};

// What the backward needs: the inputs and the forward's checkpoints.
struct ScanSaved {
  ScanInputs in;
  at::Tensor checkpoints;
};

// Gradients for the eight inputs, each in its input's dtype; undefined where the input was.
struct ScanGrads {
  at::Tensor du, ddelta, dA, dB, dC, dD, dz, ddelta_bias;
};

// Fused CPU kernel (selective_scan_cpu.cpp). fp32/bf16 inputs compute in fp32, fp64 in fp64.
// Reads u, delta, z and dout in place when their channels are contiguous (a (B, L, D) tensor
// seen as (B, D, L)); returns out, du, ddelta and dz in that layout.
ScanFwdResult scan_fwd_cpu(const ScanInputs& in);
ScanGrads scan_bwd_cpu(const ScanSaved& saved, const at::Tensor& dout);
// The CPU instruction set the fused CPU kernel runs with: "DEFAULT", "AVX2" or "AVX512".
const char* scan_cpu_capability();
// How many threads the fused CPU kernel's tasks are spread over for `batch` rows of `dim`
// channels: up to at::get_num_threads(); 1 when this library was built without OpenMP.
int scan_cpu_threads_used(int64_t batch, int64_t dim);

// Fused CUDA kernel (selective_scan_cuda.cpp, CUDA builds only). u/delta/z fp32, bf16 or fp16;
// A, D, delta_bias and the state fp32; d_state ≤ 64.
ScanFwdResult scan_fwd_cuda(const ScanInputs& in);
ScanGrads scan_bwd_cuda(const ScanSaved& saved, const at::Tensor& dout);

}  // namespace hgpt::ops::detail
