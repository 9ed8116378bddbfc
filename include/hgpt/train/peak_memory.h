// peak_memory.h — the high-water mark of tensor memory over a stretch of code, to check the
// dry-run's memory estimate against what a training step really holds.
//   CUDA: the caching allocator's peak of allocated bytes on the device (reset at the start).
//   CPU: the peak of the live bytes of the default CPU allocator, counted from the allocation and
//   free events c10 reports to a memory profiler on this thread (and the threads it hands work to);
//   tensors allocated before the start are not counted.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <memory>

namespace hgpt::train {

class PeakMemory {
 public:
  explicit PeakMemory(const c10::Device& device);  // starts measuring
  ~PeakMemory();
  PeakMemory(const PeakMemory&) = delete;
  PeakMemory& operator=(const PeakMemory&) = delete;

  int64_t peak_bytes() const;  // since the start

 private:
  struct CpuCounter;
  c10::Device device_;
  std::shared_ptr<CpuCounter> cpu_;
  struct Guard;
  std::unique_ptr<Guard> guard_;
};

}  // namespace hgpt::train
