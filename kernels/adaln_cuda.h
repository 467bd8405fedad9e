// Launcher of the fused LayerNorm + modulate CUDA kernel (adaln_cuda.cu); plain pointers, no CUDA headers.
#pragma once

#include <cstdint>

#include "kernels/cuda_types.h"

namespace lit::kernels::cuda {

// out[b, n, :] = (x[b, n, :] - mean) * rstd * (1 + scale[b, :]) + shift[b, :], statistics over the row in
// float32. x and out contiguous (B, N, D); shift and scale rows at shift + b * shift_stride (D contiguous).
// Needs D % 8 == 0, D <= 2048 and 16-byte aligned rows (layer_norm_modulate_fits); bf16 or fp16.
void layer_norm_modulate(DType dtype, const void* x, const void* shift, int64_t shift_stride, const void* scale,
                         int64_t scale_stride, void* out, int64_t batch, int64_t tokens, int64_t dim, float eps,
                         void* stream);
bool layer_norm_modulate_fits(const void* x, const void* shift, int64_t shift_stride, const void* scale,
                              int64_t scale_stride, const void* out, int64_t dim);

}  // namespace lit::kernels::cuda
