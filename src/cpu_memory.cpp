// cpu_memory.cpp — glibc malloc settings for a process that runs tensor steps (see cpu_memory.h).
#include "hgpt/cpu_memory.h"

#include <cstdlib>  // defines __GLIBC__ on glibc systems

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace hgpt {

void keep_freed_cpu_memory() {
#if defined(__GLIBC__)
  // Both together: setting either one stops glibc's own adaptation of the other, and a trim
  // threshold alone leaves the mmap threshold at 128 KiB (far more faults than the default).
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);  // the largest value glibc accepts on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace hgpt
