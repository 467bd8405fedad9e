// The C allocator's settings for LibTorch's CPU tensors (glibc malloc), set once by a front end at start-up.
//
// glibc serves every allocation above its mmap threshold (128 KiB at first, raised dynamically up to 32 MiB)
// with a fresh mmap, and gives freed memory at the top of the heap back to the system: a tensor of a few
// MiB, allocated and freed every operator, then costs page faults on every first touch. On the 2-core CPU
// machine 10 `lit train` steps of the built-in model took 4.6-5.7 million minor faults. Allocations up to
// 32 MiB are kept on the heap and the heap is not trimmed: faults drop 2.5x (training) to 21x (generation),
// generation and training get 1.08-1.14x faster (README, "Performance on the CPU"), for up to ~6 % more peak
// memory.
#pragma once

namespace lit::kernels {

// Applies the settings above, unless the user set glibc's own malloc variables (MALLOC_TRIM_THRESHOLD_,
// MALLOC_MMAP_THRESHOLD_, MALLOC_TOP_PAD_, MALLOC_MMAP_MAX_, GLIBC_TUNABLES), which are then left to rule.
// Returns whether it applied them (false off glibc).
bool tune_cpu_allocator();

}  // namespace lit::kernels
