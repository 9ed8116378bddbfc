// cpu_memory.h — how the process's CPU heap treats freed memory.
#pragma once

namespace hgpt {

// Keeps freed CPU memory in the process for the next allocation instead of handing it back to the
// OS. A training or decoding step frees and re-allocates the same large tensors every step; with
// glibc's defaults many of them come back as fresh zero-filled pages, one page fault each (on the
// 2-core dev CPU: 536k faults in 18 T-only steps at width 256, 130k after this; 7% less CPU time).
// The cost: the heap keeps its high-water mark. Blocks of 32 MiB and more (glibc's largest
// threshold) are still mapped and unmapped each time. glibc only; elsewhere it does nothing.
// Call once, early in main.
void keep_freed_cpu_memory();

}  // namespace hgpt
