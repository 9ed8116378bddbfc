// backends.h — private to src/dist: the factories that build one c10d backend each. The Gloo one is
// in backend_gloo.cpp, the NCCL one in backend_nccl_cuda.cpp (CUDA builds only); process_group.cpp
// is their only caller.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <string>

#include "hgpt/dist/process_group.h"

namespace hgpt::dist::detail {

using BackendPtr = c10::intrusive_ptr<c10d::Backend>;
using StorePtr = c10::intrusive_ptr<c10d::Store>;

// Gloo over TCP. The network device: opts.gloo_interface, else opts.gloo_host, else the
// GLOO_SOCKET_IFNAME variable, else loopback when master_addr is local, else this host's name.
BackendPtr make_gloo_backend(const StorePtr& store, int rank, int world_size, const std::string& master_addr,
                             const DistOptions& opts);

// NCCL on cuda:local_rank; sets that device current first.
BackendPtr make_nccl_backend(const StorePtr& store, int rank, int world_size, int local_rank, const DistOptions& opts);

}  // namespace hgpt::dist::detail
