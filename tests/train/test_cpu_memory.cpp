// test_cpu_memory.cpp — keep_freed_cpu_memory: a large block comes from the heap, not from a fresh
// mapping (which glibc would unmap on free, so the next step's block faults in page by page).
#include "hgpt/cpu_memory.h"

#include <gtest/gtest.h>

#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

// (ctest runs each test in its own process: an earlier test in the same process that freed a
// large block would have raised glibc's own adaptive threshold.)
TEST(CpuMemory, LargeBlocksStayInTheHeap) {
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 33)
  hgpt::keep_freed_cpu_memory();
  const size_t mapped_before = mallinfo2().hblks;
  void* block = std::malloc(16u << 20);  // above glibc's default 128 KiB mmap threshold
  ASSERT_NE(block, nullptr);
  const size_t mapped_with_block = mallinfo2().hblks;
  std::free(block);
  EXPECT_EQ(mapped_with_block, mapped_before) << "a 16 MiB block was mapped on its own";
#else
  GTEST_SKIP() << "not glibc 2.33 or later: keep_freed_cpu_memory does nothing here, or mallinfo2 is missing";
#endif
}

}  // namespace
