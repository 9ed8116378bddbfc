// cpu_capability.h — which of the fused CPU kernels' compiled versions runs (the selective scan's
// and the SSD mask's *_cpu_kernel.cpp are each built for DEFAULT, AVX2 and AVX-512): ATen's CPU
// capability (ATEN_CPU_CAPABILITY may lower it), capped at what this build compiled (only DEFAULT
// off x86-64).
#pragma once

namespace hgpt::ops::detail {

enum class Capability { Default, Avx2, Avx512 };

Capability cpu_capability();
// "DEFAULT", "AVX2" or "AVX512".
const char* cpu_capability_name();

}  // namespace hgpt::ops::detail
