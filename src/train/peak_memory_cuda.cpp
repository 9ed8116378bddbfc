// peak_memory_cuda.cpp — the CUDA caching allocator's peak of allocated bytes (CUDA builds only).
#include <c10/cuda/CUDACachingAllocator.h>

#include <cstdint>

namespace hgpt::train {

void cuda_reset_peak_memory(int index) {
  c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(index));
}

int64_t cuda_peak_allocated_bytes(int index) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(index));
  return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
}

}  // namespace hgpt::train
