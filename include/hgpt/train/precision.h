// precision.h — the precision a run computes in: fp32 weights everywhere, and on CUDA the forward
// under bf16 autocast (nanochat's choice); CPUs compute in plain fp32.
#pragma once

#include <c10/core/Device.h>

namespace hgpt::train {

// Whether a run on `device` computes its forward under bf16 autocast: on CUDA only.
inline bool uses_autocast(const c10::Device& device) { return device.is_cuda(); }

// bf16 autocast over fp32 weights on CUDA (a no-op when disabled), restored on scope exit.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool enabled);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_, previous_ = false;
};

}  // namespace hgpt::train
