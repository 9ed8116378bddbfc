// context.h — what every part of a run shares: the config, the process group, the device and its
// precision. run_training builds one and hands it to the step, evaluation, sampling and
// checkpoints (tests and benchmarks build their own).
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace hgpt {
struct Config;
enum class DeviceChoice;
namespace dist {
class ProcessGroup;
}
}  // namespace hgpt

namespace hgpt::train {

struct Context {
  const Config& config;
  dist::ProcessGroup& pg;
  c10::Device device;
  bool autocast;  // bf16 autocast over fp32 weights (precision.h: on CUDA)

  bool master() const;          // rank 0: prints, writes the model, meta and metrics files
  std::string run_dir() const;  // <out_dir>/<model_tag>: checkpoints and metrics
};

// A run's context on `device` (from resolve_device, once per process), with its precision.
Context make_context(const Config& config, dist::ProcessGroup& pg, c10::Device device);

// Whether the `device` key means CUDA: "auto" does when a GPU is present.
bool wants_cuda(DeviceChoice device);
// CUDA device local_rank when wants_cuda, else the CPU. "cuda" without a GPU is a UserError.
c10::Device resolve_device(DeviceChoice device, int local_rank);

}  // namespace hgpt::train
