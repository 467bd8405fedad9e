#include "kernels/runtime/cuda_support.h"

#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>

#ifdef LIT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace lit::kernels {

bool built_with_cuda() {
#ifdef LIT_WITH_CUDA
  return true;
#else
  return false;
#endif
}

void use_exact_float32() {
  if (!at::hasCUDA()) return;
  auto& context = at::globalContext();
  context.setAllowTF32CuBLAS(false);
  context.setAllowTF32CuDNN(false);
  context.setDeterministicCuDNN(true);
  context.setBenchmarkCuDNN(false);
}

namespace {
thread_local bool t_training_path = false;
}  // namespace

TrainingPathGuard::TrainingPathGuard() : previous_(t_training_path) {
  t_training_path = true;
}

TrainingPathGuard::~TrainingPathGuard() {
  t_training_path = previous_;
}

bool training_path_forced() {
  return t_training_path;
}

bool records_grad(std::initializer_list<at::Tensor> tensors) {
  if (t_training_path) return true;
  if (!at::GradMode::is_enabled()) return false;
  for (const at::Tensor& t : tensors)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

std::optional<cuda::DType> cuda_element_type(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return cuda::DType::F32;
    case at::kHalf:
      return cuda::DType::F16;
    case at::kBFloat16:
      return cuda::DType::BF16;
    default:
      return std::nullopt;
  }
}

bool is_half_type(at::ScalarType dtype) {
  return dtype == at::kBFloat16 || dtype == at::kHalf;
}

bool cuda_available() {
  return built_with_cuda() && at::hasCUDA();
}

std::string cuda_summary() {
#ifdef LIT_WITH_CUDA
  if (!at::hasCUDA()) return "CUDA kernels built, no CUDA device present";
  int device = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess)
    return "CUDA kernels built, device query failed";
  return std::string("CUDA device ") + std::to_string(device) + ": " + prop.name + " (sm_" +
         std::to_string(prop.major) + std::to_string(prop.minor) + ", " + std::to_string(prop.multiProcessorCount) +
         " SMs)";
#else
  return "CUDA kernels not built (CPU-only build)";
#endif
}

}  // namespace lit::kernels
