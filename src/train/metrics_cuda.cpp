// metrics_cuda.cpp — the CUDA device's name for the MFU table (CUDA builds only).
#include <ATen/cuda/CUDAContext.h>

#include <string>

namespace hgpt::train {

std::string cuda_device_name(int index) { return at::cuda::getDeviceProperties(index)->name; }

}  // namespace hgpt::train
