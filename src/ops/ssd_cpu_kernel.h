// ssd_cpu_kernel.h — the fused CPU loops of the chunked SSD's decay mask (ssd_parts.h) on raw
// pointers.
//
// ssd_cpu_kernel.cpp is compiled once per CPU capability (DEFAULT, and on x86-64 AVX2 and
// AVX-512), like the selective scan's kernel; ssd_parts.cpp picks one at run time
// (cpu_capability.h). A task is one (batch, chunk, group): its heads-per-group heads share the
// group's C·Bᵀ, and each task writes only its own outputs, so results do not depend on the
// number of threads.
#pragma once

#include <cstdint>

namespace hgpt::ops::ssd_cpu {

template <typename T>
struct MaskArgs {
  int64_t tasks = 0, heads = 0, Q = 0;  // heads: per group
  const T* a = nullptr;                 // (tasks, heads, Q): dt·A
  const T* CB = nullptr;                // (tasks, Q, Q): C·Bᵀ
  // Forward outputs.
  T* M = nullptr;            // (tasks, heads, Q, Q): CB ∘ exp(segsum(a)), zero above the diagonal
  T* w = nullptr;            // (tasks, heads, Q)
  T* acum_exp = nullptr;     // (tasks, heads, Q)
  T* chunk_decay = nullptr;  // (tasks, heads)
  // Backward: dM in, d CB (summed over the group's heads) and d a (the mask's part) out.
  const T* dM = nullptr;  // (tasks, heads, Q, Q)
  T* dCB = nullptr;       // (tasks, Q, Q)
  T* da = nullptr;        // (tasks, heads, Q)
};

// Scratch (elements of T) one thread needs: the running segment sums and one head's dM ∘ M.
inline int64_t mask_scratch_size(int64_t Q) { return Q * Q + 2 * Q + 64; }

#define HGPT_SSD_DECLARE_KERNELS(CAP)                                                          \
  namespace CAP {                                                                              \
  void mask_fwd_tasks(const MaskArgs<float>& a, int64_t begin, int64_t end, float* scratch);   \
  void mask_fwd_tasks(const MaskArgs<double>& a, int64_t begin, int64_t end, double* scratch); \
  void mask_bwd_tasks(const MaskArgs<float>& a, int64_t begin, int64_t end, float* scratch);   \
  void mask_bwd_tasks(const MaskArgs<double>& a, int64_t begin, int64_t end, double* scratch); \
  }
HGPT_SSD_DECLARE_KERNELS(DEFAULT)
HGPT_SSD_DECLARE_KERNELS(AVX2)
HGPT_SSD_DECLARE_KERNELS(AVX512)
#undef HGPT_SSD_DECLARE_KERNELS

}  // namespace hgpt::ops::ssd_cpu
