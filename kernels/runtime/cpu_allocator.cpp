#include "kernels/runtime/cpu_allocator.h"

#include <climits>
#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lit::kernels {

bool tune_cpu_allocator() {
#if defined(__GLIBC__)
  for (const char* name :
       {"MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "GLIBC_TUNABLES"})
    if (std::getenv(name) != nullptr) return false;
  constexpr int kMiB = 1 << 20;
  // 32 MiB is the largest threshold glibc accepts on 64-bit systems; fixing it also stops the dynamic one.
  return mallopt(M_MMAP_THRESHOLD, 32 * kMiB) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1 &&
         mallopt(M_TOP_PAD, 64 * kMiB) == 1;
#else
  return false;
#endif
}

}  // namespace lit::kernels
