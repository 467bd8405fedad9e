#include "kernels/linear_attention.h"

#include <cmath>

namespace lit::kernels {
namespace {

void check_arguments(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                     const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h, int64_t grid_w) {
  TORCH_CHECK(q.dim() == 3, "linear_attention: q must be (B, N, D), got ", q.sizes());
  TORCH_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes(), "linear_attention: q, k, v must have one shape, got ",
              q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  TORCH_CHECK(heads > 0 && q.size(2) % heads == 0, "linear_attention: D = ", q.size(2),
              " is not divisible by heads = ", heads);
  TORCH_CHECK(grid_h > 0 && grid_w > 0 && grid_h * grid_w == q.size(1), "linear_attention: token grid ", grid_h, "x",
              grid_w, " does not hold N = ", q.size(1), " tokens");
  const int64_t d = q.size(2) / heads;
  TORCH_CHECK(dwc_weight.dim() == 4 && dwc_weight.size(0) == d && dwc_weight.size(1) == 1 &&
                  dwc_weight.size(2) == dwc_weight.size(3) && dwc_weight.size(2) % 2 == 1,
              "linear_attention: dwc weight must be (d, 1, k, k) with d = ", d, " and k odd, got ", dwc_weight.sizes());
  TORCH_CHECK(dwc_bias.dim() == 1 && dwc_bias.size(0) == d, "linear_attention: dwc bias must be (", d, "), got ",
              dwc_bias.sizes());
}

}  // namespace

at::Tensor linear_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                      const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h,
                                      int64_t grid_w) {
  check_arguments(q, k, v, heads, dwc_weight, dwc_bias, grid_h, grid_w);
  const int64_t B = q.size(0), N = q.size(1), D = q.size(2), d = D / heads;

  // (B, N, D) -> (B, heads, N, d): head h owns channels h*d .. h*d + d-1.
  auto split_heads = [&](const at::Tensor& t) { return t.reshape({B, N, heads, d}).permute({0, 2, 1, 3}); };

  // The kernel function phi(x) = relu(x) + 1e-6 keeps every q.k similarity positive.
  const at::Tensor qh = split_heads(at::relu(q) + 1e-6);
  const at::Tensor kh = split_heads(at::relu(k) + 1e-6);
  const at::Tensor vh = split_heads(v);

  // Per-query normaliser: 1 / (q . mean_N(k) + eps).                                         (B, h, N, 1)
  const at::Tensor z = 1 / (at::matmul(qh, kh.mean(-2, /*keepdim=*/true).transpose(-2, -1)) + 1e-6);

  // The d x d state K^T V, both factors scaled by N^-1/2 to keep the sum's magnitude independent of N.
  const double scale = std::pow(static_cast<double>(N), -0.5);
  const at::Tensor kv = at::matmul(kh.transpose(-2, -1) * scale, vh * scale);  //          (B, h, d, d)

  // o = (q kv) * z, heads merged back to (B, N, D) as head*d + j.
  at::Tensor out = (at::matmul(qh, kv) * z).transpose(1, 2).reshape({B, N, D});

  // Depthwise convolution on v, one image per (batch, head): (B*h, N, d) -> (B*h, d, H, W), weights shared
  // by the heads; the result is read back as (B, D, N) with channel head*d + j.
  const at::Tensor v_img = vh.reshape({B * heads, grid_h, grid_w, d}).permute({0, 3, 1, 2});
  const int64_t pad = dwc_weight.size(2) / 2;
  const at::Tensor local = at::conv2d(v_img, dwc_weight, dwc_bias, /*stride=*/1, /*padding=*/pad, /*dilation=*/1,
                                      /*groups=*/d);
  return out + local.reshape({B, D, N}).permute({0, 2, 1});
}

at::Tensor linear_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                            const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h, int64_t grid_w) {
  return linear_attention_reference(q, k, v, heads, dwc_weight, dwc_bias, grid_h, grid_w);
}

}  // namespace lit::kernels
