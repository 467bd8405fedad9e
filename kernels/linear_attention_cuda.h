// Launchers of the fused linear-attention CUDA kernels (linear_attention_cuda.cu); plain pointers so that this
// header needs no CUDA or ATen headers. kernels/linear_attention.cpp composes them into the forward pass and
// the backward pass, and documents the algebra.
//
// Every kernel works on (B, N, H*d) token tensors seen head by head: element (b, n, h, j) of a HeadMajor view
// lies at data[(b * N + n) * row_stride + h * d + j], so k and v may be views into one kv projection.
// Inputs are bf16 or fp16; products accumulate in float32 on the tensor cores; states and per-token scalars
// are float32.
#pragma once

#include <cstdint>

#include "kernels/cuda_types.h"

namespace lit::kernels::cuda {

struct Problem {
  int64_t batch, tokens, heads, head_dim;
};

struct HeadMajor {
  const void* data = nullptr;  // null: absent
  int64_t row_stride = 0;      // elements between tokens
};

// phi(x) = relu(x) + 1e-6, LiT's kernel function, applied while a tile is loaded.
enum class Transform { None, Phi };

// The reduction over tokens, one d x d matrix per (batch, head):
//   state[s, bh]  = alpha * sum_n f(X_n)^T (y_row_scale[bh, n] * Y_n)                       (d, d)
//   colsum[s, bh] = col_alpha * sum_n col_weight[bh, n] * f(X_n)                            (d)
// over the tokens of split s (the launcher writes state_splits(...) partial sums; the caller adds them).
struct StateArgs {
  HeadMajor x, y;
  Transform x_transform = Transform::None;
  const float* y_row_scale = nullptr;  // (B*H, N) or null (1)
  const float* col_weight = nullptr;   // (B*H, N) or null (1)
  float alpha = 1, col_alpha = 1;
  float* state = nullptr;   // (splits, B*H, d, d), or null when state_hi is given and there is one split
  float* colsum = nullptr;  // (splits, B*H, d) or null: not computed
  // Version 2 only (the forward's reduction, tiles of 96 x 96, asynchronous copies 3 stages deep): when
  // state_splits() is 1 it can also write the state as the high + low pair the product kernel reads,
  // alpha * state rounded to the element type and the rest rounded again, (B*H, d, d) each.
  void* state_hi = nullptr;
  void* state_lo = nullptr;
  int version = 0;  // 1: register-staged tiles (everything above); 2: phi on X, no y_row_scale/col_weight; 0: best
};
// How many partial sums a launch with these arguments writes (depends on the version it takes).
int state_splits(const Problem& p, const StateArgs& a);
void linear_attention_state(DType dtype, const Problem& p, const StateArgs& a, void* stream);

// The product with a state, one output row per token, with a fused epilogue:
//   acc = f(A_n) S[bh]  (S^T when s_transposed; S float32, used as a bf16/fp16 high + low pair, so the state
//                        keeps ~16 bits of mantissa)
//   r_n = row_scale[bh, n], or 1 / (f(A_n) . z_m[bh] + 1e-6) when z_m is given (LiT's normaliser; written to
//         z_out when that is not null)
//   v   = acc * alpha * r_n - row_coef[bh, n] * col_vec[bh, j] + col_add[bh, j]   (each term when given)
//   v   = 0 where mask(b, n, h, j) <= 0 (when mask.data is set), v += out (when accumulate)
//   out(b, n, h, j) = v, rounded once to the element type
struct ApplyArgs {
  HeadMajor a;
  Transform a_transform = Transform::None;
  const float* s = nullptr;  // (B*H, d, d)
  bool s_transposed = false;
  // Version 2 (128 x 96 tiles, asynchronous copies 3 stages deep) reads the state already split and laid
  // out as used, (B*H, d, d) in the element type: s_hi[k][j] (+ s_lo[k][j] when given); s is then unused.
  const void* s_hi = nullptr;
  const void* s_lo = nullptr;
  float alpha = 1;
  const float* row_scale = nullptr;  // (B*H, N)
  const float* z_m = nullptr;        // (B*H, d)
  float* z_out = nullptr;            // (B*H, N)
  const float* row_coef = nullptr;   // (B*H, N), with col_vec
  const float* col_vec = nullptr;    // (B*H, d)
  const float* col_add = nullptr;    // (B*H, d)
  HeadMajor mask;
  bool accumulate = false;
  void* out = nullptr;
  int64_t out_row_stride = 0;
};
void linear_attention_apply(DType dtype, const Problem& p, const ApplyArgs& a, void* stream);

// LiT's depthwise convolution on v, read in token layout (no transposes): for channel c = h*d + j of token
// n = y * grid_w + x, out = bias[j] + sum_{dy,dx} weight[j, dy, dx] * v(y + dy - k/2, x + dx - k/2, c), zero
// outside the grid; added to out when accumulate. weight (k, k, d), tap-major, and bias (d) are float32.
struct DwcArgs {
  HeadMajor v;
  const float* weight = nullptr;
  const float* bias = nullptr;  // null: no bias
  int kernel = 5;
  int64_t grid_h = 0, grid_w = 0;
  bool accumulate = false;
  void* out = nullptr;
  int64_t out_row_stride = 0;
  // 1: a thread per token; 2: a thread per 4 tokens of a row; 3: tiles staged in shared memory; 2 and 3 need
  // k = 3, 5 or 7 and 16-byte rows; 0: the best that applies
  int version = 0;
};
void depthwise_conv_tokens(DType dtype, const Problem& p, const DwcArgs& a, void* stream);

}  // namespace lit::kernels::cuda
