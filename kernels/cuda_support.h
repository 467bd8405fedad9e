// Whether this build carries CUDA kernels, and whether a CUDA device is usable at run time.
#pragma once

#include <string>

namespace lit::kernels {

bool built_with_cuda();      // compiled with LIT_CUDA
bool cuda_available();       // built with CUDA and at least one device present
std::string cuda_summary();  // one line for --version / inspect: "CUDA: off in this build", "CUDA 13.0, NVIDIA H100 ..."

}  // namespace lit::kernels
