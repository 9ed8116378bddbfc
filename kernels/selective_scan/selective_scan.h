// selective_scan.h — plain launcher API of the CUDA selective scan (no LibTorch): raw pointers,
// sizes, strides and a stream. The ATen-side wrapper is src/ops/selective_scan_cuda.cpp.
#pragma once

#include "kernels/selective_scan/scan_thread.h"

#include <cuda_runtime_api.h>

#include <cstdint>

namespace hgpt::kernels {

// Block shape (scan_thread.h, shared with the host emulation of the kernels): threads × kScanItems
// consecutive steps each = one chunk of the sequence. The block has the fewest of 32, 64 or 128
// threads whose chunk covers the sequence (128 beyond 256 steps), so short sequences do not leave
// most threads on padding; the chunk is at most kScanChunk.
constexpr int kScanItems = scan::kItems;
constexpr int kScanMaxThreads = scan::kMaxThreads;
constexpr int kScanChunk = kScanMaxThreads * kScanItems;  // 512 steps
constexpr int kScanMaxDState = scan::kMaxDState;

constexpr int scan_threads_for(int64_t seqlen) { return scan::threads_for(seqlen); }
constexpr int64_t scan_chunk_for(int64_t seqlen) { return scan::chunk_for(seqlen); }

// dtype of the activations u, delta, z, out and of their gradients; B and C are fp32 or that dtype
// (read and widened in the kernel); everything else is fp32.
enum class ScanElem { kFloat32, kBFloat16, kFloat16 };

struct ScanParams {
  ScanElem elem = ScanElem::kFloat32;
  int64_t batch = 0, dim = 0, seqlen = 0, dstate = 0;
  int64_t n_chunks = 0;  // ceil(seqlen / scan_chunk_for(seqlen)); any other value is rejected
  // Strides in elements. The time dimension is contiguous (stride 1) everywhere.
  int64_t x_batch_stride = 0, x_dim_stride = 0;      // u, delta, z, out, dout, du, ddelta, dz
  int64_t bc_batch_stride = 0, bc_state_stride = 0;  // B, C, dB, dC
  bool delta_softplus = false;
  // Inputs.
  const void* u = nullptr;
  const void* delta = nullptr;
  const void* z = nullptr;   // optional
  const float* A = nullptr;  // (dim, dstate) contiguous
  const void* B = nullptr;   // fp32, or the activations' dtype when !bc_is_float
  const void* C = nullptr;   // idem
  bool bc_is_float = true;
  const float* D = nullptr;           // (dim), optional
  const float* delta_bias = nullptr;  // (dim), optional
  const bool* reset = nullptr;        // (batch, seqlen) contiguous, optional: true where a document starts
  // Forward outputs.
  void* out = nullptr;
  float* checkpoints = nullptr;  // (batch, dim, n_chunks, dstate): state before each chunk
  float* last_state = nullptr;   // (batch, dim, dstate)
  // Backward (checkpoints read back as input).
  const void* dout = nullptr;
  void* du = nullptr;
  void* ddelta = nullptr;
  void* dz = nullptr;                 // when z is given
  float* dB = nullptr;                // zero-initialised by the caller; atomically accumulated
  float* dC = nullptr;                // idem
  float* dA_part = nullptr;           // (batch, dim, dstate): per-(batch, channel) partials
  float* dD_part = nullptr;           // (batch, dim)
  float* ddelta_bias_part = nullptr;  // (batch, dim)
};

// Both return the launch error (cudaSuccess when the kernel was queued on `stream`). Nothing is
// launched when batch, dim or seqlen is 0: for seqlen 0 the caller zeroes last_state and the partials.
cudaError_t selective_scan_fwd_launch(const ScanParams& p, cudaStream_t stream);
cudaError_t selective_scan_bwd_launch(const ScanParams& p, cudaStream_t stream);

}  // namespace hgpt::kernels
