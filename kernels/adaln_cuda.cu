// Fused LayerNorm (no affine) + adaLN modulate on CUDA: a memory-bound row operation, one warp per token row,
// the row held in registers between the two passes of the statistics (mean, then the centred sum of
// squares, as LayerNorm computes them), so x is read once and out written once.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/adaln_cuda.h"
#include "kernels/cuda_elem.cuh"

namespace lit::kernels::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kMaxVecPerLane = 8;  // 32 lanes x 8 vectors x 8 elements: D <= 2048

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T, int kVecPerLane>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    ln_modulate_kernel(const T* __restrict__ x, const T* __restrict__ shift, int64_t shift_stride,
                       const T* __restrict__ scale, int64_t scale_stride, T* __restrict__ out, int64_t rows,
                       int64_t tokens, int dim, float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const int vecs = dim / 8;
  const T* xr = x + row * dim;
  float v[kVecPerLane][8];
  float sum = 0;
#pragma unroll
  for (int i = 0; i < kVecPerLane; ++i) {
    const int c = lane + i * 32;
    Vec8<T> in;
    in.raw = c < vecs ? __ldg(reinterpret_cast<const uint4*>(xr) + c) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      v[i][e] = Elem<T>::to_float(in.v[e]);
      sum += v[i][e];
    }
  }
  const float mean = warp_sum(sum) / static_cast<float>(dim);
  float sq = 0;
#pragma unroll
  for (int i = 0; i < kVecPerLane; ++i) {
    if (lane + i * 32 >= vecs) continue;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float c = v[i][e] - mean;
      sq += c * c;
    }
  }
  const float rstd = rsqrtf(warp_sum(sq) / static_cast<float>(dim) + eps);
  const int64_t b = row / tokens;
  const auto* sh = reinterpret_cast<const uint4*>(shift + b * shift_stride);
  const auto* sc = reinterpret_cast<const uint4*>(scale + b * scale_stride);
  auto* o = reinterpret_cast<uint4*>(out + row * dim);
#pragma unroll
  for (int i = 0; i < kVecPerLane; ++i) {
    const int c = lane + i * 32;
    if (c >= vecs) continue;
    Vec8<T> s, t, r;
    s.raw = __ldg(sh + c);
    t.raw = __ldg(sc + c);
#pragma unroll
    for (int e = 0; e < 8; ++e)
      r.v[e] =
          Elem<T>::from_float((v[i][e] - mean) * rstd * (1.0f + Elem<T>::to_float(t.v[e])) + Elem<T>::to_float(s.v[e]));
    o[c] = r.raw;
  }
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("layer_norm_modulate (CUDA) ") + what + ": " + cudaGetErrorString(err));
}

template <typename T, int kVec>
void launch_with(const void* x, const void* shift, int64_t shift_stride, const void* scale, int64_t scale_stride,
                 void* out, int64_t rows, int64_t tokens, int dim, float eps, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  ln_modulate_kernel<T, kVec><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(
      static_cast<const T*>(x), static_cast<const T*>(shift), shift_stride, static_cast<const T*>(scale), scale_stride,
      static_cast<T*>(out), rows, tokens, dim, eps);
}

template <typename T>
void launch(const void* x, const void* shift, int64_t shift_stride, const void* scale, int64_t scale_stride, void* out,
            int64_t rows, int64_t tokens, int dim, float eps, cudaStream_t stream) {
  const int per_lane = (dim / 8 + 31) / 32;  // vectors of 8 per lane, rounded up to the instantiated sizes
  if (per_lane <= 1)
    return launch_with<T, 1>(x, shift, shift_stride, scale, scale_stride, out, rows, tokens, dim, eps, stream);
  if (per_lane <= 2)
    return launch_with<T, 2>(x, shift, shift_stride, scale, scale_stride, out, rows, tokens, dim, eps, stream);
  if (per_lane <= 3)
    return launch_with<T, 3>(x, shift, shift_stride, scale, scale_stride, out, rows, tokens, dim, eps, stream);
  if (per_lane <= 5)
    return launch_with<T, 5>(x, shift, shift_stride, scale, scale_stride, out, rows, tokens, dim, eps, stream);
  return launch_with<T, kMaxVecPerLane>(x, shift, shift_stride, scale, scale_stride, out, rows, tokens, dim, eps,
                                        stream);
}

}  // namespace

bool layer_norm_modulate_fits(const void* x, const void* shift, int64_t shift_stride, const void* scale,
                              int64_t scale_stride, const void* out, int64_t dim) {
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return dim % 8 == 0 && dim <= 32 * 8 * kMaxVecPerLane && shift_stride % 8 == 0 && scale_stride % 8 == 0 &&
         aligned(x) && aligned(shift) && aligned(scale) && aligned(out);
}

void layer_norm_modulate(DType dtype, const void* x, const void* shift, int64_t shift_stride, const void* scale,
                         int64_t scale_stride, void* out, int64_t batch, int64_t tokens, int64_t dim, float eps,
                         void* stream) {
  if (!layer_norm_modulate_fits(x, shift, shift_stride, scale, scale_stride, out, dim))
    throw std::runtime_error("layer_norm_modulate (CUDA): needs D % 8 == 0, D <= 2048 and 16-byte aligned rows");
  const int64_t rows = batch * tokens;
  if (rows == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const int d = static_cast<int>(dim);
  switch (dtype) {
    case DType::BF16:
      launch<__nv_bfloat16>(x, shift, shift_stride, scale, scale_stride, out, rows, tokens, d, eps, s);
      break;
    case DType::F16:
      launch<__half>(x, shift, shift_stride, scale, scale_stride, out, rows, tokens, d, eps, s);
      break;
    case DType::F32:
      throw std::runtime_error("layer_norm_modulate (CUDA): bf16 or fp16 expected");
  }
  check(cudaGetLastError(), "launch");
}

}  // namespace lit::kernels::cuda
