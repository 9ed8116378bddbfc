// backend_nccl_cuda.cpp — builds c10d's ProcessGroupNCCL on cuda:local_rank (CUDA builds only).
#include "backends.h"

#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define HGPT_HAVE_NCCL 1
#endif

namespace hgpt::dist::detail {

#ifdef HGPT_HAVE_NCCL

BackendPtr make_nccl_backend(const StorePtr& store, int rank, int world_size, int local_rank, const DistOptions& opts) {
  const int devices = static_cast<int>(c10::cuda::device_count());
  if (local_rank >= devices) {
    throw DistError("local rank " + std::to_string(local_rank) + " needs cuda:" + std::to_string(local_rank) +
                    " but this host has " + std::to_string(devices) +
                    " CUDA device(s); launch at most that many processes per node");
  }
  // NCCL binds a communicator to the current device: set it before any collective.
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(local_rank));
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = opts.timeout;  // the watchdog aborts a collective stuck longer than this
  auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, options);
  const at::Device device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
  pg->setBoundDeviceId(device);
  // Build the communicator now, so a missing peer shows up at start rather than at step one.
  pg->eagerConnectSingleDevice(device);
  return pg;
}

#else

BackendPtr make_nccl_backend(const StorePtr&, int, int, int, const DistOptions&) {
  throw DistError("this LibTorch has no NCCL support; train on CPU (Gloo) instead");
}

#endif

}  // namespace hgpt::dist::detail
