// The few places where LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (CUDA builds) differ, kept here so the
// rest of the code base has no version #ifs.
#pragma once

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "kernels/execution.h"
#include "kernels/runtime/cuda_support.h"

#define LIT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace lit::compat {

// softmax(q k^T / sqrt(d)) v over (B, heads, N, d) tensors. LibTorch 2.x has a fused operator (flash or
// memory-efficient attention on CUDA); 1.13 only has the private math kernel, so we spell it out.
// Training on the CPU (a training pass, or gradients recorded) takes the spelled-out form on 2.x too: the CPU
// flash-attention backward has had out-of-bounds writes (pytorch/pytorch#156022), and a DiT training step
// crashed in it on LibTorch 2.11.
inline at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               kernels::Pass pass = kernels::Pass::Inference) {
  (void)pass;
#if LIT_TORCH_AT_LEAST(2, 0)
  const bool cpu_backward =
      q.device().is_cpu() && (pass == kernels::Pass::Training || kernels::records_grad({q, k, v}));
  if (!cpu_backward) return at::scaled_dot_product_attention(q, k, v);
#endif
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  return at::matmul(at::softmax(at::matmul(q * scale, k.transpose(-2, -1)), -1), v);
}

// Automatic mixed precision (autocast) on one device type (CPU or CUDA) for the guard's lifetime: matrix
// products and convolutions run in `dtype` (bf16), precision-sensitive operators stay in float32, and the
// parameters stay float32 (the master weights). 1.13 has one switch per device (set_enabled for CUDA,
// set_cpu_enabled); 2.4 and later take the device type as an argument.
class AutocastGuard {
 public:
  AutocastGuard(at::DeviceType device, at::ScalarType dtype) : device_(device) {
#if LIT_TORCH_AT_LEAST(2, 4)
    was_enabled_ = at::autocast::is_autocast_enabled(device_);
    old_dtype_ = at::autocast::get_autocast_dtype(device_);
    at::autocast::set_autocast_dtype(device_, dtype);
    at::autocast::set_autocast_enabled(device_, true);
#else
    const bool cuda = device_ == at::kCUDA;
    was_enabled_ = cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
    old_dtype_ = cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
    if (cuda) {
      at::autocast::set_autocast_gpu_dtype(dtype);
      at::autocast::set_enabled(true);
    } else {
      at::autocast::set_autocast_cpu_dtype(dtype);
      at::autocast::set_cpu_enabled(true);
    }
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    // Like torch.autocast's __exit__: the cache of casted weights lives only as long as the outermost region.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if LIT_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_enabled(device_, was_enabled_);
    at::autocast::set_autocast_dtype(device_, old_dtype_);
#else
    if (device_ == at::kCUDA) {
      at::autocast::set_enabled(was_enabled_);
      at::autocast::set_autocast_gpu_dtype(old_dtype_);
    } else {
      at::autocast::set_cpu_enabled(was_enabled_);
      at::autocast::set_autocast_cpu_dtype(old_dtype_);
    }
#endif
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  at::DeviceType device_;
  bool was_enabled_ = false;
  at::ScalarType old_dtype_ = at::kBFloat16;
};

// Whether autocast is on for a device type in this thread, and its dtype (activation checkpointing records
// it in the forward pass and restores it when the block is run again in the backward pass).
struct AutocastState {
  bool enabled = false;
  at::ScalarType dtype = at::kBFloat16;
};
inline AutocastState autocast_state(at::DeviceType device) {
#if LIT_TORCH_AT_LEAST(2, 4)
  return {at::autocast::is_autocast_enabled(device), at::autocast::get_autocast_dtype(device)};
#else
  if (device == at::kCUDA) return {at::autocast::is_enabled(), at::autocast::get_autocast_gpu_dtype()};
  return {at::autocast::is_cpu_enabled(), at::autocast::get_autocast_cpu_dtype()};
#endif
}

// The LibTorch version this binary was built against, e.g. "1.13.0".
inline const char* torch_version() {
  return TORCH_VERSION;
}

}  // namespace lit::compat
