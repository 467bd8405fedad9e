#include "kernels/adaln.h"

#include <ATen/core/grad_mode.h>

#include "kernels/modulate.h"
#include "kernels/runtime/cuda_support.h"

#ifdef LIT_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <stdexcept>

#include "kernels/adaln_cuda.h"
#endif

namespace lit::kernels {
namespace {

constexpr double kEps = 1e-6;  // DiT's LayerNorm eps

}  // namespace

at::Tensor layer_norm_modulate_reference(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale,
                                         Pass pass) {
  check_modulate_shapes("layer_norm_modulate", x, shift, scale);
  return modulate(at::layer_norm(x, {x.size(-1)}, {}, {}, kEps), shift, scale, pass);
}

bool half_precision_cuda_inference(const at::Tensor& x, Pass pass) {
#ifdef LIT_WITH_CUDA
  return pass == Pass::Inference && x.is_cuda() && is_half_type(x.scalar_type()) && !at::GradMode::is_enabled();
#else
  (void)x;
  (void)pass;
  return false;
#endif
}

#ifdef LIT_WITH_CUDA
namespace {

// Rows of (B, D) whose last dimension is contiguous keep their stride; anything else is copied.
at::Tensor rows_of(const at::Tensor& t) {
  return t.stride(1) == 1 ? t : t.contiguous();
}

bool kernel_fits(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  return x.is_cuda() && is_half_type(x.scalar_type()) && shift.scalar_type() == x.scalar_type() &&
         scale.scalar_type() == x.scalar_type() && shift.device() == x.device() && scale.device() == x.device() &&
         shift.stride(1) == 1 && scale.stride(1) == 1 &&
         cuda::layer_norm_modulate_fits(x.data_ptr(), shift.data_ptr(), shift.stride(0), scale.data_ptr(),
                                        scale.stride(0), x.data_ptr(), x.size(2));
}

}  // namespace

at::Tensor layer_norm_modulate_cuda(const at::Tensor& x_in, const at::Tensor& shift_in, const at::Tensor& scale_in) {
  check_modulate_shapes("layer_norm_modulate", x_in, shift_in, scale_in);
  const at::Tensor x = x_in.contiguous(), shift = rows_of(shift_in), scale = rows_of(scale_in);
  TORCH_CHECK(kernel_fits(x, shift, scale),
              "layer_norm_modulate_cuda: CUDA bf16/fp16 tensors of one dtype with D % 8 == 0 and D <= 2048 expected");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty_like(x);
  try {
    cuda::layer_norm_modulate(*cuda_element_type(x.scalar_type()), x.data_ptr(), shift.data_ptr(), shift.stride(0),
                              scale.data_ptr(), scale.stride(0), out.data_ptr(), x.size(0), x.size(1), x.size(2),
                              static_cast<float>(kEps), c10::cuda::getCurrentCUDAStream().stream());
  } catch (const std::runtime_error& e) {
    TORCH_CHECK(false, e.what());
  }
  return out;
}

at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, Pass pass) {
  check_modulate_shapes("layer_norm_modulate", x, shift, scale);
  // The kernel has no backward: on a training pass, or with gradients recorded, the reference's ATen ops run.
  if (pass == Pass::Inference && x.is_cuda() && is_half_type(x.scalar_type()) && x.is_contiguous() &&
      !records_grad({x, shift, scale}) && kernel_fits(x, rows_of(shift), rows_of(scale)))
    return layer_norm_modulate_cuda(x, shift, scale);
  return layer_norm_modulate_reference(x, shift, scale, pass);
}
#else
at::Tensor layer_norm_modulate_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  TORCH_CHECK(false, "layer_norm_modulate_cuda: this build has no CUDA kernels (configure with LIT_CUDA=ON)");
}

at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, Pass pass) {
  return layer_norm_modulate_reference(x, shift, scale, pass);
}
#endif

}  // namespace lit::kernels
