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
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda_elem.cuh"
#include "kernels/linear_attention_cuda.h"

namespace lit::kernels::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr float kPhiEps = 1e-6f;   // phi(x) = relu(x) + 1e-6
constexpr float kNormEps = 1e-6f;  // z = 1 / (q . mean(k) + 1e-6)

template <Transform kF>
__device__ __forceinline__ float transform(float v) {
  if constexpr (kF == Transform::Phi) return fmaxf(v, 0.0f) + kPhiEps;
  return v;
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("linear attention (CUDA) ") + what + ": " + cudaGetErrorString(err));
}

// Multiprocessors of the current device, asked once per device (the launchers size grids on every call).
int sm_count() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cached[kMaxDevices] = {};
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  if (device < kMaxDevices && cached[device].load(std::memory_order_relaxed) > 0)
    return cached[device].load(std::memory_order_relaxed);
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  if (device < kMaxDevices) cached[device].store(sms, std::memory_order_relaxed);
  return sms;
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Whether a view can be read in 16-byte vectors: d, the row stride and the base all multiples of 8 elements.
bool vectorizable(const HeadMajor& v, int64_t d) {
  return v.data == nullptr || (d % 8 == 0 && v.row_stride % 8 == 0 && aligned16(v.data));
}

// 16-byte asynchronous copy global -> shared (sm_80+); a chunk outside the problem is zero-filled (no read).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// phi applied in place to a rows x cols tile in shared memory (row pitch `pitch` elements, cols a multiple
// of 8), 16 bytes per thread and step: each element once, instead of once per warp that reads it.
template <typename T, int kThreads>
__device__ __forceinline__ void phi_in_place(T* tile, int rows, int cols, int pitch) {
  for (int c = threadIdx.x; c < rows * (cols / 8); c += kThreads) {
    T* at = tile + (c / (cols / 8)) * pitch + (c % (cols / 8)) * 8;
    Vec8<T> v;
    v.raw = *reinterpret_cast<const uint4*>(at);
#pragma unroll
    for (int e = 0; e < 8; ++e) v.v[e] = Elem<T>::from_float(transform<Transform::Phi>(Elem<T>::to_float(v.v[e])));
    *reinterpret_cast<uint4*>(at) = v.raw;
  }
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
// The product kernels' shared epilogue (both versions)
// ---------------------------------------------------------------------------------------------------------
// Each block's per-row scale: 1 / (z-dot + eps) from the two half-row dot products of a thread pair (LiT's
// normaliser, also written to z_out by the first column tile), or the given row_scale, or 1.
template <int kBM>
__device__ __forceinline__ void product_row_scales(const Problem& p, const ApplyArgs& a, bool have_zm, float zdot,
                                                   int64_t n0, int64_t bh, int tj, float* row_r) {
  if (have_zm) {
    const int z_row = threadIdx.x / 2;
    zdot += __shfl_xor_sync(0xffffffffu, zdot, 1);
    if (threadIdx.x % 2 == 0) {
      const float r = 1.0f / (zdot + kNormEps);
      row_r[z_row] = r;
      if (a.z_out && tj == 0 && n0 + z_row < p.tokens) a.z_out[bh * p.tokens + n0 + z_row] = r;
    }
  } else if (threadIdx.x < kBM) {
    const int64_t n = n0 + threadIdx.x;
    row_r[threadIdx.x] = (a.row_scale && n < p.tokens) ? a.row_scale[bh * p.tokens + n] : 1.0f;
  }
}

// Writes a kBM x kBN tile of accumulators (cs, row pitch `pitch` floats) through the epilogue of
// linear_attention_cuda.h: scale, row x column term, column term, mask, accumulate, one rounding.
template <typename T, bool kVec, int kBM, int kBN, int kThreads>
__device__ __forceinline__ void write_product_tile(const Problem& p, const ApplyArgs& a, const float* cs, int pitch,
                                                   const float* row_r, int64_t n0, int j0, int64_t bh) {
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int d = static_cast<int>(p.head_dim);
  T* out = static_cast<T*>(a.out) + b * p.tokens * a.out_row_stride + h * d;
  const T* mask = a.mask.data ? static_cast<const T*>(a.mask.data) + b * p.tokens * a.mask.row_stride + h * d : nullptr;
  const float* row_coef = a.row_coef ? a.row_coef + bh * p.tokens : nullptr;
  const float* col_vec = a.col_vec ? a.col_vec + bh * d : nullptr;
  const float* col_add = a.col_add ? a.col_add + bh * d : nullptr;
  auto value = [&](int row, int col, int64_t n, int j) {
    float v = cs[row * pitch + col] * a.alpha * row_r[row];
    if (row_coef) v -= row_coef[n] * col_vec[j];
    if (col_add) v += col_add[j];
    return v;
  };
  constexpr int kLanes = kVec ? 8 : 1;
  for (int idx = threadIdx.x; idx < kBM * kBN / kLanes; idx += kThreads) {
    const int row = idx / (kBN / kLanes), col = (idx % (kBN / kLanes)) * kLanes;
    const int64_t n = n0 + row;
    const int j = j0 + col;
    if (n >= p.tokens || j >= d) continue;
    if constexpr (kVec) {
      Vec8<T> o, m, prev;
      if (mask) m.raw = __ldg(reinterpret_cast<const uint4*>(mask + n * a.mask.row_stride + j));
      if (a.accumulate) prev.raw = *reinterpret_cast<const uint4*>(out + n * a.out_row_stride + j);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        float v = value(row, col + e, n, j + e);
        if (mask && !(Elem<T>::to_float(m.v[e]) > 0.0f)) v = 0.0f;
        if (a.accumulate) v += Elem<T>::to_float(prev.v[e]);
        o.v[e] = Elem<T>::from_float(v);
      }
      *reinterpret_cast<uint4*>(out + n * a.out_row_stride + j) = o.raw;
    } else {
      float v = value(row, col, n, j);
      if (mask && !(Elem<T>::to_float(mask[n * a.mask.row_stride + j]) > 0.0f)) v = 0.0f;
      if (a.accumulate) v += Elem<T>::to_float(out[n * a.out_row_stride + j]);
      out[n * a.out_row_stride + j] = Elem<T>::from_float(v);
    }
  }
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

  product_row_scales<kApplyBM>(p, a, zm != nullptr, zdot, n0, bh, tj, row_r);
#pragma unroll
  for (int fi = 0; fi < 2; ++fi)
#pragma unroll
    for (int fj = 0; fj < 2; ++fj)
      wmma::store_matrix_sync(&sm.cs[wm * 32 + fi * 16][wn * 32 + fj * 16], acc[fi][fj], kApplyBN + 4,
                              wmma::mem_row_major);
  __syncthreads();

  write_product_tile<T, kVec, kApplyBM, kApplyBN, kApplyThreads>(p, a, &sm.cs[0][0], kApplyBN + 4, row_r, n0, j0, bh);
}

// ---------------------------------------------------------------------------------------------------------
// Version 2 of the state (the forward's reduction): 96 x 96 tiles (d = 288 is 3 x 96, no waste), 6 warps of
// 48 x 32, tokens in steps of 32 copied asynchronously 3 stages deep; phi is applied to each landed X tile
// in shared memory. Rows past the last token are zero-filled in both X and Y: phi(0) != 0 in X, but
// the row's Y is 0, so it adds nothing to the state (the column sum checks the bound itself).
// ---------------------------------------------------------------------------------------------------------
constexpr int kS2Tile = 96, kS2BK = 32, kS2Stages = 3, kS2Threads = 192, kS2Pad = 8;

template <typename T>
struct State2Stage {
  T xs[kS2BK][kS2Tile + kS2Pad];
  T ys[kS2BK][kS2Tile + kS2Pad];
};
template <typename T>
constexpr size_t state2_smem_bytes() {
  const size_t stages = kS2Stages * sizeof(State2Stage<T>);
  const size_t staging = sizeof(float) * kS2Tile * (kS2Tile + 4);
  return stages > staging ? stages : staging;
}

template <typename T>
__global__ void __launch_bounds__(kS2Threads) state2_kernel(Problem p, StateArgs a, int tiles_j, int64_t chunk) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  auto* stages = reinterpret_cast<State2Stage<T>*>(smem_raw);
  auto* cs = reinterpret_cast<float(*)[kS2Tile + 4]>(smem_raw);

  const int d = static_cast<int>(p.head_dim);
  const int ti = blockIdx.x / tiles_j, tj = blockIdx.x % tiles_j;
  const int i0 = ti * kS2Tile, j0 = tj * kS2Tile;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int split = blockIdx.z;
  const int64_t n_begin = split * chunk, n_end = min(p.tokens, n_begin + chunk);
  const T* x = static_cast<const T*>(a.x.data) + b * p.tokens * a.x.row_stride + h * d;
  const T* y = static_cast<const T*>(a.y.data) + b * p.tokens * a.y.row_stride + h * d;
  const bool want_colsum = a.colsum != nullptr && tj == 0;

  auto load = [&](int slot, int64_t n0) {
    for (int c = threadIdx.x; c < kS2BK * (kS2Tile / 8); c += kS2Threads) {
      const int row = c / (kS2Tile / 8), col = (c % (kS2Tile / 8)) * 8;
      const int64_t n = n0 + row;
      const bool xv = n < n_end && i0 + col < d, yv = n < n_end && j0 + col < d;
      cp_async16(&stages[slot].xs[row][col], xv ? x + n * a.x.row_stride + i0 + col : x, xv);
      cp_async16(&stages[slot].ys[row][col], yv ? y + n * a.y.row_stride + j0 + col : y, yv);
    }
  };

  const int warp = threadIdx.x / 32, wi = warp / 3, wj = warp % 3;  // 2 x 3 warps of 48 x 32
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[3][2];
#pragma unroll
  for (int fi = 0; fi < 3; ++fi)
#pragma unroll
    for (int fj = 0; fj < 2; ++fj) wmma::fill_fragment(acc[fi][fj], 0.0f);

  const int64_t steps = n_end > n_begin ? (n_end - n_begin + kS2BK - 1) / kS2BK : 0;
#pragma unroll
  for (int s = 0; s < kS2Stages - 1; ++s) {
    if (s < steps) load(s, n_begin + s * kS2BK);
    cp_async_commit();
  }
  float colacc = 0;
  for (int64_t step = 0; step < steps; ++step) {
    cp_async_wait<kS2Stages - 2>();
    __syncthreads();
    State2Stage<T>& st = stages[step % kS2Stages];
    phi_in_place<T, kS2Threads>(&st.xs[0][0], kS2BK, kS2Tile, kS2Tile + kS2Pad);  // once per element
    __syncthreads();
    const int64_t next = step + kS2Stages - 1;
    if (next < steps) load(static_cast<int>(next % kS2Stages), n_begin + next * kS2BK);
    cp_async_commit();

    const int64_t n0 = n_begin + step * kS2BK;
    if (want_colsum) {  // every thread: a column, half the rows, independent partial sums
      const int col = threadIdx.x % kS2Tile, r0 = (threadIdx.x / kS2Tile) * (kS2BK / 2);
      float part[4] = {0, 0, 0, 0};
#pragma unroll
      for (int r = 0; r < kS2BK / 2; ++r)
        if (n0 + r0 + r < n_end) part[r % 4] += Elem<T>::to_float(st.xs[r0 + r][col]);
      colacc += (part[0] + part[1]) + (part[2] + part[3]);
    }
#pragma unroll
    for (int k = 0; k < kS2BK; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::col_major> fa[3];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
#pragma unroll
      for (int f = 0; f < 3; ++f) {
        wmma::load_matrix_sync(fa[f], &st.xs[k][wi * 48 + f * 16], kS2Tile + kS2Pad);
      }
#pragma unroll
      for (int f = 0; f < 2; ++f) wmma::load_matrix_sync(fb[f], &st.ys[k][wj * 32 + f * 16], kS2Tile + kS2Pad);
#pragma unroll
      for (int fi = 0; fi < 3; ++fi)
#pragma unroll
        for (int fj = 0; fj < 2; ++fj) wmma::mma_sync(acc[fi][fj], fa[fi], fb[fj], acc[fi][fj]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the stages become the epilogue's staging area

#pragma unroll
  for (int fi = 0; fi < 3; ++fi)
#pragma unroll
    for (int fj = 0; fj < 2; ++fj)
      wmma::store_matrix_sync(&cs[wi * 48 + fi * 16][wj * 32 + fj * 16], acc[fi][fj], kS2Tile + 4, wmma::mem_row_major);
  __syncthreads();
  const int64_t base = (static_cast<int64_t>(split) * p.batch * p.heads + bh) * d * d;
  T* hi = static_cast<T*>(a.state_hi);
  T* lo = static_cast<T*>(a.state_lo);
  for (int idx = threadIdx.x; idx < kS2Tile * kS2Tile; idx += kS2Threads) {
    const int r = idx / kS2Tile, c = idx % kS2Tile;
    if (i0 + r >= d || j0 + c >= d) continue;
    const int64_t at = base + static_cast<int64_t>(i0 + r) * d + j0 + c;
    const float v = a.alpha * cs[r][c];
    if (a.state) a.state[at] = v;
    if (hi) {
      const T vh = Elem<T>::from_float(v);
      hi[at] = vh;
      if (lo) lo[at] = Elem<T>::from_float(v - Elem<T>::to_float(vh));
    }
  }
  if (want_colsum) {  // the two halves of each column meet in shared memory
    __syncthreads();
    float* halves = &cs[0][0];
    halves[threadIdx.x] = colacc;
    __syncthreads();
    if (threadIdx.x < kS2Tile && i0 + static_cast<int>(threadIdx.x) < d)
      a.colsum[(static_cast<int64_t>(split) * p.batch * p.heads + bh) * d + i0 + threadIdx.x] =
          a.col_alpha * (halves[threadIdx.x] + halves[threadIdx.x + kS2Tile]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Version 2 of the product: 128 tokens x 96 channels per block, 8 warps of 32 x 48, the state's rows in
// steps of 32, A and the bf16/fp16 state pair copied asynchronously 3 stages deep; phi on each landed A tile.
// A's zero-filled rows (past the last token) give rows that the epilogue never writes; its zero-filled
// columns (k >= d) meet zero-filled state rows.
// ---------------------------------------------------------------------------------------------------------
constexpr int kA2BM = 128, kA2BN = 96, kA2BK = 32, kA2Stages = 3, kA2Threads = 256, kA2Pad = 8;

template <typename T>
struct Apply2Stage {
  T as[kA2BM][kA2BK + kA2Pad];
  T bhi[kA2BK][kA2BN + kA2Pad];
  T blo[kA2BK][kA2BN + kA2Pad];
  float zm[kA2BK];  // the normaliser's vector for these k, zero past d
};
template <typename T>
constexpr size_t apply2_smem_bytes() {
  const size_t stages = kA2Stages * sizeof(Apply2Stage<T>);
  const size_t staging = sizeof(float) * kA2BM * (kA2BN + 4);
  return stages > staging ? stages : staging;
}

template <typename T, Transform kAf, bool kLow>
__global__ void __launch_bounds__(kA2Threads, 2) apply2_kernel(Problem p, ApplyArgs a, int tiles_j) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  auto* stages = reinterpret_cast<Apply2Stage<T>*>(smem_raw);
  auto* cs = reinterpret_cast<float(*)[kA2BN + 4]>(smem_raw);
  __shared__ float row_r[kA2BM];

  const int d = static_cast<int>(p.head_dim);
  const int tj = blockIdx.x % tiles_j;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x / tiles_j) * kA2BM;
  const int j0 = tj * kA2BN;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const T* A = static_cast<const T*>(a.a.data) + b * p.tokens * a.a.row_stride + h * d;
  const T* Shi = static_cast<const T*>(a.s_hi) + bh * d * d;
  const T* Slo = kLow ? static_cast<const T*>(a.s_lo) + bh * d * d : nullptr;
  const float* zm = a.z_m ? a.z_m + bh * d : nullptr;

  auto load = [&](int slot, int k0) {
    for (int c = threadIdx.x; c < kA2BM * (kA2BK / 8); c += kA2Threads) {
      const int row = c / (kA2BK / 8), col = (c % (kA2BK / 8)) * 8;
      const int64_t n = n0 + row;
      const bool v = n < p.tokens && k0 + col < d;
      cp_async16(&stages[slot].as[row][col], v ? A + n * a.a.row_stride + k0 + col : A, v);
    }
    for (int c = threadIdx.x; c < kA2BK * (kA2BN / 8); c += kA2Threads) {
      const int row = c / (kA2BN / 8), col = (c % (kA2BN / 8)) * 8;
      const bool v = k0 + row < d && j0 + col < d;
      const int64_t off = static_cast<int64_t>(k0 + row) * d + j0 + col;
      cp_async16(&stages[slot].bhi[row][col], v ? Shi + off : Shi, v);
      if constexpr (kLow) cp_async16(&stages[slot].blo[row][col], v ? Slo + off : Slo, v);
    }
    if (zm && threadIdx.x < kA2BK / 4) {
      const int k = k0 + threadIdx.x * 4;  // d is a multiple of 8 here, so 4 floats are in or out together
      cp_async16(&stages[slot].zm[threadIdx.x * 4], k < d ? zm + k : zm, k < d);
    }
  };

  const int warp = threadIdx.x / 32, wm = warp / 2, wn = warp % 2;  // 4 x 2 warps of 32 x 48
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][3];
#pragma unroll
  for (int fi = 0; fi < 2; ++fi)
#pragma unroll
    for (int fj = 0; fj < 3; ++fj) wmma::fill_fragment(acc[fi][fj], 0.0f);

  const int z_row = threadIdx.x / 2, z_half = threadIdx.x % 2;
  float zdot = 0;
  const int steps = (d + kA2BK - 1) / kA2BK;
#pragma unroll
  for (int s = 0; s < kA2Stages - 1; ++s) {
    if (s < steps) load(s, s * kA2BK);
    cp_async_commit();
  }
  for (int step = 0; step < steps; ++step) {
    cp_async_wait<kA2Stages - 2>();
    __syncthreads();
    Apply2Stage<T>& st = stages[step % kA2Stages];
    if constexpr (kAf == Transform::Phi) {
      phi_in_place<T, kA2Threads>(&st.as[0][0], kA2BM, kA2BK, kA2BK + kA2Pad);  // once per element
      __syncthreads();
    }
    const int next = step + kA2Stages - 1;
    if (next < steps) load(next % kA2Stages, next * kA2BK);
    cp_async_commit();

    if (zm) {
      float part[4] = {0, 0, 0, 0};
#pragma unroll
      for (int c = 0; c < 16; ++c)
        part[c % 4] += Elem<T>::to_float(st.as[z_row][z_half * 16 + c]) * st.zm[z_half * 16 + c];
      zdot += (part[0] + part[1]) + (part[2] + part[3]);
    }
#pragma unroll
    for (int k = 0; k < kA2BK; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[3];
#pragma unroll
      for (int f = 0; f < 2; ++f) {
        wmma::load_matrix_sync(fa[f], &st.as[wm * 32 + f * 16][k], kA2BK + kA2Pad);
      }
      if constexpr (kLow) {
#pragma unroll
        for (int f = 0; f < 3; ++f) wmma::load_matrix_sync(fb[f], &st.blo[k][wn * 48 + f * 16], kA2BN + kA2Pad);
#pragma unroll
        for (int fi = 0; fi < 2; ++fi)
#pragma unroll
          for (int fj = 0; fj < 3; ++fj) wmma::mma_sync(acc[fi][fj], fa[fi], fb[fj], acc[fi][fj]);
      }
#pragma unroll
      for (int f = 0; f < 3; ++f) wmma::load_matrix_sync(fb[f], &st.bhi[k][wn * 48 + f * 16], kA2BN + kA2Pad);
#pragma unroll
      for (int fi = 0; fi < 2; ++fi)
#pragma unroll
        for (int fj = 0; fj < 3; ++fj) wmma::mma_sync(acc[fi][fj], fa[fi], fb[fj], acc[fi][fj]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the stages become the epilogue's staging area

  product_row_scales<kA2BM>(p, a, zm != nullptr, zdot, n0, bh, tj, row_r);
#pragma unroll
  for (int fi = 0; fi < 2; ++fi)
#pragma unroll
    for (int fj = 0; fj < 3; ++fj)
      wmma::store_matrix_sync(&cs[wm * 32 + fi * 16][wn * 48 + fj * 16], acc[fi][fj], kA2BN + 4, wmma::mem_row_major);
  __syncthreads();

  write_product_tile<T, true, kA2BM, kA2BN, kA2Threads>(p, a, &cs[0][0], kA2BN + 4, row_r, n0, j0, bh);
}

// ---------------------------------------------------------------------------------------------------------
// Depthwise convolution in token layout, v1: one thread per token and 8 channels (or 1 when not
// vectorizable), every tap read from memory (L1/L2)
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
        const float* w = a.weight + (dy * K + dx) * p.head_dim + j0;  // tap-major: 8 lanes contiguous
        if constexpr (kLanes == 8) {
          Vec8<T> in;
          in.raw = __ldg(reinterpret_cast<const uint4*>(src));
#pragma unroll
          for (int l = 0; l < 8; ++l) acc[l] += __ldg(w + l) * Elem<T>::to_float(in.v[l]);
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
// Depthwise convolution v2: one thread per 4 horizontally adjacent tokens and 8 channels, kernel size known
// at compile time. Each input vector of a row is read once and used for every output it reaches (4 + K - 1
// reads per row instead of 4 K), a row's K x 8 weights sit in registers; consecutive threads take
// consecutive channel groups, so a warp reads 512 contiguous bytes per token.
// ---------------------------------------------------------------------------------------------------------
constexpr int kDwcRun = 4;

template <typename T, int kK>
__global__ void dwc2_kernel(Problem p, DwcArgs a) {
  constexpr int kPad = kK / 2, kSpan = kDwcRun + kK - 1;
  const int64_t groups = p.heads * p.head_dim / 8, runs = (a.grid_w + kDwcRun - 1) / kDwcRun;
  const int64_t total = p.batch * a.grid_h * runs * groups;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c0 = (idx % groups) * 8;
    int64_t rest = idx / groups;
    const int64_t x0 = (rest % runs) * kDwcRun;
    rest /= runs;
    const int64_t y = rest % a.grid_h, b = rest / a.grid_h;
    const int64_t j0 = c0 % p.head_dim;
    float acc[kDwcRun][8];
#pragma unroll
    for (int o = 0; o < kDwcRun; ++o)
#pragma unroll
      for (int l = 0; l < 8; ++l) acc[o][l] = a.bias ? __ldg(a.bias + j0 + l) : 0.0f;
    const T* v = static_cast<const T*>(a.v.data) + b * p.tokens * a.v.row_stride + c0;
#pragma unroll 1
    for (int dy = 0; dy < kK; ++dy) {
      const int64_t yy = y + dy - kPad;
      if (yy < 0 || yy >= a.grid_h) continue;
      float w[kK][8];
#pragma unroll
      for (int dx = 0; dx < kK; ++dx) {
        const float4* wp = reinterpret_cast<const float4*>(a.weight + (dy * kK + dx) * p.head_dim + j0);
        const float4 w0 = __ldg(wp), w1 = __ldg(wp + 1);
        w[dx][0] = w0.x, w[dx][1] = w0.y, w[dx][2] = w0.z, w[dx][3] = w0.w;
        w[dx][4] = w1.x, w[dx][5] = w1.y, w[dx][6] = w1.z, w[dx][7] = w1.w;
      }
#pragma unroll
      for (int xi = 0; xi < kSpan; ++xi) {
        const int64_t xx = x0 - kPad + xi;
        if (xx < 0 || xx >= a.grid_w) continue;
        Vec8<T> in;
        in.raw = __ldg(reinterpret_cast<const uint4*>(v + (yy * a.grid_w + xx) * a.v.row_stride));
        float f[8];
#pragma unroll
        for (int l = 0; l < 8; ++l) f[l] = Elem<T>::to_float(in.v[l]);
#pragma unroll
        for (int o = 0; o < kDwcRun; ++o) {
          const int dx = xi - o;
          if (dx < 0 || dx >= kK) continue;
#pragma unroll
          for (int l = 0; l < 8; ++l) acc[o][l] += w[dx][l] * f[l];
        }
      }
    }
#pragma unroll
    for (int o = 0; o < kDwcRun; ++o) {
      if (x0 + o >= a.grid_w) continue;
      T* out = static_cast<T*>(a.out) + (b * p.tokens + y * a.grid_w + x0 + o) * a.out_row_stride + c0;
      Vec8<T> r;
      if (a.accumulate) r.raw = *reinterpret_cast<const uint4*>(out);
#pragma unroll
      for (int l = 0; l < 8; ++l)
        r.v[l] = Elem<T>::from_float(acc[o][l] + (a.accumulate ? Elem<T>::to_float(r.v[l]) : 0.0f));
      *reinterpret_cast<uint4*>(out) = r.raw;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Depthwise convolution v3: a block stages a tile of 8 x 16 tokens plus the k-1 halo, 64 channels deep, in
// shared memory (one read of each input per block, ~1.9x amplification for k = 5 instead of ~10x through
// the caches); a thread computes a column of 8 outputs for 8 channels with a row of weights in registers.
// ---------------------------------------------------------------------------------------------------------
constexpr int kDwc3TY = 8, kDwc3TX = 16, kDwc3Ch = 64, kDwc3Threads = (kDwc3Ch / 8) * kDwc3TX;

template <typename T, int kK>
__global__ void __launch_bounds__(kDwc3Threads) dwc3_kernel(Problem p, DwcArgs a, int tiles_x, int tiles_y) {
  constexpr int kPad = kK / 2, kSY = kDwc3TY + kK - 1, kSX = kDwc3TX + kK - 1;
  __shared__ __align__(16) T tile[kSY][kSX][kDwc3Ch];
  const int64_t D = p.heads * p.head_dim;
  const int tx = blockIdx.x % tiles_x, ty = (blockIdx.x / tiles_x) % tiles_y;
  const int64_t c0 = static_cast<int64_t>(blockIdx.x / (tiles_x * tiles_y)) * kDwc3Ch;
  const int64_t b = blockIdx.y;
  const int64_t y0 = static_cast<int64_t>(ty) * kDwc3TY, x0 = static_cast<int64_t>(tx) * kDwc3TX;
  const T* v = static_cast<const T*>(a.v.data) + b * p.tokens * a.v.row_stride;

  for (int c = threadIdx.x; c < kSY * kSX * (kDwc3Ch / 8); c += kDwc3Threads) {
    const int cv = c % (kDwc3Ch / 8), ix = (c / (kDwc3Ch / 8)) % kSX, iy = c / ((kDwc3Ch / 8) * kSX);
    const int64_t y = y0 - kPad + iy, x = x0 - kPad + ix, ch = c0 + cv * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (y >= 0 && y < a.grid_h && x >= 0 && x < a.grid_w && ch < D)
      val = __ldg(reinterpret_cast<const uint4*>(v + (y * a.grid_w + x) * a.v.row_stride + ch));
    *reinterpret_cast<uint4*>(&tile[iy][ix][cv * 8]) = val;
  }
  __syncthreads();

  const int cg = threadIdx.x % (kDwc3Ch / 8), px = threadIdx.x / (kDwc3Ch / 8);
  const int64_t ch = c0 + cg * 8;
  if (ch >= D) return;
  const int64_t j0 = ch % p.head_dim;
  float acc[kDwc3TY][8];
#pragma unroll
  for (int r = 0; r < kDwc3TY; ++r)
#pragma unroll
    for (int l = 0; l < 8; ++l) acc[r][l] = a.bias ? __ldg(a.bias + j0 + l) : 0.0f;
#pragma unroll 1
  for (int dy = 0; dy < kK; ++dy) {
    float w[kK][8];
#pragma unroll
    for (int dx = 0; dx < kK; ++dx) {
      const float4* wp = reinterpret_cast<const float4*>(a.weight + (dy * kK + dx) * p.head_dim + j0);
      const float4 w0 = __ldg(wp), w1 = __ldg(wp + 1);
      w[dx][0] = w0.x, w[dx][1] = w0.y, w[dx][2] = w0.z, w[dx][3] = w0.w;
      w[dx][4] = w1.x, w[dx][5] = w1.y, w[dx][6] = w1.z, w[dx][7] = w1.w;
    }
#pragma unroll
    for (int r = 0; r < kDwc3TY; ++r) {
#pragma unroll
      for (int dx = 0; dx < kK; ++dx) {
        Vec8<T> in;
        in.raw = *reinterpret_cast<const uint4*>(&tile[r + dy][px + dx][cg * 8]);
#pragma unroll
        for (int l = 0; l < 8; ++l) acc[r][l] += w[dx][l] * Elem<T>::to_float(in.v[l]);
      }
    }
  }
  const int64_t x = x0 + px;
  if (x >= a.grid_w) return;
#pragma unroll
  for (int r = 0; r < kDwc3TY; ++r) {
    const int64_t y = y0 + r;
    if (y >= a.grid_h) break;
    T* out = static_cast<T*>(a.out) + (b * p.tokens + y * a.grid_w + x) * a.out_row_stride + ch;
    Vec8<T> o;
    if (a.accumulate) o.raw = *reinterpret_cast<const uint4*>(out);
#pragma unroll
    for (int l = 0; l < 8; ++l)
      o.v[l] = Elem<T>::from_float(acc[r][l] + (a.accumulate ? Elem<T>::to_float(o.v[l]) : 0.0f));
    *reinterpret_cast<uint4*>(out) = o.raw;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Launchers
// ---------------------------------------------------------------------------------------------------------
// Calls fn(T{}) with T the CUDA type of a 2-byte dtype; float32 has no fused kernels.
template <typename Fn>
void with_element_type(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::BF16:
      return fn(__nv_bfloat16{});
    case DType::F16:
      return fn(__half{});
    case DType::F32:
      break;
  }
  throw std::runtime_error("linear attention (CUDA): bf16 or fp16 inputs expected");
}

void check_problem(const Problem& p) {
  if (p.batch <= 0 || p.tokens <= 0 || p.heads <= 0 || p.head_dim <= 0)
    throw std::runtime_error("linear attention (CUDA): empty problem");
  if (p.batch * p.heads > 65535) throw std::runtime_error("linear attention (CUDA): batch x heads above 65535");
}

int64_t state_chunk(const Problem& p, int splits, int step) {
  const int64_t per = (p.tokens + splits - 1) / splits;
  return (per + step - 1) / step * step;
}

bool state_v2_applies(const Problem& p, const StateArgs& a) {
  return vectorizable(a.x, p.head_dim) && vectorizable(a.y, p.head_dim) && a.x_transform == Transform::Phi &&
         a.y_row_scale == nullptr && a.col_weight == nullptr;
}

int state_version(const Problem& p, const StateArgs& a) {
  if (a.version == 1 || a.version == 2) return a.version;
  return state_v2_applies(p, a) ? 2 : 1;
}

int splits_for(const Problem& p, int tile) {
  // Enough blocks to fill the GPU twice over, but at least 256 tokens per split.
  const int64_t tiles = (p.head_dim + tile - 1) / tile;
  const int64_t blocks = tiles * tiles * p.batch * p.heads;
  const int64_t wanted = (2 * int64_t(sm_count()) + blocks - 1) / blocks;
  const int64_t most = std::max<int64_t>(1, p.tokens / 256);
  return static_cast<int>(std::clamp<int64_t>(wanted, 1, std::min<int64_t>(most, 64)));
}

// Raises a kernel's dynamic shared-memory limit once (above 48 KB needs the opt-in).
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
        "cudaFuncSetAttribute");
}

template <typename T, bool kVec>
void launch_state(const Problem& p, const StateArgs& a, cudaStream_t stream) {
  const int version = state_version(p, a);
  const int tile = version == 2 ? kS2Tile : kStateBM;
  const int tiles = static_cast<int>((p.head_dim + tile - 1) / tile);
  const int splits = splits_for(p, tile);
  if (a.state_hi && (version != 2 || splits != 1))
    throw std::runtime_error("linear attention (CUDA): the state pair is written by version 2 with one split only");
  if (!a.state && !a.state_hi) throw std::runtime_error("linear attention (CUDA): no state output");
  const dim3 grid(static_cast<unsigned>(tiles * tiles), static_cast<unsigned>(p.batch * p.heads),
                  static_cast<unsigned>(splits));
  if (version == 2) {
    if constexpr (kVec) {
      if (!state_v2_applies(p, a)) throw std::runtime_error("linear attention (CUDA): state v2 does not apply");
      static const bool once = (allow_smem(state2_kernel<T>, state2_smem_bytes<T>()), true);
      (void)once;
      state2_kernel<T>
          <<<grid, kS2Threads, state2_smem_bytes<T>(), stream>>>(p, a, tiles, state_chunk(p, splits, kS2BK));
    } else {
      throw std::runtime_error("linear attention (CUDA): state v2 needs 16-byte rows");
    }
  } else {
    const int64_t chunk = state_chunk(p, splits, kStateBK);
    if (a.x_transform == Transform::Phi)
      state_kernel<T, kVec, Transform::Phi><<<grid, kStateThreads, 0, stream>>>(p, a, tiles, chunk);
    else
      state_kernel<T, kVec, Transform::None><<<grid, kStateThreads, 0, stream>>>(p, a, tiles, chunk);
  }
  check(cudaGetLastError(), "state kernel launch");
}

template <typename T, bool kVec>
void launch_apply(const Problem& p, const ApplyArgs& a, cudaStream_t stream) {
  const bool v2 = a.s_hi != nullptr;
  const int bm = v2 ? kA2BM : kApplyBM, bn = v2 ? kA2BN : kApplyBN;
  const int tiles_j = static_cast<int>((p.head_dim + bn - 1) / bn);
  const int64_t tiles_n = (p.tokens + bm - 1) / bm;
  if (tiles_n * tiles_j > 0x7fffffffLL) throw std::runtime_error("linear attention (CUDA): too many tokens");
  const dim3 grid(static_cast<unsigned>(tiles_n * tiles_j), static_cast<unsigned>(p.batch * p.heads));
  if (v2) {
    if constexpr (kVec) {
      const size_t smem = apply2_smem_bytes<T>();
      // The shared-memory opt-in once per instantiation (before any CUDA-graph capture, by the warm-up runs).
      static const bool once = (allow_smem(apply2_kernel<T, Transform::Phi, true>, smem),
                                allow_smem(apply2_kernel<T, Transform::Phi, false>, smem),
                                allow_smem(apply2_kernel<T, Transform::None, true>, smem),
                                allow_smem(apply2_kernel<T, Transform::None, false>, smem), true);
      (void)once;
      auto launch = [&](auto kernel) { kernel<<<grid, kA2Threads, smem, stream>>>(p, a, tiles_j); };
      const bool phi = a.a_transform == Transform::Phi, low = a.s_lo != nullptr;
      if (phi && low) launch(apply2_kernel<T, Transform::Phi, true>);
      if (phi && !low) launch(apply2_kernel<T, Transform::Phi, false>);
      if (!phi && low) launch(apply2_kernel<T, Transform::None, true>);
      if (!phi && !low) launch(apply2_kernel<T, Transform::None, false>);
    } else {
      throw std::runtime_error("linear attention (CUDA): product v2 needs 16-byte rows");
    }
  } else {
    if (!a.s) throw std::runtime_error("linear attention (CUDA): no state given");
    if (a.a_transform == Transform::Phi)
      apply_kernel<T, kVec, Transform::Phi><<<grid, kApplyThreads, 0, stream>>>(p, a, tiles_j);
    else
      apply_kernel<T, kVec, Transform::None><<<grid, kApplyThreads, 0, stream>>>(p, a, tiles_j);
  }
  check(cudaGetLastError(), "apply kernel launch");
}

template <typename T>
void launch_dwc(const Problem& p, const DwcArgs& a, cudaStream_t stream) {
  const bool vec = vectorizable(a.v, p.head_dim) && a.out_row_stride % 8 == 0 && aligned16(a.out) &&
                   reinterpret_cast<uintptr_t>(a.weight) % 16 == 0;
  const bool fixed_k = a.kernel == 3 || a.kernel == 5 || a.kernel == 7;
  const int version = a.version != 0 ? a.version : (vec && fixed_k ? 3 : 1);
  if (version > 1 && !(vec && fixed_k))
    throw std::runtime_error("linear attention (CUDA): convolution v2/v3 need 16-byte rows and k = 3, 5 or 7");
  constexpr int kThreads = 256;
  if (version == 3) {
    const int tiles_x = static_cast<int>((a.grid_w + kDwc3TX - 1) / kDwc3TX);
    const int tiles_y = static_cast<int>((a.grid_h + kDwc3TY - 1) / kDwc3TY);
    const int64_t ch_tiles = (p.heads * p.head_dim + kDwc3Ch - 1) / kDwc3Ch;
    if (int64_t(tiles_x) * tiles_y * ch_tiles > 0x7fffffffLL || p.batch > 65535)
      throw std::runtime_error("linear attention (CUDA): convolution grid too large");
    const dim3 grid(static_cast<unsigned>(tiles_x * tiles_y * ch_tiles), static_cast<unsigned>(p.batch));
    if (a.kernel == 3) dwc3_kernel<T, 3><<<grid, kDwc3Threads, 0, stream>>>(p, a, tiles_x, tiles_y);
    if (a.kernel == 5) dwc3_kernel<T, 5><<<grid, kDwc3Threads, 0, stream>>>(p, a, tiles_x, tiles_y);
    if (a.kernel == 7) dwc3_kernel<T, 7><<<grid, kDwc3Threads, 0, stream>>>(p, a, tiles_x, tiles_y);
  } else if (version == 2) {
    const int64_t total = p.batch * a.grid_h * ((a.grid_w + kDwcRun - 1) / kDwcRun) * (p.heads * p.head_dim / 8);
    const auto blocks = static_cast<unsigned>(std::min<int64_t>((total + kThreads - 1) / kThreads, 1 << 20));
    if (a.kernel == 3) dwc2_kernel<T, 3><<<blocks, kThreads, 0, stream>>>(p, a);
    if (a.kernel == 5) dwc2_kernel<T, 5><<<blocks, kThreads, 0, stream>>>(p, a);
    if (a.kernel == 7) dwc2_kernel<T, 7><<<blocks, kThreads, 0, stream>>>(p, a);
  } else {
    const int64_t groups = p.heads * p.head_dim / (vec ? 8 : 1);
    const int64_t total = p.batch * p.tokens * groups;
    const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t(sm_count()) * 32);
    if (vec)
      dwc_kernel<T, 8><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, a);
    else
      dwc_kernel<T, 1><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, a);
  }
  check(cudaGetLastError(), "depthwise convolution launch");
}

}  // namespace

int state_splits(const Problem& p, const StateArgs& a) {
  return splits_for(p, state_version(p, a) == 2 ? kS2Tile : kStateBM);
}

void linear_attention_state(DType dtype, const Problem& p, const StateArgs& a, void* stream) {
  check_problem(p);
  const bool vec = vectorizable(a.x, p.head_dim) && vectorizable(a.y, p.head_dim);
  with_element_type(dtype, [&](auto tag) {
    using T = decltype(tag);
    vec ? launch_state<T, true>(p, a, static_cast<cudaStream_t>(stream))
        : launch_state<T, false>(p, a, static_cast<cudaStream_t>(stream));
  });
}

void linear_attention_apply(DType dtype, const Problem& p, const ApplyArgs& a, void* stream) {
  check_problem(p);
  if ((a.row_coef == nullptr) != (a.col_vec == nullptr))
    throw std::runtime_error("linear attention (CUDA): row_coef and col_vec go together");
  const HeadMajor out{a.out, a.out_row_stride};
  const bool vec = vectorizable(a.a, p.head_dim) && vectorizable(a.mask, p.head_dim) && vectorizable(out, p.head_dim);
  with_element_type(dtype, [&](auto tag) {
    using T = decltype(tag);
    vec ? launch_apply<T, true>(p, a, static_cast<cudaStream_t>(stream))
        : launch_apply<T, false>(p, a, static_cast<cudaStream_t>(stream));
  });
}

void depthwise_conv_tokens(DType dtype, const Problem& p, const DwcArgs& a, void* stream) {
  check_problem(p);
  if (a.grid_h * a.grid_w != p.tokens || a.kernel <= 0 || a.kernel % 2 == 0)
    throw std::runtime_error("linear attention (CUDA): bad depthwise convolution arguments");
  with_element_type(dtype, [&](auto tag) { launch_dwc<decltype(tag)>(p, a, static_cast<cudaStream_t>(stream)); });
}

}  // namespace lit::kernels::cuda
