#include <gtest/gtest.h>

#include "kernels/runtime/cuda_support.h"
#include "kernels/linear_attention.h"
#include "model/backbone/attention.h"
#include "tests/model/model_test_util.h"

namespace lit {
namespace {

// fixtures/lit/linear_attention_io.safetensors: one attention module (D 96, 2 heads, 64 tokens on 8x8).
TEST(LinearAttention, ModuleMatchesTheReference) {
  const StateDict io = test::read_safetensors(test::fixture("lit/linear_attention_io.safetensors"));
  dit::LinearAttention attn(96, 2, 5, at::kFloat);
  {
    at::NoGradGuard no_grad;
    for (auto& item : attn.named_parameters()) item.value().copy_(io.at("attn." + item.key()));
  }
  EXPECT_EQ(attn.named_parameters().size(), 8u);
  at::NoGradGuard no_grad;
  const at::Tensor out = attn.forward(io.at("x"), 8, 8);
  EXPECT_LE(test::rel_error(out, io.at("out")), 1e-5);
}

// The operator against the formula written element by element, in float64, on a small non-square grid.
TEST(LinearAttention, OperatorMatchesTheFormula) {
  at::manual_seed(1);
  const int64_t B = 2, H = 3, W = 5, N = H * W, heads = 3, d = 4, D = heads * d, K = 3;
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor q = at::randn({B, N, D}, f64), k = at::randn({B, N, D}, f64), v = at::randn({B, N, D}, f64);
  const at::Tensor w = at::randn({d, 1, K, K}, f64), bias = at::randn({d}, f64);
  const at::Tensor out = kernels::linear_attention(q, k, v, heads, w, bias, H, W);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{B, N, D}));

  auto phi = [](double x) { return std::max(x, 0.0) + 1e-6; };
  auto Q = q.accessor<double, 3>(), Kc = k.accessor<double, 3>(), V = v.accessor<double, 3>();
  auto Wt = w.accessor<double, 4>();
  auto Bias = bias.accessor<double, 1>();
  auto O = out.accessor<double, 3>();
  double max_err = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t n = 0; n < N; ++n) {
        // z = 1 / (q . mean_m k_m + 1e-6)
        double qk_mean = 0;
        for (int64_t i = 0; i < d; ++i) {
          double mean = 0;
          for (int64_t m = 0; m < N; ++m) mean += phi(Kc[b][m][h * d + i]);
          qk_mean += phi(Q[b][n][h * d + i]) * mean / N;
        }
        const double z = 1 / (qk_mean + 1e-6);
        for (int64_t j = 0; j < d; ++j) {
          // (q (k^T v) / N) * z
          double acc = 0;
          for (int64_t m = 0; m < N; ++m) {
            double qk = 0;
            for (int64_t i = 0; i < d; ++i) qk += phi(Q[b][n][h * d + i]) * phi(Kc[b][m][h * d + i]);
            acc += qk * V[b][m][h * d + j];
          }
          double expected = acc / N * z;
          // + depthwise conv of this head's channel j of v, zero padding, shared weights.
          const int64_t y = n / W, x = n % W;
          double conv = Bias[j];
          for (int64_t dy = 0; dy < K; ++dy)
            for (int64_t dx = 0; dx < K; ++dx) {
              const int64_t yy = y + dy - K / 2, xx = x + dx - K / 2;
              if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
              conv += Wt[j][0][dy][dx] * V[b][yy * W + xx][h * d + j];
            }
          expected += conv;
          max_err = std::max(max_err, std::abs(O[b][n][h * d + j] - expected) / (1 + std::abs(expected)));
        }
      }
  EXPECT_LT(max_err, 1e-10);
}

TEST(LinearAttention, RejectsBadArguments) {
  const at::Tensor x = at::randn({1, 16, 8});
  const at::Tensor w = at::randn({4, 1, 5, 5}), b = at::randn({4});
  EXPECT_NO_THROW(kernels::linear_attention(x, x, x, 2, w, b, 4, 4));
  EXPECT_THROW(kernels::linear_attention(x, x, x, 3, w, b, 4, 4), c10::Error);                        // 8 % 3
  EXPECT_THROW(kernels::linear_attention(x, x, x, 2, w, b, 4, 5), c10::Error);                        // grid
  EXPECT_THROW(kernels::linear_attention(x, x, x, 4, w, b, 4, 4), c10::Error);                        // d = 2 != 4
  EXPECT_THROW(kernels::linear_attention(x, x, x, 2, at::randn({4, 1, 4, 4}), b, 4, 4), c10::Error);  // even k
  EXPECT_THROW(kernels::linear_attention(x, x.narrow(1, 0, 8), x, 2, w, b, 4, 4), c10::Error);
}

// Inputs that are views (k and v are halves of one kv projection) give the same result as contiguous ones.
TEST(LinearAttention, AcceptsStridedViews) {
  at::manual_seed(2);
  const at::Tensor kv = at::randn({2, 16, 16}), q = at::randn({2, 16, 8});
  const at::Tensor w = at::randn({4, 1, 5, 5}), b = at::randn({4});
  const at::Tensor k = kv.narrow(2, 0, 8), v = kv.narrow(2, 8, 8);
  const at::Tensor a = kernels::linear_attention(q, k, v, 2, w, b, 4, 4);
  const at::Tensor c = kernels::linear_attention(q, k.contiguous(), v.contiguous(), 2, w, b, 4, 4);
  EXPECT_LE(test::rel_error(a, c), 1e-6);
}

TEST(LinearAttentionCuda, MatchesTheCpuReference) {
  if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine: " << kernels::cuda_summary();
  at::manual_seed(3);
  for (const auto& [B, H, W, heads, D] : std::vector<std::array<int64_t, 5>>{{2, 16, 16, 2, 384}, {3, 8, 8, 4, 64}}) {
    const at::Tensor q = at::randn({B, H * W, D}), k = at::randn({B, H * W, D}), v = at::randn({B, H * W, D});
    const at::Tensor w = at::randn({D / heads, 1, 5, 5}), b = at::randn({D / heads});
    const at::Tensor ref = kernels::linear_attention(q, k, v, heads, w, b, H, W);
    const at::Tensor out = kernels::linear_attention(q.cuda(), k.cuda(), v.cuda(), heads, w.cuda(), b.cuda(), H, W);
    EXPECT_TRUE(out.is_cuda());
    EXPECT_LE(test::rel_error(out, ref), 1e-4);
    const at::Tensor out_bf16 =
        kernels::linear_attention(q.cuda().to(at::kBFloat16), k.cuda().to(at::kBFloat16), v.cuda().to(at::kBFloat16),
                                  heads, w.cuda().to(at::kBFloat16), b.cuda().to(at::kBFloat16), H, W);
    EXPECT_LE(test::rel_error(out_bf16, ref), 1e-2);
  }
}

}  // namespace
}  // namespace lit
