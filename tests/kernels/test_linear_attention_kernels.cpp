// The fused linear attention: its backward algebra against autograd (CPU, every build), then the CUDA
// kernels against the float64 CPU reference on fresh random inputs (skipped without a GPU).
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <tuple>

#include "kernels/runtime/cuda_support.h"
#include "kernels/linear_attention.h"
#include "tests/test_util.h"

namespace lit {
namespace {

// The backward formulas of linear_attention.h reproduce autograd through the reference ops, in float64,
// with several heads, negative inputs (the relu masks) and a token count that is not a power of two.
TEST(LinearAttentionBackward, FormulasMatchAutograd) {
  at::manual_seed(3);
  const std::vector<std::array<int64_t, 4>> shapes = {{2, 15, 12, 3}, {1, 64, 32, 2}, {3, 7, 5, 1}};  // B N D h
  for (const auto& s : shapes) {
    const auto f64 = at::TensorOptions().dtype(at::kDouble);
    const at::Tensor q = at::randn({s[0], s[1], s[2]}, f64).requires_grad_();
    const at::Tensor k = at::randn({s[0], s[1], s[2]}, f64).requires_grad_();
    const at::Tensor v = at::randn({s[0], s[1], s[2]}, f64).requires_grad_();
    const at::Tensor grad = at::randn({s[0], s[1], s[2]}, f64);
    const at::Tensor out = kernels::linear_attention_core_reference(q, k, v, s[3]);
    out.backward(grad);
    const at::NoGradGuard no_grad;
    const kernels::LinearAttentionGrads g =
        kernels::linear_attention_core_backward_reference(q.detach(), k.detach(), v.detach(), s[3], grad);
    EXPECT_LE(test::rel_error(g.q, q.grad()), 1e-10) << "dq, N " << s[1];
    EXPECT_LE(test::rel_error(g.k, k.grad()), 1e-10) << "dk, N " << s[1];
    EXPECT_LE(test::rel_error(g.v, v.grad()), 1e-10) << "dv, N " << s[1];
  }
}

TEST(LinearAttentionBackward, ReferencePlusConvolutionIsTheFullReference) {
  at::manual_seed(4);
  const at::Tensor q = at::randn({2, 12, 8}), k = at::randn({2, 12, 8}), v = at::randn({2, 12, 8});
  const at::Tensor w = at::zeros({4, 1, 3, 3}), b = at::zeros({4});
  EXPECT_LE(test::rel_error(kernels::linear_attention_reference(q, k, v, 2, w, b, 3, 4),
                            kernels::linear_attention_core_reference(q, k, v, 2)),
            1e-7);
}

// The composed form (matrix products per head) against the float64 reference, both forms, on the CPU: exact
// to float32's rounding in float32 (the fixtures' 1e-5), within bf16's in bf16; k and v as views of one kv.
TEST(LinearAttentionComposed, MatchesTheReferenceInEachForm) {
  at::manual_seed(5);
  struct Case {
    int64_t batch, grid_h, grid_w, dim, heads;
  };
  // N < d, N > d, N == d, one head, a grid that is not square.
  for (const Case& c : std::vector<Case>{{2, 4, 4, 64, 2}, {2, 8, 8, 64, 2}, {1, 4, 8, 32, 1}, {3, 5, 7, 24, 3}}) {
    const int64_t N = c.grid_h * c.grid_w, d = c.dim / c.heads;
    const at::Tensor q = at::randn({c.batch, N, c.dim}, at::kDouble);
    const at::Tensor kv = at::randn({c.batch, N, 2 * c.dim}, at::kDouble);
    const at::Tensor k = kv.narrow(2, 0, c.dim), v = kv.narrow(2, c.dim, c.dim);
    const at::Tensor w = at::randn({d, 1, 5, 5}, at::kDouble) * 0.2, b = at::randn({d}, at::kDouble);
    const at::Tensor ref = kernels::linear_attention_reference(q, k, v, c.heads, w, b, c.grid_h, c.grid_w);
    const at::NoGradGuard no_grad;
    for (const auto form :
         {kernels::ComposedForm::Auto, kernels::ComposedForm::Linear, kernels::ComposedForm::Quadratic}) {
      const std::string where = "form " + std::to_string(static_cast<int>(form)) + ", N " + std::to_string(N) + " d " +
                                std::to_string(d) + " heads " + std::to_string(c.heads);
      auto run = [&](at::ScalarType dtype) {
        return kernels::linear_attention_composed(q.to(dtype), k.to(dtype), v.to(dtype), c.heads, w.to(dtype),
                                                  b.to(dtype), c.grid_h, c.grid_w, form);
      };
      EXPECT_LE(test::rel_error(run(at::kDouble), ref), 1e-12) << where;
      EXPECT_LE(test::rel_error(run(at::kFloat), ref), 1e-6) << where;
      const at::Tensor bf16 = run(at::kBFloat16);
      EXPECT_EQ(bf16.scalar_type(), at::kBFloat16) << where;
      EXPECT_LE(test::rel_error(bf16, ref), 1e-2) << where;
    }
  }
}

TEST(LinearAttentionComposed, NormaliserKeepsItsEpsilonWhenEveryQueryIsNegative) {
  // phi(q) = 1e-6 everywhere: the normaliser is then of the order of its own 1e-6, which must not be lost.
  at::manual_seed(6);
  const at::Tensor q = -at::rand({1, 16, 8}, at::kDouble) - 0.1;
  const at::Tensor k = at::randn({1, 16, 8}, at::kDouble), v = at::randn({1, 16, 8}, at::kDouble);
  const at::Tensor w = at::zeros({4, 1, 3, 3}, at::kDouble), b = at::zeros({4}, at::kDouble);
  const at::Tensor ref = kernels::linear_attention_reference(q, k, v, 2, w, b, 4, 4);
  const at::NoGradGuard no_grad;
  for (const auto form : {kernels::ComposedForm::Linear, kernels::ComposedForm::Quadratic})
    EXPECT_LE(test::rel_error(kernels::linear_attention_composed(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat),
                                                                 2, w.to(at::kFloat), b.to(at::kFloat), 4, 4, form),
                              ref),
              1e-5);
}

TEST(LinearAttentionComposed, RejectsBadArguments) {
  const at::Tensor x = at::randn({1, 4, 8}), w = at::randn({4, 1, 3, 3}), b = at::randn({4});
  const at::NoGradGuard no_grad;
  EXPECT_THROW(kernels::linear_attention_composed(x, x, x, 3, w, b, 2, 2), c10::Error);  // D not divisible
  EXPECT_THROW(kernels::linear_attention_composed(x, x.to(at::kDouble), x, 2, w, b, 2, 2), c10::Error);
  EXPECT_THROW(kernels::linear_attention_composed(x, x, x, 2, w, b, 1, 3), c10::Error);  // grid of 3 tokens
}

// Training through the composed form (autograd through its products, the in-place writes included): the
// gradients of q, k|v (one kv tensor), the convolution's weight and bias against autograd through the float64
// reference, in both forms: float32 to its rounding, bf16 to bf16's.
TEST(LinearAttentionComposed, GradientsMatchFloat64Autograd) {
  at::manual_seed(8);
  for (const auto form : {kernels::ComposedForm::Linear, kernels::ComposedForm::Quadratic}) {
    for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      const int64_t B = 2, N = 20, D = 48, heads = 3, d = D / heads;
      const at::Tensor q64 = at::randn({B, N, D}, at::kDouble).requires_grad_();
      const at::Tensor kv64 = at::randn({B, N, 2 * D}, at::kDouble).requires_grad_();
      const at::Tensor w64 = (at::randn({d, 1, 5, 5}, at::kDouble) * 0.2).requires_grad_();
      const at::Tensor b64 = at::randn({d}, at::kDouble).requires_grad_();
      const at::Tensor grad = at::randn({B, N, D}, at::kDouble);
      kernels::linear_attention_reference(q64, kv64.narrow(2, 0, D), kv64.narrow(2, D, D), heads, w64, b64, 4, 5)
          .backward(grad);
      auto leaf = [dtype](const at::Tensor& t) { return t.detach().to(dtype).requires_grad_(); };
      const at::Tensor q = leaf(q64), kv = leaf(kv64), w = leaf(w64), b = leaf(b64);
      const at::Tensor out =
          kernels::linear_attention_composed(q, kv.narrow(2, 0, D), kv.narrow(2, D, D), heads, w, b, 4, 5, form);
      EXPECT_EQ(out.scalar_type(), dtype);
      out.backward(grad.to(dtype));
      const double tol = dtype == at::kFloat ? 1e-5 : 1e-2;
      const std::string where =
          std::string(form == kernels::ComposedForm::Linear ? "linear " : "quadratic ") + c10::toString(dtype);
      for (const auto& [name, got, want] :
           {std::tuple{"dq", q.grad(), q64.grad()}, std::tuple{"dk|dv", kv.grad(), kv64.grad()},
            std::tuple{"dweight", w.grad(), w64.grad()}, std::tuple{"dbias", b.grad(), b64.grad()}}) {
        EXPECT_LE(test::rel_error(got, want), tol) << name << ", " << where;
        std::printf("  composed %s %s: rel error %.2e\n", where.c_str(), name, test::rel_error(got, want));
      }
    }
  }
}

// Which path linear_attention() takes on the CPU: the composed form, inference and training, unless the
// reference is asked for; a training pass (activation checkpointing's first forward) takes the training
// branch, bit for bit what recording gradients computes.
TEST(LinearAttentionDispatch, ChoosesThePathByGradientsPassAndImplementation) {
  using kernels::AttentionImpl;
  using kernels::Pass;
  at::manual_seed(7);
  const at::Tensor q = at::randn({2, 16, 32}), k = at::randn({2, 16, 32}), v = at::randn({2, 16, 32});
  const at::Tensor w = at::randn({16, 1, 5, 5}) * 0.2, b = at::randn({16});
  const at::Tensor qg = q.clone().requires_grad_();
  const at::Tensor reference = kernels::linear_attention_reference(q, k, v, 2, w, b, 4, 4);
  const at::Tensor composed_training = kernels::linear_attention_composed(qg, k, v, 2, w, b, 4, 4);
  at::Tensor composed;
  {
    const at::NoGradGuard no_grad;
    composed = kernels::linear_attention_composed(q, k, v, 2, w, b, 4, 4);
  }
  ASSERT_FALSE(at::equal(composed, reference));  // else this test could not tell the paths apart
  ASSERT_FALSE(at::equal(composed_training, reference));
  EXPECT_TRUE(at::equal(kernels::linear_attention(qg, k, v, 2, w, b, 4, 4), composed_training));
  {
    const at::NoGradGuard no_grad;
    EXPECT_TRUE(at::equal(kernels::linear_attention(q, k, v, 2, w, b, 4, 4), composed));
    EXPECT_TRUE(at::equal(kernels::linear_attention(q, k, v, 2, w, b, 4, 4, AttentionImpl::Auto, Pass::Training),
                          composed_training));
    EXPECT_TRUE(at::equal(
        kernels::linear_attention_composed(q, k, v, 2, w, b, 4, 4, kernels::ComposedForm::Auto, Pass::Training),
        composed_training));
  }
  EXPECT_TRUE(at::equal(kernels::linear_attention(qg, k, v, 2, w, b, 4, 4, AttentionImpl::Reference), reference));
  {
    const at::NoGradGuard no_grad;
    EXPECT_TRUE(at::equal(kernels::linear_attention(q, k, v, 2, w, b, 4, 4, AttentionImpl::Reference), reference));
    EXPECT_TRUE(at::equal(kernels::linear_attention(q, k, v, 2, w, b, 4, 4, AttentionImpl::Composed), composed));
  }
}

TEST(ExecutionOptions, NamesReadBackAndOthersAreRefused) {
  for (const std::string& name : kernels::attention_impl_names())
    EXPECT_EQ(kernels::attention_impl_name(kernels::parse_attention_impl(name)), name);
  for (const std::string& name : kernels::precision_path_names())
    EXPECT_EQ(kernels::precision_path_name(kernels::parse_precision_path(name)), name);
  EXPECT_NE(test::error_of([] { kernels::parse_attention_impl("flash"); }).find("--attention flash"),
            std::string::npos);
  EXPECT_FALSE(kernels::precision_path_from_name("fast"));
  EXPECT_EQ(kernels::describe(kernels::ExecutionOptions{}),
            "attention auto, fused kernels, CUDA graphs off, exact float32");
}

TEST(LinearAttentionCuda, KernelEntryPointsRejectCpuTensors) {
  const at::Tensor x = at::randn({1, 4, 8});
  EXPECT_THROW(kernels::linear_attention_cuda(x, x, x, 2, at::randn({4, 1, 3, 3}), at::randn({4}), 2, 2), c10::Error);
  EXPECT_THROW(kernels::linear_attention_core_cuda(x, x, x, 2), c10::Error);
}

// ---------------------------------------------------------------------------------------------------------
// CUDA
// ---------------------------------------------------------------------------------------------------------
struct Shape {
  int64_t batch, grid_h, grid_w, dim, heads;
};

// LiT-XL/2 at 256 px (4 heads of 288) and 512 px (2 of 576), LiT-S/2 (2 of 192), the softmax model's head
// size at N = 4096 (16 of 72), a 13 x 21 grid (partial tiles everywhere), and shapes the 16-byte path
// cannot take (d = 20, d = 12 with 33 tokens).
const std::vector<Shape> kShapes = {{2, 16, 16, 1152, 4},  {1, 32, 32, 1152, 2}, {3, 8, 8, 384, 2},
                                    {1, 64, 64, 1152, 16}, {2, 13, 21, 128, 2},  {2, 5, 7, 60, 3},
                                    {1, 3, 11, 48, 4}};

class LinearAttentionCudaTest : public ::testing::TestWithParam<at::ScalarType> {
 protected:
  void SetUp() override {
    if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine: " << kernels::cuda_summary();
  }
  at::TensorOptions opts() const { return at::TensorOptions().device(at::kCUDA).dtype(GetParam()); }
};

// Fills the allocator's free blocks with NaN, so that an output element a kernel forgot to write shows up.
void poison_cuda_allocator() {
  for (int64_t mb : {1, 8, 64, 256}) at::full({mb << 18}, NAN, at::TensorOptions().device(at::kCUDA));
}

at::Tensor cpu64(const at::Tensor& t) {
  return t.detach().to(at::kCPU, at::kDouble);
}

TEST_P(LinearAttentionCudaTest, FusedForwardMatchesTheFloat64Reference) {
  for (const Shape& s : kShapes) {
    const int64_t N = s.grid_h * s.grid_w, d = s.dim / s.heads;
    const at::Tensor q = at::randn({s.batch, N, s.dim}, opts());
    const at::Tensor kv = at::randn({s.batch, N, 2 * s.dim}, opts());  // k and v as views, like the model's
    const at::Tensor k = kv.narrow(2, 0, s.dim), v = kv.narrow(2, s.dim, s.dim);
    const at::Tensor w = at::randn({d, 1, 5, 5}, opts()) * 0.2, b = at::randn({d}, opts());
    const at::Tensor ref = kernels::linear_attention_reference(cpu64(q), cpu64(k), cpu64(v), s.heads, cpu64(w),
                                                               cpu64(b), s.grid_h, s.grid_w);
    const at::Tensor ref_core = kernels::linear_attention_core_reference(cpu64(q), cpu64(k), cpu64(v), s.heads);
    for (int version : {0, 1, 2, 3}) {
      const std::string where = "version " + std::to_string(version) + ", B " + std::to_string(s.batch) + " N " +
                                std::to_string(N) + " d " + std::to_string(d);
      if (version >= 2 && d % 8 != 0) {  // the asynchronous-copy versions need 16-byte rows, and say so
        EXPECT_THROW(kernels::linear_attention_cuda(q, k, v, s.heads, w, b, s.grid_h, s.grid_w, version), c10::Error)
            << where;
        continue;
      }
      poison_cuda_allocator();
      const at::Tensor out = kernels::linear_attention_cuda(q, k, v, s.heads, w, b, s.grid_h, s.grid_w, version);
      EXPECT_TRUE(at::isfinite(out).all().item<bool>()) << where;
      EXPECT_LE(test::rel_error(out, ref), 1e-2) << where;
      // The attention alone (no convolution) too: the convolution must not hide an error of the products.
      const at::Tensor core = kernels::linear_attention_cuda(q, k, v, s.heads, at::zeros_like(w), at::zeros_like(b),
                                                             s.grid_h, s.grid_w, version);
      EXPECT_LE(test::rel_error(core, ref_core), 1e-2) << where;
      std::printf("  forward %s: rel error %.2e (attention alone %.2e)\n", where.c_str(), test::rel_error(out, ref),
                  test::rel_error(core, ref_core));
    }
  }
}

TEST_P(LinearAttentionCudaTest, ComposedMatchesTheFloat64Reference) {
  const at::NoGradGuard no_grad;
  for (const Shape& s : kShapes) {
    const int64_t N = s.grid_h * s.grid_w, d = s.dim / s.heads;
    const at::Tensor q = at::randn({s.batch, N, s.dim}, opts());
    const at::Tensor kv = at::randn({s.batch, N, 2 * s.dim}, opts());
    const at::Tensor k = kv.narrow(2, 0, s.dim), v = kv.narrow(2, s.dim, s.dim);
    const at::Tensor w = at::randn({d, 1, 5, 5}, opts()) * 0.2, b = at::randn({d}, opts());
    const at::Tensor ref = kernels::linear_attention_reference(cpu64(q), cpu64(k), cpu64(v), s.heads, cpu64(w),
                                                               cpu64(b), s.grid_h, s.grid_w);
    for (const auto form : {kernels::ComposedForm::Linear, kernels::ComposedForm::Quadratic}) {
      const std::string where = std::string(form == kernels::ComposedForm::Linear ? "linear" : "quadratic") + ", B " +
                                std::to_string(s.batch) + " N " + std::to_string(N) + " d " + std::to_string(d);
      poison_cuda_allocator();
      const at::Tensor out = kernels::linear_attention_composed(q, k, v, s.heads, w, b, s.grid_h, s.grid_w, form);
      EXPECT_TRUE(at::isfinite(out).all().item<bool>()) << where;
      EXPECT_LE(test::rel_error(out, ref), 1e-2) << where;
      std::printf("  composed %s: rel error %.2e\n", where.c_str(), test::rel_error(out, ref));
    }
  }
}

TEST_P(LinearAttentionCudaTest, ForwardIsDeterministicAndTheDispatchUsesIt) {
  const at::Tensor q = at::randn({2, 1024, 1152}, opts()), kv = at::randn({2, 1024, 2304}, opts());
  const at::Tensor k = kv.narrow(2, 0, 1152), v = kv.narrow(2, 1152, 1152);
  const at::Tensor w = at::randn({288, 1, 5, 5}, opts()), b = at::randn({288}, opts());
  const at::Tensor a = kernels::linear_attention_cuda(q, k, v, 4, w, b, 32, 32);
  const at::Tensor again = kernels::linear_attention_cuda(q, k, v, 4, w, b, 32, 32);
  EXPECT_TRUE(at::equal(a, again)) << "two runs on the same inputs differ";
  const at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(a, kernels::linear_attention(q, k, v, 4, w, b, 32, 32)));
}

// Forward and backward through linear_attention() with gradients recorded (the fused attention kernels and
// ATen's convolution), against autograd through the float64 reference on the CPU.
TEST_P(LinearAttentionCudaTest, BackwardMatchesFloat64Autograd) {
  for (const Shape& s : kShapes) {
    const int64_t N = s.grid_h * s.grid_w, d = s.dim / s.heads;
    const at::Tensor q = at::randn({s.batch, N, s.dim}, opts()).requires_grad_();
    const at::Tensor kv = at::randn({s.batch, N, 2 * s.dim}, opts()).requires_grad_();
    const at::Tensor w = (at::randn({d, 1, 5, 5}, opts()) * 0.2).requires_grad_();
    const at::Tensor b = at::randn({d}, opts()).requires_grad_();
    const at::Tensor grad = at::randn({s.batch, N, s.dim}, opts());
    const at::Tensor out = kernels::linear_attention(q, kv.narrow(2, 0, s.dim), kv.narrow(2, s.dim, s.dim), s.heads, w,
                                                     b, s.grid_h, s.grid_w);
    out.backward(grad);

    const at::Tensor q64 = cpu64(q).requires_grad_(), kv64 = cpu64(kv).requires_grad_();
    const at::Tensor w64 = cpu64(w).requires_grad_(), b64 = cpu64(b).requires_grad_();
    const at::Tensor ref = kernels::linear_attention_reference(
        q64, kv64.narrow(2, 0, s.dim), kv64.narrow(2, s.dim, s.dim), s.heads, w64, b64, s.grid_h, s.grid_w);
    ref.backward(cpu64(grad));
    const std::string where = "B " + std::to_string(s.batch) + " N " + std::to_string(N) + " d " + std::to_string(d);
    EXPECT_LE(test::rel_error(out, ref), 1e-2) << where;
    for (const auto& [name, got, want] :
         {std::tuple{"dq", q.grad(), q64.grad()}, std::tuple{"dk|dv", kv.grad(), kv64.grad()},
          std::tuple{"dweight", w.grad(), w64.grad()}, std::tuple{"dbias", b.grad(), b64.grad()}}) {
      EXPECT_TRUE(at::isfinite(got).all().item<bool>()) << name << " " << where;
      EXPECT_LE(test::rel_error(got, want), 1e-2) << name << " " << where;
      std::printf("  backward %s %s: rel error %.2e\n", name, where.c_str(), test::rel_error(got, want));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Bf16AndFp16, LinearAttentionCudaTest, ::testing::Values(at::kBFloat16, at::kHalf));

}  // namespace
}  // namespace lit
