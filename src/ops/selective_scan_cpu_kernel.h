// selective_scan_cpu_kernel.h — the fused CPU selective scan's loops on raw pointers.
//
// selective_scan_cpu_kernel.cpp is compiled once per CPU capability (DEFAULT, and on x86-64 also
// AVX2 and AVX-512, each object with its own instruction-set flags, as ATen builds its own CPU
// kernels); selective_scan_cpu.cpp picks one at run time from ATen's CPU capability. Nothing here
// knows at::Tensor, so the capability-specific objects hold only these loops.
//
// Layout: the kernel vectorises across channels (channels are independent; 16 fp32 channels fill
// one AVX-512 register), so activations are read "channels last": element (b, t, d) of u, delta,
// z and dout at b·stride_b + t·stride_t + d. Work is split into tasks of (batch row, block of
// kTaskChannels channels); every task runs its loops in a fixed order and writes its own
// partial sums, so results do not depend on the number of threads.
#pragma once

#include <cstdint>

namespace hgpt::ops::cpu_scan {

// Timesteps per checkpoint: the forward saves the state before every chunk, the backward
// recomputes the states of one chunk (in cache) from that checkpoint.
constexpr int64_t kChunk = 16;
// Channels per task; a multiple of every vector width (fp32 AVX-512: 16 lanes).
constexpr int64_t kTaskChannels = 64;
// Lanes of the widest vector: internal per-channel buffers are padded to a multiple of this.
constexpr int64_t kMaxLanes = 16;

// A (batch, time, x) tensor whose last dimension is contiguous: row (b, t) at b·sb + t·st.
template <typename T>
struct Rows {
  T* p = nullptr;
  int64_t sb = 0, st = 0;
  T* row(int64_t b, int64_t t) const { return p + b * sb + t * st; }
};

template <typename T>
struct ScanArgs {
  int64_t batch = 0, dim = 0, seqlen = 0, dstate = 0, n_chunks = 0;
  int64_t dim_padded = 0;       // dim rounded up to kMaxLanes
  int64_t tasks_per_batch = 0;  // ceil(dim / kTaskChannels)
  bool softplus = false;
  // Inputs. u, delta, z: (B, L, D) rows; B, C: (B, L, N) rows; z may be null.
  Rows<const T> u, delta, z, B, C;
  const T* A_t = nullptr;       // (N, D): A transposed
  const T* D = nullptr;         // (D) or null
  const T* bias = nullptr;      // (D) or null
  const bool* reset = nullptr;  // (B, L) contiguous or null: true where the state starts afresh
  // Forward outputs.
  T* out = nullptr;          // (B, L, D)
  T* checkpoints = nullptr;  // (B, n_chunks, N, dim_padded): state before each chunk
  T* last_state = nullptr;   // (B, N, D)
  // Backward: the incoming gradient and the outputs. dB/dC, dA, dD and d(bias) are partial sums
  // per task or per batch row, added up in a fixed order by the caller.
  Rows<const T> dout;  // (B, L, D) rows
  T* du = nullptr;     // (B, L, D), as are ddelta and dz
  T* ddelta = nullptr;
  T* dz = nullptr;
  T* dB_part = nullptr;  // (B, tasks_per_batch, L, N)
  T* dC_part = nullptr;
  T* dA_part = nullptr;     // (B, N, D)
  T* dD_part = nullptr;     // (B, D)
  T* dbias_part = nullptr;  // (B, D)
};

// Scratch (elements of T) one thread needs for a forward / backward task.
inline int64_t fwd_scratch_size(int64_t dstate) { return 2 * kTaskChannels * dstate + dstate * kMaxLanes; }
inline int64_t bwd_scratch_size(int64_t dstate) {
  return (2 * kChunk + 4) * kTaskChannels * dstate + 2 * kChunk * kTaskChannels + 2 * kChunk * dstate * kMaxLanes +
         2 * kTaskChannels + dstate * kMaxLanes;
}

// The kernels of one capability: tasks [begin, end) of a forward or a backward.
#define HGPT_SCAN_DECLARE_KERNELS(CAP)                                                    \
  namespace CAP {                                                                         \
  void fwd_tasks(const ScanArgs<float>& a, int64_t begin, int64_t end, float* scratch);   \
  void fwd_tasks(const ScanArgs<double>& a, int64_t begin, int64_t end, double* scratch); \
  void bwd_tasks(const ScanArgs<float>& a, int64_t begin, int64_t end, float* scratch);   \
  void bwd_tasks(const ScanArgs<double>& a, int64_t begin, int64_t end, double* scratch); \
  }
HGPT_SCAN_DECLARE_KERNELS(DEFAULT)
HGPT_SCAN_DECLARE_KERNELS(AVX2)
HGPT_SCAN_DECLARE_KERNELS(AVX512)
#undef HGPT_SCAN_DECLARE_KERNELS

}  // namespace hgpt::ops::cpu_scan
