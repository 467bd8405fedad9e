// Whether this build carries CUDA kernels, and whether a CUDA device is usable at run time.
#pragma once

#include <ATen/ATen.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cuda_types.h"

namespace lit::kernels {

bool built_with_cuda();  // compiled with LIT_CUDA
bool cuda_available();   // built with CUDA and at least one device present
std::string
cuda_summary();  // one line for --version / inspect: "CUDA: off in this build", "CUDA 13.0, NVIDIA H100 ..."

// The device a front end's --device names: "cpu", "cuda" (device 0), "cuda:N", or "auto" (cuda:0 when a CUDA
// device is usable, else the CPU). lit::Error "<what> ..." for anything else, for CUDA when this build or
// machine has none, and for a GPU index the machine lacks.
at::Device parse_device(const std::string& text, const std::string& what = "--device");
// "cpu", and "cuda" when this build and machine have a usable GPU.
std::vector<std::string> available_devices();

// float32 on CUDA means float32: no TF32 in cuBLAS or cuDNN (LibTorch lets cuDNN convolutions use TF32 by
// default, ~1e-3 relative error), and cuDNN picks deterministic algorithms, so that a command run twice, or
// resumed, writes the same bytes. bf16/fp16 paths are unaffected. Front ends call it once at start-up.
void use_exact_float32();

// Whether autograd would record an operation on these tensors (grad mode on and one of them requires grad).
// A raw CUDA kernel records nothing, so the dispatchers take the kernels only when this is false and the call
// is an inference pass (kernels/execution.h Pass), or when the kernel comes with its own backward.
bool records_grad(std::initializer_list<at::Tensor> tensors);

// The kernels' element type for a tensor dtype (float32, float16, bfloat16), none for the others.
std::optional<cuda::DType> cuda_element_type(at::ScalarType dtype);
// bfloat16 or float16: the dtypes of the fused half-precision kernels.
bool is_half_type(at::ScalarType dtype);

}  // namespace lit::kernels
