#include "kernels/runtime/cuda_support.h"

#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include "common/error.h"

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

bool records_grad(std::initializer_list<at::Tensor> tensors) {
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

at::Device parse_device(const std::string& text, const std::string& what) {
  if (text == "auto") return cuda_available() ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  at::Device device = at::kCPU;
  try {
    device = at::Device(text);
  } catch (const c10::Error&) {
    throw Error(what + " '" + text + "' is not a device: use cpu, cuda or cuda:N");
  }
  if (device.is_cuda()) {
    if (!cuda_available()) throw Error(what + " " + text + ": " + cuda_summary());
    const auto gpus = static_cast<int>(at::detail::getCUDAHooks().getNumGPUs());
    if (device.has_index() && device.index() >= gpus)
      throw Error(what + " " + text + ": no such GPU (this machine has " + std::to_string(gpus) + ")");
  } else if (!device.is_cpu()) {
    throw Error(what + " '" + text + "': only cpu and cuda are supported");
  }
  return device;
}

std::vector<std::string> available_devices() {
  std::vector<std::string> out = {"cpu"};
  if (cuda_available()) out.emplace_back("cuda");
  return out;
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
