// adaLN modulate on CUDA: out = x * (1 + scale) + shift, x (B, N, D), shift/scale (B, D).
// A memory-bound elementwise op: the floor is reading x once and writing out once.
// Each arithmetic step rounds to the storage type as ATen's eager ops do ((1 + scale), then the product,
// then the sum), so the result matches the reference up to the last bit for float32.
//   v1: one element per thread (the plain version, kept for checking and timing).
//   v2: one 16-byte vector per thread (4 floats or 8 halves), grid-stride.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/modulate_cuda.h"

namespace lit::kernels::cuda {
namespace {

template <typename T>
struct Storage;
template <>
struct Storage<float> {
  __device__ static float load(float v) { return v; }
  __device__ static float round(float v) { return v; }
};
template <>
struct Storage<__half> {
  __device__ static float load(__half v) { return __half2float(v); }
  __device__ static float round(float v) { return __half2float(__float2half_rn(v)); }
};
template <>
struct Storage<__nv_bfloat16> {
  __device__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static float round(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }
};

template <typename T>
__device__ __forceinline__ T modulate_one(T x, T shift, T scale) {
  using S = Storage<T>;
  const float t = S::round(__fadd_rn(1.0f, S::load(scale)));
  const float m = S::round(__fmul_rn(S::load(x), t));
  return static_cast<T>(__fadd_rn(m, S::load(shift)));
}

template <typename T>
__global__ void modulate_v1(const T* __restrict__ x, const T* __restrict__ shift, const T* __restrict__ scale,
                            T* __restrict__ out, int64_t total, int64_t tokens, int64_t dim) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= total) return;
  const int64_t d = i % dim;
  const int64_t b = i / (tokens * dim);
  out[i] = modulate_one(x[i], shift[b * dim + d], scale[b * dim + d]);
}

template <typename T>
__global__ void modulate_v2(const T* __restrict__ x, const T* __restrict__ shift, const T* __restrict__ scale,
                            T* __restrict__ out, int64_t total_vec, int64_t tokens, int64_t dim_vec) {
  constexpr int kLanes = 16 / sizeof(T);
  union Vec {
    uint4 raw;
    T v[kLanes];
  };
  const auto* xv = reinterpret_cast<const uint4*>(x);
  const auto* shv = reinterpret_cast<const uint4*>(shift);
  const auto* scv = reinterpret_cast<const uint4*>(scale);
  auto* ov = reinterpret_cast<uint4*>(out);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total_vec;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = i % dim_vec;
    const int64_t b = i / (tokens * dim_vec);
    Vec a, sh, sc, o;
    a.raw = xv[i];
    sh.raw = __ldg(&shv[b * dim_vec + d]);
    sc.raw = __ldg(&scv[b * dim_vec + d]);
#pragma unroll
    for (int k = 0; k < kLanes; ++k) o.v[k] = modulate_one(a.v[k], sh.v[k], sc.v[k]);
    ov[i] = o.raw;
  }
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("modulate (CUDA) ") + what + ": " + cudaGetErrorString(err));
}

size_t element_size(DType dtype) {
  return dtype == DType::F32 ? 4 : 2;
}

template <typename T>
void launch(int version, const void* x, const void* shift, const void* scale, void* out, int64_t batch, int64_t tokens,
            int64_t dim, cudaStream_t stream) {
  const int64_t total = batch * tokens * dim;
  if (total == 0) return;
  constexpr int kThreads = 256;
  if (version == 1) {
    const int64_t blocks = (total + kThreads - 1) / kThreads;
    modulate_v1<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(shift), static_cast<const T*>(scale), static_cast<T*>(out),
        total, tokens, dim);
  } else {
    constexpr int kLanes = 16 / sizeof(T);
    const int64_t total_vec = total / kLanes;
    int device = 0, sms = 0;
    check(cudaGetDevice(&device), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
    const int64_t wanted = (total_vec + kThreads - 1) / kThreads;
    const int64_t blocks = wanted < int64_t(sms) * 8 ? wanted : int64_t(sms) * 8;
    modulate_v2<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(shift), static_cast<const T*>(scale), static_cast<T*>(out),
        total_vec, tokens, dim / kLanes);
  }
  check(cudaGetLastError(), "launch");
}

}  // namespace

bool modulate_vectorizable(DType dtype, const void* x, const void* shift, const void* scale, const void* out,
                           int64_t dim) {
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return (dim * static_cast<int64_t>(element_size(dtype))) % 16 == 0 && aligned(x) && aligned(shift) &&
         aligned(scale) && aligned(out);
}

void modulate(int version, DType dtype, const void* x, const void* shift, const void* scale, void* out, int64_t batch,
              int64_t tokens, int64_t dim, void* stream) {
  const bool vec_ok = modulate_vectorizable(dtype, x, shift, scale, out, dim);
  if (version == 0) version = vec_ok ? 2 : 1;
  if (version == 2 && !vec_ok)
    throw std::runtime_error("modulate (CUDA) v2 needs 16-byte aligned rows (D * element size % 16 == 0)");
  if (version != 1 && version != 2)
    throw std::runtime_error("modulate (CUDA): no kernel version " + std::to_string(version));
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::F32:
      return launch<float>(version, x, shift, scale, out, batch, tokens, dim, s);
    case DType::F16:
      return launch<__half>(version, x, shift, scale, out, batch, tokens, dim, s);
    case DType::BF16:
      return launch<__nv_bfloat16>(version, x, shift, scale, out, batch, tokens, dim, s);
  }
}

}  // namespace lit::kernels::cuda
