// Fused linear attention on CUDA: the two products of LiT's attention (the d x d state K^T V, then each
// query row times the state) as tensor-core tile kernels whose loads apply the kernel function and scalings
// and whose epilogues apply the normaliser, masks and sums, plus LiT's depthwise convolution read directly in
// token layout. See linear_attention_cuda.h for what each computes, linear_attention.cpp for how they compose.
//
// Numbers of the design (LiT-XL/2 at 256 px, batch 32, 4 heads of d = 288, N = 256): each product is
// 2 N d^2 multiply-adds per (image, head), ~4 % of the block's FLOPs; the bytes that must move are q, k, v
// read once and the output written once. The tiles run on the tensor cores through WMMA (16x16x16 bf16/fp16,
// float32 accumulate): ample for 4 % of the FLOPs.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/linear_attention_cuda.h"

namespace lit::kernels::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr float kPhiEps = 1e-6f;   // phi(x) = relu(x) + 1e-6
constexpr float kNormEps = 1e-6f;  // z = 1 / (q . mean(k) + 1e-6)

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

template <Transform kF>
__device__ __forceinline__ float transform(float v) {
  if constexpr (kF == Transform::Phi) return fmaxf(v, 0.0f) + kPhiEps;
  return v;
}

// 8 elements of 2 bytes: one 16-byte load or store.
template <typename T>
union Vec8 {
  uint4 raw;
  T v[8];
};

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("linear attention (CUDA) ") + what + ": " + cudaGetErrorString(err));
}

int sm_count() {
  int device = 0, sms = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  return sms;
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Whether a view can be read in 16-byte vectors: d, the row stride and the base all multiples of 8 elements.
bool vectorizable(const HeadMajor& v, int64_t d) {
  return v.data == nullptr || (d % 8 == 0 && v.row_stride % 8 == 0 && aligned16(v.data));
}

// ---------------------------------------------------------------------------------------------------------
// The state: C = alpha * sum_n f(X_n)^T (r_n Y_n), a (d x d) tile of 64 x 64 per block, tokens in steps of 32
// ---------------------------------------------------------------------------------------------------------
constexpr int kStateBM = 64, kStateBN = 64, kStateBK = 32, kStateThreads = 128;
constexpr int kStatePad = 8;  // keeps WMMA's 32-byte alignment and spreads the rows over the banks

template <typename T>
struct StateSmem {
  T xs[kStateBK][kStateBM + kStatePad];  // X tile, tokens x channels i: WMMA's A = X^T, col-major
  T ys[kStateBK][kStateBN + kStatePad];  // Y tile, tokens x channels j: B, row-major
};

// Loads 2 rows-of-8 of a 32 x 64 tile (tokens n0.., channels c0..) per thread into registers.
template <typename T, bool kVec>
struct TileLoader32x64 {
  static constexpr int kPerThread = (kStateBK * 64) / (kVec ? 8 : 1) / kStateThreads;  // 2 vectors or 16 elements
  Vec8<T> vec[kVec ? kPerThread : 1];
  T scalar[kVec ? 1 : kPerThread];

  __device__ void load(const T* base, int64_t row_stride, int64_t n0, int64_t n_end, int c0, int d) {
    if constexpr (kVec) {
#pragma unroll
      for (int r = 0; r < kPerThread; ++r) {
        const int idx = threadIdx.x + r * kStateThreads;
        const int row = idx / 8, col = (idx % 8) * 8;
        const int64_t n = n0 + row;
        if (n < n_end && c0 + col < d)
          vec[r].raw = __ldg(reinterpret_cast<const uint4*>(base + n * row_stride + c0 + col));
        else
          vec[r].raw = make_uint4(0, 0, 0, 0);
      }
    } else {
#pragma unroll
      for (int r = 0; r < kPerThread; ++r) {
        const int idx = threadIdx.x + r * kStateThreads;
        const int row = idx / 64, col = idx % 64;
        const int64_t n = n0 + row;
        scalar[r] = (n < n_end && c0 + col < d) ? base[n * row_stride + c0 + col] : Elem<T>::from_float(0.0f);
      }
    }
  }

  // Writes the tile to shared memory, transformed and scaled by row; rows and columns outside the problem
  // are stored as 0 (phi(0) would not be).
  template <Transform kF>
  __device__ void store(T (*dst)[64 + kStatePad], int64_t n0, int64_t n_end, int c0, int d, const float* row_scale) {
    if constexpr (kVec) {
#pragma unroll
      for (int r = 0; r < kPerThread; ++r) {
        const int idx = threadIdx.x + r * kStateThreads;
        const int row = idx / 8, col = (idx % 8) * 8;
        const int64_t n = n0 + row;
        const bool inside = n < n_end && c0 + col < d;
        const float scale = (inside && row_scale) ? row_scale[n] : 1.0f;
        Vec8<T> o;
#pragma unroll
        for (int e = 0; e < 8; ++e)
          o.v[e] = Elem<T>::from_float(inside ? transform<kF>(Elem<T>::to_float(vec[r].v[e])) * scale : 0.0f);
        *reinterpret_cast<uint4*>(&dst[row][col]) = o.raw;
      }
    } else {
#pragma unroll
      for (int r = 0; r < kPerThread; ++r) {
        const int idx = threadIdx.x + r * kStateThreads;
        const int row = idx / 64, col = idx % 64;
        const int64_t n = n0 + row;
        const bool inside = n < n_end && c0 + col < d;
        const float scale = (inside && row_scale) ? row_scale[n] : 1.0f;
        dst[row][col] = Elem<T>::from_float(inside ? transform<kF>(Elem<T>::to_float(scalar[r])) * scale : 0.0f);
      }
    }
  }
};

template <typename T, bool kVec, Transform kXf>
__global__ void __launch_bounds__(kStateThreads) state_kernel(Problem p, StateArgs a, int tiles_j, int64_t chunk) {
  __shared__ __align__(128) StateSmem<T> sm;
  __shared__ __align__(128) float cs[kStateBM][kStateBN + 4];

  const int d = static_cast<int>(p.head_dim);
  const int ti = blockIdx.x / tiles_j, tj = blockIdx.x % tiles_j;
  const int i0 = ti * kStateBM, j0 = tj * kStateBN;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int split = blockIdx.z;
  const int64_t n_begin = split * chunk, n_end = min(p.tokens, n_begin + chunk);

  const T* x = static_cast<const T*>(a.x.data) + b * p.tokens * a.x.row_stride + h * d;
  const T* y = static_cast<const T*>(a.y.data) + b * p.tokens * a.y.row_stride + h * d;
  const float* y_scale = a.y_row_scale ? a.y_row_scale + bh * p.tokens : nullptr;
  const float* col_weight = a.col_weight ? a.col_weight + bh * p.tokens : nullptr;
  const bool want_colsum = a.colsum != nullptr && tj == 0;

  const int warp = threadIdx.x / 32, wi = warp / 2, wj = warp % 2;  // 2 x 2 warps of 32 x 32
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int fi = 0; fi < 2; ++fi)
#pragma unroll
    for (int fj = 0; fj < 2; ++fj) wmma::fill_fragment(acc[fi][fj], 0.0f);

  TileLoader32x64<T, kVec> xl, yl;
  float colacc = 0;
  if (n_begin < n_end) {
    xl.load(x, a.x.row_stride, n_begin, n_end, i0, d);
    yl.load(y, a.y.row_stride, n_begin, n_end, j0, d);
  }
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kStateBK) {
    xl.template store<kXf>(sm.xs, n0, n_end, i0, d, nullptr);
    yl.template store<Transform::None>(sm.ys, n0, n_end, j0, d, y_scale);
    __syncthreads();
    if (n0 + kStateBK < n_end) {  // the next tile's loads overlap this tile's products
      xl.load(x, a.x.row_stride, n0 + kStateBK, n_end, i0, d);
      yl.load(y, a.y.row_stride, n0 + kStateBK, n_end, j0, d);
    }
    if (want_colsum && threadIdx.x < kStateBM) {
      for (int r = 0; r < kStateBK && n0 + r < n_end; ++r)
        colacc += (col_weight ? col_weight[n0 + r] : 1.0f) * Elem<T>::to_float(sm.xs[r][threadIdx.x]);
    }
#pragma unroll
    for (int k = 0; k < kStateBK; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::col_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
#pragma unroll
      for (int f = 0; f < 2; ++f) {
        wmma::load_matrix_sync(fa[f], &sm.xs[k][wi * 32 + f * 16], kStateBM + kStatePad);
        wmma::load_matrix_sync(fb[f], &sm.ys[k][wj * 32 + f * 16], kStateBN + kStatePad);
      }
#pragma unroll
      for (int fi = 0; fi < 2; ++fi)
#pragma unroll
        for (int fj = 0; fj < 2; ++fj) wmma::mma_sync(acc[fi][fj], fa[fi], fb[fj], acc[fi][fj]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int fi = 0; fi < 2; ++fi)
#pragma unroll
    for (int fj = 0; fj < 2; ++fj)
      wmma::store_matrix_sync(&cs[wi * 32 + fi * 16][wj * 32 + fj * 16], acc[fi][fj], kStateBN + 4,
                              wmma::mem_row_major);
  __syncthreads();
  float* state = a.state + (static_cast<int64_t>(split) * p.batch * p.heads + bh) * d * d;
  for (int idx = threadIdx.x; idx < kStateBM * kStateBN; idx += kStateThreads) {
    const int r = idx / kStateBN, c = idx % kStateBN;
    if (i0 + r < d && j0 + c < d) state[static_cast<int64_t>(i0 + r) * d + j0 + c] = a.alpha * cs[r][c];
  }
  if (want_colsum && threadIdx.x < kStateBM && i0 + static_cast<int>(threadIdx.x) < d)
    a.colsum[(static_cast<int64_t>(split) * p.batch * p.heads + bh) * d + i0 + threadIdx.x] = a.col_alpha * colacc;
}

// ---------------------------------------------------------------------------------------------------------
// The product with the state: out_n = epilogue(f(A_n) S), a tile of 128 tokens x 64 channels per block,
// the state's rows in steps of 32
// ---------------------------------------------------------------------------------------------------------
constexpr int kApplyBM = 128, kApplyBN = 64, kApplyBK = 32, kApplyThreads = 256;
constexpr int kApplyPad = 8;

template <typename T>
union ApplySmem {
  struct {
    T as[kApplyBM][kApplyBK + kApplyPad];   // A tile, tokens x k, row-major
    T bhi[kApplyBK][kApplyBN + kApplyPad];  // S tile rounded to T
    T blo[kApplyBK][kApplyBN + kApplyPad];  // S - hi, rounded to T
    float zm[kApplyBK];                     // the normaliser's vector for this k range
  } main;
  float cs[kApplyBM][kApplyBN + 4];  // the accumulators, for the epilogue
};

template <typename T, bool kVec, Transform kAf>
__global__ void __launch_bounds__(kApplyThreads) apply_kernel(Problem p, ApplyArgs a, int tiles_j) {
  __shared__ __align__(128) ApplySmem<T> sm;
  __shared__ float row_r[kApplyBM];

  const int d = static_cast<int>(p.head_dim);
  const int tj = blockIdx.x % tiles_j;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x / tiles_j) * kApplyBM;
  const int j0 = tj * kApplyBN;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;

  const T* A = static_cast<const T*>(a.a.data) + b * p.tokens * a.a.row_stride + h * d;
  const float* S = a.s + bh * d * d;
  const float* zm = a.z_m ? a.z_m + bh * d : nullptr;

  const int warp = threadIdx.x / 32, wm = warp / 2, wn = warp % 2;  // 4 x 2 warps of 32 x 32
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int fi = 0; fi < 2; ++fi)
#pragma unroll
    for (int fj = 0; fj < 2; ++fj) wmma::fill_fragment(acc[fi][fj], 0.0f);

  // The normaliser's dot product: thread t sums half a row (16 of the 32 k) of the A tile.
  const int z_row = threadIdx.x / 2, z_half = threadIdx.x % 2;
  float zdot = 0;

  for (int k0 = 0; k0 < d; k0 += kApplyBK) {
    // A: 128 x 32, two vectors (or 16 elements) per thread, transformed.
    if constexpr (kVec) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int idx = threadIdx.x + r * kApplyThreads;
        const int row = idx / 4, col = (idx % 4) * 8;
        const int64_t n = n0 + row;
        Vec8<T> in, o;
        const bool inside = n < p.tokens && k0 + col < d;
        in.raw =
            inside ? __ldg(reinterpret_cast<const uint4*>(A + n * a.a.row_stride + k0 + col)) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int e = 0; e < 8; ++e)
          o.v[e] = Elem<T>::from_float(inside ? transform<kAf>(Elem<T>::to_float(in.v[e])) : 0.0f);
        *reinterpret_cast<uint4*>(&sm.main.as[row][col]) = o.raw;
      }
    } else {
      for (int idx = threadIdx.x; idx < kApplyBM * kApplyBK; idx += kApplyThreads) {
        const int row = idx / kApplyBK, col = idx % kApplyBK;
        const int64_t n = n0 + row;
        const bool inside = n < p.tokens && k0 + col < d;
        sm.main.as[row][col] =
            Elem<T>::from_float(inside ? transform<kAf>(Elem<T>::to_float(A[n * a.a.row_stride + k0 + col])) : 0.0f);
      }
    }
    // S: 32 x 64 float32, split into a high and a low part in T.
    for (int idx = threadIdx.x; idx < kApplyBK * kApplyBN; idx += kApplyThreads) {
      int k, j;
      if (a.s_transposed) {  // S^T(k, j) = S[j][k]: consecutive threads walk k, contiguous in memory
        k = idx % kApplyBK;
        j = idx / kApplyBK;
      } else {
        j = idx % kApplyBN;
        k = idx / kApplyBN;
      }
      float s = 0;
      if (k0 + k < d && j0 + j < d)
        s = a.s_transposed ? S[static_cast<int64_t>(j0 + j) * d + k0 + k]
                           : S[static_cast<int64_t>(k0 + k) * d + j0 + j];
      const T hi = Elem<T>::from_float(s);
      sm.main.bhi[k][j] = hi;
      sm.main.blo[k][j] = Elem<T>::from_float(s - Elem<T>::to_float(hi));
    }
    if (zm && threadIdx.x < kApplyBK) sm.main.zm[threadIdx.x] = k0 + threadIdx.x < d ? zm[k0 + threadIdx.x] : 0.0f;
    __syncthreads();

    if (zm) {
#pragma unroll
      for (int c = 0; c < 16; ++c)
        zdot += Elem<T>::to_float(sm.main.as[z_row][z_half * 16 + c]) * sm.main.zm[z_half * 16 + c];
    }
#pragma unroll
    for (int k = 0; k < kApplyBK; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fhi[2], flo[2];
#pragma unroll
      for (int f = 0; f < 2; ++f) {
        wmma::load_matrix_sync(fa[f], &sm.main.as[wm * 32 + f * 16][k], kApplyBK + kApplyPad);
        wmma::load_matrix_sync(fhi[f], &sm.main.bhi[k][wn * 32 + f * 16], kApplyBN + kApplyPad);
        wmma::load_matrix_sync(flo[f], &sm.main.blo[k][wn * 32 + f * 16], kApplyBN + kApplyPad);
      }
#pragma unroll
      for (int fi = 0; fi < 2; ++fi)
#pragma unroll
        for (int fj = 0; fj < 2; ++fj) {
          wmma::mma_sync(acc[fi][fj], fa[fi], flo[fj], acc[fi][fj]);
          wmma::mma_sync(acc[fi][fj], fa[fi], fhi[fj], acc[fi][fj]);
        }
    }
    __syncthreads();
  }

  // Per-row scale: the normaliser computed above, or the given one.
  if (zm) {
    zdot += __shfl_xor_sync(0xffffffffu, zdot, 1);
    if (z_half == 0) {
      const float r = 1.0f / (zdot + kNormEps);
      row_r[z_row] = r;
      if (a.z_out && tj == 0 && n0 + z_row < p.tokens) a.z_out[bh * p.tokens + n0 + z_row] = r;
    }
  } else if (threadIdx.x < kApplyBM) {
    const int64_t n = n0 + threadIdx.x;
    row_r[threadIdx.x] = (a.row_scale && n < p.tokens) ? a.row_scale[bh * p.tokens + n] : 1.0f;
  }
#pragma unroll
  for (int fi = 0; fi < 2; ++fi)
#pragma unroll
    for (int fj = 0; fj < 2; ++fj)
      wmma::store_matrix_sync(&sm.cs[wm * 32 + fi * 16][wn * 32 + fj * 16], acc[fi][fj], kApplyBN + 4,
                              wmma::mem_row_major);
  __syncthreads();

  T* out = static_cast<T*>(a.out) + b * p.tokens * a.out_row_stride + h * d;
  const T* mask = a.mask.data ? static_cast<const T*>(a.mask.data) + b * p.tokens * a.mask.row_stride + h * d : nullptr;
  const float* row_coef = a.row_coef ? a.row_coef + bh * p.tokens : nullptr;
  const float* col_vec = a.col_vec ? a.col_vec + bh * d : nullptr;
  const float* col_add = a.col_add ? a.col_add + bh * d : nullptr;
  auto epilogue = [&](int row, int col, float acc_v, int64_t n, int j) {
    float v = acc_v * a.alpha * row_r[row];
    if (row_coef) v -= row_coef[n] * col_vec[j];
    if (col_add) v += col_add[j];
    return v;
  };
  constexpr int kLanes = kVec ? 8 : 1;
  for (int idx = threadIdx.x; idx < kApplyBM * kApplyBN / kLanes; idx += kApplyThreads) {
    const int row = idx / (kApplyBN / kLanes), col = (idx % (kApplyBN / kLanes)) * kLanes;
    const int64_t n = n0 + row;
    const int j = j0 + col;
    if (n >= p.tokens || j >= d) continue;
    if constexpr (kVec) {
      Vec8<T> o, m, prev;
      if (mask) m.raw = __ldg(reinterpret_cast<const uint4*>(mask + n * a.mask.row_stride + j));
      if (a.accumulate) prev.raw = *reinterpret_cast<const uint4*>(out + n * a.out_row_stride + j);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        float v = epilogue(row, col + e, sm.cs[row][col + e], n, j + e);
        if (mask && !(Elem<T>::to_float(m.v[e]) > 0.0f)) v = 0.0f;
        if (a.accumulate) v += Elem<T>::to_float(prev.v[e]);
        o.v[e] = Elem<T>::from_float(v);
      }
      *reinterpret_cast<uint4*>(out + n * a.out_row_stride + j) = o.raw;
    } else {
      float v = epilogue(row, col, sm.cs[row][col], n, j);
      if (mask && !(Elem<T>::to_float(mask[n * a.mask.row_stride + j]) > 0.0f)) v = 0.0f;
      if (a.accumulate) v += Elem<T>::to_float(out[n * a.out_row_stride + j]);
      out[n * a.out_row_stride + j] = Elem<T>::from_float(v);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Depthwise convolution in token layout: one thread per token and 8 channels (or 1 when not vectorizable)
// ---------------------------------------------------------------------------------------------------------
template <typename T, int kLanes>
__global__ void dwc_kernel(Problem p, DwcArgs a) {
  const int64_t D = p.heads * p.head_dim, groups = D / kLanes;
  const int64_t total = p.batch * p.tokens * groups;
  const int K = a.kernel, pad = a.kernel / 2;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c0 = (idx % groups) * kLanes, token = idx / groups;
    const int64_t b = token / p.tokens, n = token % p.tokens;
    const int64_t y = n / a.grid_w, x = n % a.grid_w;
    const int64_t j0 = c0 % p.head_dim;  // kLanes divides d, so the lanes share a head
    float acc[kLanes];
#pragma unroll
    for (int l = 0; l < kLanes; ++l) acc[l] = a.bias ? a.bias[j0 + l] : 0.0f;
    const T* v = static_cast<const T*>(a.v.data) + b * p.tokens * a.v.row_stride + c0;
    for (int dy = 0; dy < K; ++dy) {
      const int64_t yy = y + dy - pad;
      if (yy < 0 || yy >= a.grid_h) continue;
      for (int dx = 0; dx < K; ++dx) {
        const int64_t xx = x + dx - pad;
        if (xx < 0 || xx >= a.grid_w) continue;
        const T* src = v + (yy * a.grid_w + xx) * a.v.row_stride;
        const float* w = a.weight + j0 * K * K + dy * K + dx;
        if constexpr (kLanes == 8) {
          Vec8<T> in;
          in.raw = __ldg(reinterpret_cast<const uint4*>(src));
#pragma unroll
          for (int l = 0; l < 8; ++l) acc[l] += __ldg(w + l * K * K) * Elem<T>::to_float(in.v[l]);
        } else {
          acc[0] += __ldg(w) * Elem<T>::to_float(src[0]);
        }
      }
    }
    T* out = static_cast<T*>(a.out) + token * a.out_row_stride + c0;
    if constexpr (kLanes == 8) {
      Vec8<T> o;
      if (a.accumulate) o.raw = *reinterpret_cast<const uint4*>(out);
#pragma unroll
      for (int l = 0; l < 8; ++l)
        o.v[l] = Elem<T>::from_float(acc[l] + (a.accumulate ? Elem<T>::to_float(o.v[l]) : 0.0f));
      *reinterpret_cast<uint4*>(out) = o.raw;
    } else {
      out[0] = Elem<T>::from_float(acc[0] + (a.accumulate ? Elem<T>::to_float(out[0]) : 0.0f));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Launchers
// ---------------------------------------------------------------------------------------------------------
void check_problem(const Problem& p) {
  if (p.batch <= 0 || p.tokens <= 0 || p.heads <= 0 || p.head_dim <= 0)
    throw std::runtime_error("linear attention (CUDA): empty problem");
  if (p.batch * p.heads > 65535) throw std::runtime_error("linear attention (CUDA): batch x heads above 65535");
}

int64_t state_chunk(const Problem& p, int splits) {
  const int64_t per = (p.tokens + splits - 1) / splits;
  return (per + kStateBK - 1) / kStateBK * kStateBK;
}

template <typename T, bool kVec>
void launch_state(const Problem& p, const StateArgs& a, cudaStream_t stream) {
  const int tiles = static_cast<int>((p.head_dim + kStateBM - 1) / kStateBM);
  const int splits = state_splits(p);
  const dim3 grid(static_cast<unsigned>(tiles * tiles), static_cast<unsigned>(p.batch * p.heads),
                  static_cast<unsigned>(splits));
  const int64_t chunk = state_chunk(p, splits);
  if (a.x_transform == Transform::Phi)
    state_kernel<T, kVec, Transform::Phi><<<grid, kStateThreads, 0, stream>>>(p, a, tiles, chunk);
  else
    state_kernel<T, kVec, Transform::None><<<grid, kStateThreads, 0, stream>>>(p, a, tiles, chunk);
  check(cudaGetLastError(), "state kernel launch");
}

template <typename T, bool kVec>
void launch_apply(const Problem& p, const ApplyArgs& a, cudaStream_t stream) {
  const int tiles_j = static_cast<int>((p.head_dim + kApplyBN - 1) / kApplyBN);
  const int64_t tiles_n = (p.tokens + kApplyBM - 1) / kApplyBM;
  if (tiles_n * tiles_j > 0x7fffffffLL) throw std::runtime_error("linear attention (CUDA): too many tokens");
  const dim3 grid(static_cast<unsigned>(tiles_n * tiles_j), static_cast<unsigned>(p.batch * p.heads));
  if (a.a_transform == Transform::Phi)
    apply_kernel<T, kVec, Transform::Phi><<<grid, kApplyThreads, 0, stream>>>(p, a, tiles_j);
  else
    apply_kernel<T, kVec, Transform::None><<<grid, kApplyThreads, 0, stream>>>(p, a, tiles_j);
  check(cudaGetLastError(), "apply kernel launch");
}

template <typename T>
void launch_dwc(const Problem& p, const DwcArgs& a, cudaStream_t stream) {
  const bool vec = vectorizable(a.v, p.head_dim) && a.out_row_stride % 8 == 0 && aligned16(a.out);
  const int64_t groups = p.heads * p.head_dim / (vec ? 8 : 1);
  const int64_t total = p.batch * p.tokens * groups;
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t(sm_count()) * 32);
  if (vec)
    dwc_kernel<T, 8><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, a);
  else
    dwc_kernel<T, 1><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, a);
  check(cudaGetLastError(), "depthwise convolution launch");
}

}  // namespace

int state_splits(const Problem& p) {
  // Enough blocks to fill the GPU twice over, but at least 256 tokens per split.
  const int64_t tiles = (p.head_dim + kStateBM - 1) / kStateBM;
  const int64_t blocks = tiles * tiles * p.batch * p.heads;
  const int64_t wanted = (2 * int64_t(sm_count()) + blocks - 1) / blocks;
  const int64_t most = std::max<int64_t>(1, p.tokens / 256);
  return static_cast<int>(std::clamp<int64_t>(wanted, 1, std::min<int64_t>(most, 64)));
}

void linear_attention_state(DType dtype, const Problem& p, const StateArgs& a, void* stream) {
  check_problem(p);
  const bool vec = vectorizable(a.x, p.head_dim) && vectorizable(a.y, p.head_dim);
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::BF16:
      return vec ? launch_state<__nv_bfloat16, true>(p, a, s) : launch_state<__nv_bfloat16, false>(p, a, s);
    case DType::F16:
      return vec ? launch_state<__half, true>(p, a, s) : launch_state<__half, false>(p, a, s);
    case DType::F32:
      break;
  }
  throw std::runtime_error("linear attention (CUDA): bf16 or fp16 inputs expected");
}

void linear_attention_apply(DType dtype, const Problem& p, const ApplyArgs& a, void* stream) {
  check_problem(p);
  if ((a.row_coef == nullptr) != (a.col_vec == nullptr))
    throw std::runtime_error("linear attention (CUDA): row_coef and col_vec go together");
  const HeadMajor out{a.out, a.out_row_stride};
  const bool vec = vectorizable(a.a, p.head_dim) && vectorizable(a.mask, p.head_dim) && vectorizable(out, p.head_dim);
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::BF16:
      return vec ? launch_apply<__nv_bfloat16, true>(p, a, s) : launch_apply<__nv_bfloat16, false>(p, a, s);
    case DType::F16:
      return vec ? launch_apply<__half, true>(p, a, s) : launch_apply<__half, false>(p, a, s);
    case DType::F32:
      break;
  }
  throw std::runtime_error("linear attention (CUDA): bf16 or fp16 inputs expected");
}

void depthwise_conv_tokens(DType dtype, const Problem& p, const DwcArgs& a, void* stream) {
  check_problem(p);
  if (a.grid_h * a.grid_w != p.tokens || a.kernel <= 0 || a.kernel % 2 == 0)
    throw std::runtime_error("linear attention (CUDA): bad depthwise convolution arguments");
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::BF16:
      return launch_dwc<__nv_bfloat16>(p, a, s);
    case DType::F16:
      return launch_dwc<__half>(p, a, s);
    case DType::F32:
      break;
  }
  throw std::runtime_error("linear attention (CUDA): bf16 or fp16 inputs expected");
}

}  // namespace lit::kernels::cuda
