// Launchers of the modulate CUDA kernels; plain pointers so that this header needs no CUDA or ATen headers.
#pragma once

#include <cstdint>

#include "kernels/cuda_types.h"

namespace lit::kernels::cuda {

// out[b, n, d] = x[b, n, d] * (1 + scale[b, d]) + shift[b, d]; all tensors contiguous.
// version 1: one element per thread; version 2: 16-byte vectors (needs D * sizeof(T) % 16 == 0 and
// 16-byte aligned pointers); version 0: the best that applies. Throws std::runtime_error on a CUDA error.
void modulate(int version, DType dtype, const void* x, const void* shift, const void* scale, void* out, int64_t batch,
              int64_t tokens, int64_t dim, void* stream);

// Whether version 2 applies to these arguments.
bool modulate_vectorizable(DType dtype, const void* x, const void* shift, const void* scale, const void* out,
                           int64_t dim);

}  // namespace lit::kernels::cuda
