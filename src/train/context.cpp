// context.cpp — resolving the device and building a run's Context.
#include "hgpt/train/context.h"

#include "hgpt/config.h"
#include "hgpt/dist/process_group.h"
#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/train/precision.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

namespace hgpt::train {

namespace {
bool have_cuda() { return at::hasCUDA() && at::detail::getCUDAHooks().deviceCount() > 0; }
}  // namespace

bool Context::master() const { return pg.rank() == 0; }

std::string Context::run_dir() const { return path_join(config.train.out_dir, config.resolved_model_tag()); }

Context make_context(const Config& config, dist::ProcessGroup& pg, c10::Device device) {
  return Context{config, pg, device, uses_autocast(device)};
}

bool wants_cuda(DeviceChoice device) {
  return device == DeviceChoice::CUDA || (device == DeviceChoice::Auto && have_cuda());
}

c10::Device resolve_device(DeviceChoice device, int local_rank) {
  if (device == DeviceChoice::CUDA && !have_cuda()) {
    throw UserError(
        "config key 'device': \"cuda\" was asked for but no CUDA GPU is available; use \"cpu\" or \"auto\"");
  }
  if (!wants_cuda(device)) return c10::Device(c10::kCPU);
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

}  // namespace hgpt::train
