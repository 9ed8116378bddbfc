// cpu_capability.cpp — the fused CPU kernels' capability (cpu_capability.h).
#include "cpu_capability.h"

#include <ATen/Version.h>

#include <string>

namespace hgpt::ops::detail {

Capability cpu_capability() {
  static const Capability cap = [] {
    const std::string aten = at::get_cpu_capability();
    (void)aten;
#ifdef HGPT_SCAN_HAVE_AVX512
    if (aten == "AVX512") return Capability::Avx512;
#endif
#ifdef HGPT_SCAN_HAVE_AVX2
    if (aten == "AVX2" || aten == "AVX512") return Capability::Avx2;
#endif
    return Capability::Default;
  }();
  return cap;
}

const char* cpu_capability_name() {
  switch (cpu_capability()) {
    case Capability::Avx512:
      return "AVX512";
    case Capability::Avx2:
      return "AVX2";
    default:
      return "DEFAULT";
  }
}

}  // namespace hgpt::ops::detail
