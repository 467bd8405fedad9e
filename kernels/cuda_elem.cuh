// Device-side helpers shared by the CUDA kernels: bf16/fp16 element conversions and 16-byte vectors.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace lit::kernels::cuda {

// Conversions of a 2-byte element type to and from float (round to nearest even).
template <typename T>
struct Elem;
template <>
struct Elem<__nv_bfloat16> {
  __device__ static float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};
template <>
struct Elem<__half> {
  __device__ static float to_float(__half v) { return __half2float(v); }
  __device__ static __half from_float(float v) { return __float2half_rn(v); }
};

// 8 elements of 2 bytes: one 16-byte load or store.
template <typename T>
union Vec8 {
  uint4 raw;
  T v[8];
};

}  // namespace lit::kernels::cuda
