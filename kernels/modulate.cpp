#include "kernels/modulate.h"

#include <stdexcept>

#include "kernels/cuda_support.h"

#ifdef LIT_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/modulate_cuda.h"
#endif

namespace lit::kernels {
namespace {

void check_shapes(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  TORCH_CHECK(x.dim() == 3, "modulate: x must be (B, N, D), got ", x.sizes());
  TORCH_CHECK(shift.dim() == 2 && shift.size(0) == x.size(0) && shift.size(1) == x.size(2),
              "modulate: shift must be (B, D) = (", x.size(0), ", ", x.size(2), "), got ", shift.sizes());
  TORCH_CHECK(scale.sizes() == shift.sizes(), "modulate: scale must be like shift ", shift.sizes(), ", got ",
              scale.sizes());
}

}  // namespace

at::Tensor modulate_reference(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  check_shapes(x, shift, scale);
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
}

#ifdef LIT_WITH_CUDA
namespace {
bool cuda_dtype(at::ScalarType t, cuda::DType* out) {
  switch (t) {
    case at::kFloat:
      *out = cuda::DType::F32;
      return true;
    case at::kHalf:
      *out = cuda::DType::F16;
      return true;
    case at::kBFloat16:
      *out = cuda::DType::BF16;
      return true;
    default:
      return false;
  }
}
}  // namespace

at::Tensor modulate_cuda(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, int version) {
  check_shapes(x, shift, scale);
  cuda::DType dtype;
  TORCH_CHECK(x.is_cuda() && shift.device() == x.device() && scale.device() == x.device(),
              "modulate_cuda: all tensors must be on the same CUDA device");
  TORCH_CHECK(cuda_dtype(x.scalar_type(), &dtype) && shift.scalar_type() == x.scalar_type() &&
                  scale.scalar_type() == x.scalar_type(),
              "modulate_cuda: float32, float16 or bfloat16 tensors of one dtype expected");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor xc = x.contiguous(), shc = shift.contiguous(), scc = scale.contiguous();
  at::Tensor out = at::empty_like(xc);
  try {
    cuda::modulate(version, dtype, xc.data_ptr(), shc.data_ptr(), scc.data_ptr(), out.data_ptr(), xc.size(0),
                   xc.size(1), xc.size(2), c10::cuda::getCurrentCUDAStream().stream());
  } catch (const std::runtime_error& e) {
    TORCH_CHECK(false, e.what());
  }
  return out;
}

at::Tensor modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  cuda::DType dtype;
  // The kernel has no backward: with gradients recorded the ATen ops run (autograd differentiates them).
  if (x.is_cuda() && cuda_dtype(x.scalar_type(), &dtype) && shift.scalar_type() == x.scalar_type() &&
      scale.scalar_type() == x.scalar_type() && shift.device() == x.device() && scale.device() == x.device() &&
      !records_grad({x, shift, scale}))
    return modulate_cuda(x, shift, scale, 0);
  return modulate_reference(x, shift, scale);
}
#else
at::Tensor modulate_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&, int) {
  TORCH_CHECK(false, "modulate_cuda: this build has no CUDA kernels (configure with LIT_CUDA=ON)");
}

at::Tensor modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  return modulate_reference(x, shift, scale);
}
#endif

}  // namespace lit::kernels
