// linear_attention_composed(): LiT's attention as a few large matrix products per head (cuBLAS on CUDA, the
// CPU's BLAS otherwise), in the input dtype, the normaliser carried along by the products themselves.
#include <ATen/ATen.h>

#include <vector>

#include "kernels/linear_attention.h"
#include "kernels/linear_attention_parts.h"
#include "kernels/runtime/cuda_support.h"

namespace lit::kernels {
namespace {

// The state gets extra columns so that one product gives both the numerators and the normaliser: column d
// holds m = mean_n K_n, the other 7 are zero and keep the product's rows a multiple of 8 elements (16 bytes in
// bf16), as the tensor-core GEMMs want.
constexpr int64_t kExtraColumns = 8;

// The type of the normaliser's sums and of the division: float32 for half types, the dtype itself otherwise.
at::ScalarType wide(const at::Tensor& t) {
  return at::promote_types(t.scalar_type(), at::kFloat);
}

// One head's numerators and normaliser: out_h = numerator / normaliser (the normaliser in wide(), 1e-6
// included). The products write into fresh zero tensors in place, which autograd follows.
struct HeadParts {
  at::Tensor numerator, normaliser;
};

// Linear form: S' = [K^T V / N | m | 0] (B, d, d + 8), then Q S' gives Q S in columns 0..d-1 and Q . m in
// column d. The 1/N scaling is the product's alpha, applied before its result is rounded to the dtype.
HeadParts head_linear(const at::Tensor& qh, const at::Tensor& kh, const at::Tensor& vh) {
  const int64_t B = qh.size(0), N = qh.size(1), d = qh.size(2);
  const at::Tensor state = at::zeros({B, d, d + kExtraColumns}, qh.options());
  state.narrow(2, 0, d).baddbmm_(kh.transpose(1, 2), vh, /*beta=*/0, /*alpha=*/1.0 / static_cast<double>(N));
  state.select(2, d).copy_(kh.mean(/*dim=*/1, /*keepdim=*/false, wide(kh)));
  const at::Tensor product = at::bmm(qh, state);  // (B, N, d + 8)
  return {product.narrow(2, 0, d), product.narrow(2, d, 1).to(wide(qh)) + 1e-6};
}

// Quadratic form: A = Q K^T / N (B, N, N), then Q S = A V and Q . m = the row sums of A. Cheaper than the
// state when N < d (4 N^2 d against 4 N d^2 multiply-adds, and A is smaller than the state).
HeadParts head_quadratic(const at::Tensor& qh, const at::Tensor& kh, const at::Tensor& vh) {
  const int64_t B = qh.size(0), N = qh.size(1);
  const at::Tensor scores = at::zeros({B, N, N}, qh.options());
  scores.baddbmm_(qh, kh.transpose(1, 2), /*beta=*/0, /*alpha=*/1.0 / static_cast<double>(N));
  return {at::bmm(scores, vh), scores.sum(/*dim=*/2, /*keepdim=*/true, wide(qh)) + 1e-6};
}

// phi(x) = relu(x) + 1e-6. For bf16/fp16 as one pass, x where x > 0 and 1e-6 elsewhere: adding 1e-6 to a
// positive bf16 (fp16) value changes it only below ~5e-4 (~2e-3), by at most 1e-6, far inside the dtype's
// rounding; the two-pass form would read and write q and k twice.
at::Tensor phi(const at::Tensor& x) {
  if (is_half_type(x.scalar_type())) return at::threshold(x, 0, 1e-6);
  return detail::phi(x);
}

}  // namespace

at::Tensor linear_attention_composed(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                     const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h,
                                     int64_t grid_w, ComposedForm form, Pass pass) {
  detail::check_arguments(q, k, v, heads, dwc_weight, dwc_bias, grid_h, grid_w);
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type() && k.device() == q.device() &&
                  v.device() == q.device(),
              "linear_attention_composed: q, k, v must share one dtype and device");
  const int64_t B = q.size(0), N = q.size(1), D = q.size(2), d = D / heads;
  const bool quadratic = form == ComposedForm::Quadratic || (form == ComposedForm::Auto && N < d);
  const bool training = pass == Pass::Training || records_grad({q, k, v, dwc_weight, dwc_bias});
  // phi once over all heads; each head is then a strided (B, N, d) view (row stride D), which the products
  // read in place.
  const at::Tensor Q = phi(q), K = phi(k);
  std::vector<at::Tensor> head_outputs;  // training: differentiable per-head results, concatenated
  at::Tensor out = training ? at::Tensor() : at::empty({B, N, D}, q.options());
  for (int64_t h = 0; h < heads; ++h) {
    const at::Tensor qh = Q.narrow(2, h * d, d), kh = K.narrow(2, h * d, d), vh = v.narrow(2, h * d, d);
    const HeadParts parts = (quadratic ? head_quadratic : head_linear)(qh, kh, vh);
    if (training) {
      head_outputs.push_back((parts.numerator / parts.normaliser).to(q.scalar_type()));
    } else {
      at::Tensor out_h = out.narrow(2, h * d, d);
      at::div_out(out_h, parts.numerator, parts.normaliser);
    }
  }
  if (training)
    return at::cat(head_outputs, 2) + detail::depthwise_conv_reference(v, heads, dwc_weight, dwc_bias, grid_h, grid_w);
#ifdef LIT_WITH_CUDA
  if (q.is_cuda() && is_half_type(q.scalar_type())) {
    detail::depthwise_conv_cuda(v, heads, dwc_weight, dwc_bias, grid_h, grid_w, out, /*accumulate=*/true);
    return out;
  }
#endif
  return out.add_(detail::depthwise_conv_reference(v, heads, dwc_weight, dwc_bias, grid_h, grid_w));
}

}  // namespace lit::kernels
