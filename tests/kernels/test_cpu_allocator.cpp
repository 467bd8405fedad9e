// The allocator settings the front ends apply at start-up (kernels/cpu_allocator.h): after them a freed
// multi-MiB block stays in the process (no fresh mmap, no page faults the next time), and glibc's own
// variables, when the user sets them, are left to rule.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "kernels/runtime/cpu_allocator.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lit {
namespace {

#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 33)
TEST(CpuAllocator, KeepsMultiMegabyteBlocksOnTheHeap) {
  ASSERT_EQ(std::getenv("MALLOC_MMAP_THRESHOLD_"), nullptr) << "the test needs glibc's defaults";
  ASSERT_TRUE(kernels::tune_cpu_allocator());
  // 8 MiB: above glibc's initial mmap threshold (128 KiB), below the 32 MiB one set now.
  const size_t mapped_before = mallinfo2().hblkhd;
  void* block = std::malloc(8u << 20);
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, 8u << 20);
  EXPECT_EQ(mallinfo2().hblkhd, mapped_before) << "an 8 MiB block was served by mmap";
  std::free(block);
  // Not trimmed: the freed block is still the process's memory, ready for the next tensor.
  EXPECT_GE(mallinfo2().fordblks, 8u << 20);
}
#endif

TEST(CpuAllocator, LeavesTheUsersGlibcSettingsAlone) {
  ::setenv("MALLOC_TOP_PAD_", "0", 1);
  EXPECT_FALSE(kernels::tune_cpu_allocator());
  ::unsetenv("MALLOC_TOP_PAD_");
}

}  // namespace
}  // namespace lit
