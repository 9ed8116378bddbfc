// backend_gloo.cpp — builds c10d's ProcessGroupGloo (CPU collectives over TCP) and picks the
// network device it binds to.
//
// The wheel ships ProcessGroupGloo.hpp but not Gloo's own headers, which it includes; those come
// from Debian's libgloo-dev (only declarations are used: every Gloo function we reach is compiled
// into libtorch_cpu). Without them the library still builds and a CPU group of 2+ ranks fails
// with a message that says what to install.
#include "backends.h"
#include "hgpt/strings.h"

#include <cstdlib>

#if defined(USE_C10D_GLOO) && __has_include(<gloo/rendezvous/store.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define HGPT_HAVE_GLOO 1
#endif

namespace hgpt::dist::detail {

#ifdef HGPT_HAVE_GLOO
namespace {

bool is_loopback(const std::string& addr) {
  return addr == "127.0.0.1" || addr == "localhost" || addr == "::1" || starts_with(addr, "127.");
}

std::shared_ptr<::gloo::transport::Device> make_device(const std::string& master_addr, const DistOptions& opts) {
  using c10d::ProcessGroupGloo;
  if (!opts.gloo_interface.empty()) {
    return ProcessGroupGloo::createDeviceForInterface(opts.gloo_interface);
  }
  if (!opts.gloo_host.empty()) return ProcessGroupGloo::createDeviceForHostname(opts.gloo_host);
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    return ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  // All ranks on this machine: stay on loopback, which needs no working DNS.
  if (is_loopback(master_addr)) return ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

BackendPtr make_gloo_backend(const StorePtr& store, int rank, int world_size, const std::string& master_addr,
                             const DistOptions& opts) {
  auto options = c10d::ProcessGroupGloo::Options::create(opts.timeout);
  options->devices.push_back(make_device(master_addr, opts));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, options);
}

#else

BackendPtr make_gloo_backend(const StorePtr&, int, int, const std::string&, const DistOptions&) {
  throw DistError(
      "this build has no Gloo support (CPU collectives): install Gloo's headers (Debian package "
      "libgloo-dev) and rebuild, or train on CUDA (NCCL)");
}

#endif

}  // namespace hgpt::dist::detail
