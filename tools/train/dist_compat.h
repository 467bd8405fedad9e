// Where c10d (PyTorch's distributed library) differs between LibTorch 1.13 (Debian, CPU) and 2.x (the CUDA
// builds), kept in one place so that tools/train/distributed.cpp has no version #ifs.
//
// - 1.13: ProcessGroupGloo and ProcessGroupNCCL derive from c10d::ProcessGroup. 2.x split the front
//   (ProcessGroup, which dispatches) from the backends: both derive from c10d::Backend. The collectives we
//   call (broadcast, allreduce, barrier on vectors of tensors, returning c10d::Work) are the same in both.
// - The headers compile their classes only when USE_C10D_GLOO / USE_C10D_NCCL are defined (the LibTorch
//   build defines them for itself, not for us): we define them where the backend's own headers are there.
//   Gloo's headers come from Debian's libgloo-dev (the pip wheels carry them under torch/include); NCCL's
//   nccl.h from the CUDA toolkit or the nvidia-nccl wheel (tools/CMakeLists.txt looks for it).
#pragma once

#include <torch/version.h>

#define LIT_DIST_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

#if __has_include(<gloo/config.h>) && __has_include(<torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#define LIT_DIST_HAS_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#else
#define LIT_DIST_HAS_GLOO 0
#endif

#if defined(LIT_WITH_CUDA) && defined(LIT_WITH_NCCL) && __has_include(<nccl.h>) && \
    __has_include(<torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#define LIT_DIST_HAS_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#else
#define LIT_DIST_HAS_NCCL 0
#endif

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

namespace lit::compat {

// The common base of the Gloo and NCCL process groups.
#if LIT_DIST_TORCH_AT_LEAST(2, 0)
using C10dBackend = c10d::Backend;
#else
using C10dBackend = c10d::ProcessGroup;
#endif

}  // namespace lit::compat
