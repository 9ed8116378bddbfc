// peak_memory.cpp — PeakMemory: CPU counting through c10's memory-profiling hook; CUDA in
// peak_memory_cuda.cpp.
#include "hgpt/train/peak_memory.h"

#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>

#include <algorithm>
#include <mutex>

namespace hgpt::train {

#ifdef HGPT_WITH_CUDA
void cuda_reset_peak_memory(int index);        // peak_memory_cuda.cpp
int64_t cuda_peak_allocated_bytes(int index);  // idem
#endif

// Receives every CPU allocation (alloc_size > 0) and free (alloc_size < 0) while installed.
struct PeakMemory::CpuCounter : public c10::MemoryReportingInfoBase {
  void reportMemoryUsage(void*, int64_t alloc_size, size_t, size_t, c10::Device device) override {
    if (!device.is_cpu()) return;
    std::lock_guard<std::mutex> lock(mutex);
    live += alloc_size;
    peak = std::max(peak, live);
  }
  bool memoryProfilingEnabled() const override { return true; }

  mutable std::mutex mutex;
  int64_t live = 0, peak = 0;
};

// Installs the counter as this thread's profiler state for the lifetime of the measurement.
struct PeakMemory::Guard {
  explicit Guard(std::shared_ptr<CpuCounter> counter) : guard(c10::DebugInfoKind::PROFILER_STATE, std::move(counter)) {}
  c10::DebugInfoGuard guard;
};

PeakMemory::PeakMemory(const c10::Device& device) : device_(device) {
  if (device_.is_cuda()) {
#ifdef HGPT_WITH_CUDA
    cuda_reset_peak_memory(device_.index() < 0 ? 0 : device_.index());
#endif
    return;
  }
  cpu_ = std::make_shared<CpuCounter>();
  guard_ = std::make_unique<Guard>(cpu_);
}

PeakMemory::~PeakMemory() = default;

int64_t PeakMemory::peak_bytes() const {
  if (device_.is_cuda()) {
#ifdef HGPT_WITH_CUDA
    return cuda_peak_allocated_bytes(device_.index() < 0 ? 0 : device_.index());
#else
    return -1;
#endif
  }
  std::lock_guard<std::mutex> lock(cpu_->mutex);
  return cpu_->peak;
}

}  // namespace hgpt::train
