// selective_scan.cpp — dispatch of the one selective_scan entry point.
// (Foundation: only the reference is wired; the fused kernels plug in here.)
#include "hgpt/ops/selective_scan.h"

#include <c10/util/Exception.h>

namespace hgpt::ops {

ScanOutputs selective_scan(const ScanInputs& in, bool return_last_state, ScanImpl impl) {
  TORCH_CHECK(impl == ScanImpl::Auto || impl == ScanImpl::Reference,
              "selective_scan: implementation '", scan_impl_name(impl), "' is not built");
  return selective_scan_reference(in, return_last_state);
}

}  // namespace hgpt::ops
