#include "kernels/modulate.h"

#include <stdexcept>

#include "kernels/runtime/cuda_support.h"

#ifdef LIT_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/modulate_cuda.h"
#endif

namespace lit::kernels {

void check_modulate_shapes(const char* op, const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  TORCH_CHECK(x.dim() == 3, op, ": x must be (B, N, D), got ", x.sizes());
  TORCH_CHECK(shift.dim() == 2 && shift.size(0) == x.size(0) && shift.size(1) == x.size(2), op,
              ": shift must be (B, D) = (", x.size(0), ", ", x.size(2), "), got ", shift.sizes());
  TORCH_CHECK(scale.sizes() == shift.sizes(), op, ": scale must be like shift ", shift.sizes(), ", got ",
              scale.sizes());
}

at::Tensor modulate_reference(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  check_modulate_shapes("modulate", x, shift, scale);
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
}

#ifdef LIT_WITH_CUDA

at::Tensor modulate_cuda(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, int version) {
  check_modulate_shapes("modulate", x, shift, scale);
  TORCH_CHECK(x.is_cuda() && shift.device() == x.device() && scale.device() == x.device(),
              "modulate_cuda: all tensors must be on the same CUDA device");
  const std::optional<cuda::DType> dtype = cuda_element_type(x.scalar_type());
  TORCH_CHECK(dtype && shift.scalar_type() == x.scalar_type() && scale.scalar_type() == x.scalar_type(),
              "modulate_cuda: float32, float16 or bfloat16 tensors of one dtype expected");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor xc = x.contiguous(), shc = shift.contiguous(), scc = scale.contiguous();
  at::Tensor out = at::empty_like(xc);
  try {
    cuda::modulate(version, *dtype, xc.data_ptr(), shc.data_ptr(), scc.data_ptr(), out.data_ptr(), xc.size(0),
                   xc.size(1), xc.size(2), c10::cuda::getCurrentCUDAStream().stream());
  } catch (const std::runtime_error& e) {
    TORCH_CHECK(false, e.what());
  }
  return out;
}

at::Tensor modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, Pass pass) {
  // The kernel has no backward: on a training pass, or with gradients recorded, the ATen ops run (autograd
  // differentiates them).
  if (pass == Pass::Inference && x.is_cuda() && cuda_element_type(x.scalar_type()) &&
      shift.scalar_type() == x.scalar_type() && scale.scalar_type() == x.scalar_type() &&
      shift.device() == x.device() && scale.device() == x.device() && !records_grad({x, shift, scale}))
    return modulate_cuda(x, shift, scale, 0);
  return modulate_reference(x, shift, scale);
}
#else
at::Tensor modulate_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&, int) {
  TORCH_CHECK(false, "modulate_cuda: this build has no CUDA kernels (configure with LIT_CUDA=ON)");
}

at::Tensor modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, Pass) {
  return modulate_reference(x, shift, scale);
}
#endif

}  // namespace lit::kernels
