#include "kernels/linear_attention.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

#include "kernels/linear_attention_parts.h"
#include "kernels/runtime/cuda_support.h"

#ifdef LIT_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/autograd.h>

#include <stdexcept>

#include "kernels/linear_attention_cuda.h"
#endif

namespace lit::kernels {
namespace {

// (B, N, D) -> (B, heads, N, d): head h owns channels h*d .. h*d + d-1.
at::Tensor split_heads(const at::Tensor& t, int64_t heads) {
  return t.reshape({t.size(0), t.size(1), heads, t.size(2) / heads}).permute({0, 2, 1, 3});
}

// (B, heads, N, d) -> (B, N, D) with channel head*d + j.
at::Tensor merge_heads(const at::Tensor& t) {
  return t.transpose(1, 2).reshape({t.size(0), t.size(2), t.size(1) * t.size(3)});
}

}  // namespace
}  // namespace lit::kernels

namespace lit::kernels::detail {

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

// The kernel function phi(x) = relu(x) + 1e-6 keeps every q.k similarity positive.
at::Tensor phi(const at::Tensor& x) {
  return at::relu(x) + 1e-6;
}

// Depthwise convolution on v, one image per (batch, head): (B*h, N, d) -> (B*h, d, H, W), weights shared
// by the heads; the result is read back as (B, N, D) with channel head*d + j.
at::Tensor depthwise_conv_reference(const at::Tensor& v, int64_t heads, const at::Tensor& dwc_weight,
                                    const at::Tensor& dwc_bias, int64_t grid_h, int64_t grid_w) {
  const int64_t B = v.size(0), N = v.size(1), D = v.size(2), d = D / heads;
  const at::Tensor v_img = split_heads(v, heads).reshape({B * heads, grid_h, grid_w, d}).permute({0, 3, 1, 2});
  const int64_t pad = dwc_weight.size(2) / 2;
  const at::Tensor local = at::conv2d(v_img, dwc_weight, dwc_bias, /*stride=*/1, /*padding=*/pad, /*dilation=*/1,
                                      /*groups=*/d);
  return local.reshape({B, D, N}).permute({0, 2, 1});
}

}  // namespace lit::kernels::detail

namespace lit::kernels {
using detail::check_arguments;
using detail::depthwise_conv_reference;
using detail::phi;

at::Tensor linear_attention_core_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           int64_t heads) {
  const int64_t N = q.size(1);
  const at::Tensor qh = split_heads(phi(q), heads);
  const at::Tensor kh = split_heads(phi(k), heads);
  const at::Tensor vh = split_heads(v, heads);

  // Per-query normaliser: 1 / (q . mean_N(k) + eps).                                         (B, h, N, 1)
  const at::Tensor z = 1 / (at::matmul(qh, kh.mean(-2, /*keepdim=*/true).transpose(-2, -1)) + 1e-6);

  // The d x d state K^T V, both factors scaled by N^-1/2 to keep the sum's magnitude independent of N.
  const double scale = std::pow(static_cast<double>(N), -0.5);
  const at::Tensor kv = at::matmul(kh.transpose(-2, -1) * scale, vh * scale);  //          (B, h, d, d)

  // o = (q kv) * z, heads merged back to (B, N, D) as head*d + j.
  return merge_heads(at::matmul(qh, kv) * z);
}

at::Tensor linear_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                      const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h,
                                      int64_t grid_w) {
  check_arguments(q, k, v, heads, dwc_weight, dwc_bias, grid_h, grid_w);
  return linear_attention_core_reference(q, k, v, heads) +
         depthwise_conv_reference(v, heads, dwc_weight, dwc_bias, grid_h, grid_w);
}

LinearAttentionGrads linear_attention_core_backward_reference(const at::Tensor& q, const at::Tensor& k,
                                                              const at::Tensor& v, int64_t heads,
                                                              const at::Tensor& grad_out) {
  const double inv_n = 1.0 / static_cast<double>(q.size(1));
  const at::Tensor qh = split_heads(phi(q), heads), kh = split_heads(phi(k), heads), vh = split_heads(v, heads);
  const at::Tensor dout = split_heads(grad_out, heads);
  const at::Tensor S = at::matmul(kh.transpose(-2, -1), vh) * inv_n;          // (B, h, d, d)
  const at::Tensor m = kh.mean(-2, /*keepdim=*/true);                         // (B, h, 1, d)
  const at::Tensor z = 1 / (at::matmul(qh, m.transpose(-2, -1)) + 1e-6);      // (B, h, N, 1)
  const at::Tensor g = (dout * at::matmul(qh, S)).sum(-1, /*keepdim=*/true);  // dO . (Q S)
  const at::Tensor zzg = z * z * g;
  const at::Tensor dq = (z * at::matmul(dout, S.transpose(-2, -1)) - zzg * m) * split_heads(q > 0, heads);
  const at::Tensor dS = at::matmul(qh.transpose(-2, -1), z * dout);
  const at::Tensor dm = -at::matmul(zzg.transpose(-2, -1), qh);  // (B, h, 1, d)
  const at::Tensor dk = (at::matmul(vh, dS.transpose(-2, -1)) + dm) * inv_n * split_heads(k > 0, heads);
  const at::Tensor dv = at::matmul(kh, dS) * inv_n;
  return {merge_heads(dq), merge_heads(dk), merge_heads(dv)};
}

#ifdef LIT_WITH_CUDA
namespace {

bool fused_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return q.is_cuda() && is_half_type(q.scalar_type()) && k.scalar_type() == q.scalar_type() &&
         v.scalar_type() == q.scalar_type() && k.device() == q.device() && v.device() == q.device();
}

cuda::DType checked_dtype(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const char* what) {
  TORCH_CHECK(fused_applies(q, k, v), what, ": CUDA tensors of one dtype, bf16 or fp16, expected; got ",
              q.scalar_type(), " on ", q.device());
  return *cuda_element_type(q.scalar_type());
}

// The kernels read tokens with a row stride and contiguous channels; anything else is copied once.
at::Tensor token_layout(const at::Tensor& t) {
  if (t.stride(2) == 1 && t.stride(0) == t.size(1) * t.stride(1)) return t;
  return t.contiguous();
}

cuda::HeadMajor view_of(const at::Tensor& t) {
  return {t.data_ptr(), t.stride(1)};
}

cuda::Problem problem_of(const at::Tensor& q, int64_t heads) {
  return {q.size(0), q.size(1), heads, q.size(2) / heads};
}

void* current_stream() {
  return c10::cuda::getCurrentCUDAStream().stream();
}

template <typename Fn>
void run_launcher(Fn&& fn) {
  try {
    fn();
  } catch (const std::runtime_error& e) {
    TORCH_CHECK(false, e.what());
  }
}

// The reduction over tokens with its split partial sums added up: (B*h, d, d) and, when colsum, (B*h, d).
std::pair<at::Tensor, at::Tensor> run_state(cuda::DType dtype, const cuda::Problem& p, cuda::StateArgs args,
                                            bool colsum, const at::TensorOptions& f32) {
  const int splits = cuda::state_splits(p, args);
  const int64_t bh = p.batch * p.heads, d = p.head_dim;
  at::Tensor state = at::empty({splits, bh, d, d}, f32);
  at::Tensor sums = colsum ? at::empty({splits, bh, d}, f32) : at::Tensor();
  args.state = state.data_ptr<float>();
  args.colsum = colsum ? sums.data_ptr<float>() : nullptr;
  run_launcher([&] { cuda::linear_attention_state(dtype, p, args, current_stream()); });
  if (splits > 1) {
    state = state.sum(0);
    if (colsum) sums = sums.sum(0);
  } else {
    state = state[0];
    if (colsum) sums = sums[0];
  }
  return {state, sums};
}

struct CoreForward {
  at::Tensor out, state, m, z;
};

}  // namespace

void detail::depthwise_conv_cuda(const at::Tensor& v_in, int64_t heads, const at::Tensor& dwc_weight,
                                 const at::Tensor& dwc_bias, int64_t grid_h, int64_t grid_w, const at::Tensor& out,
                                 bool accumulate, int version) {
  const cuda::DType dtype = checked_dtype(v_in, v_in, out, "depthwise_conv_cuda");
  TORCH_CHECK(out.dim() == 3 && out.sizes() == v_in.sizes() && out.stride(2) == 1,
              "depthwise_conv_cuda: out must be (B, N, D) like v with contiguous channels");
  const c10::cuda::CUDAGuard guard(v_in.device());
  const at::Tensor v = token_layout(v_in);
  const cuda::Problem p = problem_of(v, heads);
  const int64_t kk = dwc_weight.size(2), d = p.head_dim;
  const auto f32 = v.options().dtype(at::kFloat);
  const at::Tensor w = dwc_weight.to(f32).reshape({d, kk * kk}).t().contiguous();  // tap-major (k*k, d)
  const at::Tensor b = dwc_bias.defined() ? dwc_bias.to(f32).contiguous() : at::Tensor();
  cuda::DwcArgs da;
  da.v = view_of(v);
  da.weight = w.data_ptr<float>();
  da.bias = b.defined() ? b.data_ptr<float>() : nullptr;
  da.kernel = static_cast<int>(kk);
  da.grid_h = grid_h;
  da.grid_w = grid_w;
  da.accumulate = accumulate;
  da.out = out.data_ptr();
  da.out_row_stride = out.stride(1);
  da.version = version;
  run_launcher([&] { cuda::depthwise_conv_tokens(dtype, p, da, current_stream()); });
}

namespace {

// Whether a (B, N, D) token tensor can be read in 16-byte vectors.
bool rows16(const at::Tensor& t, int64_t d) {
  return d % 8 == 0 && t.stride(1) % 8 == 0 && reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

// The state as the product kernel v2 reads it: rounded to the element type, and the rest rounded again.
std::pair<at::Tensor, at::Tensor> split_state(const at::Tensor& state, at::ScalarType dtype) {
  const at::Tensor hi = state.to(dtype);
  return {hi, (state - hi.to(at::kFloat)).to(dtype)};
}

// out = (phi(q) S) z (+ dwc(v) when dwc_weight is defined). keep: also return the float32 state and z (the
// backward needs them). version: see linear_attention_cuda().
CoreForward core_forward(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in, int64_t heads,
                         const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h, int64_t grid_w,
                         bool keep, int version) {
  const cuda::DType dtype = checked_dtype(q_in, k_in, v_in, "linear_attention_cuda");
  TORCH_CHECK(version >= 0 && version <= 3, "linear_attention_cuda: no kernel version ", version);
  const c10::cuda::CUDAGuard guard(q_in.device());
  const at::Tensor q = token_layout(q_in), k = token_layout(k_in), v = token_layout(v_in);
  const cuda::Problem p = problem_of(q, heads);
  const auto f32 = q.options().dtype(at::kFloat);
  const float inv_n = 1.0f / static_cast<float>(p.tokens);
  const int64_t bh = p.batch * p.heads, d = p.head_dim;
  const bool v2 = version != 1 && rows16(q, d) && rows16(k, d) && rows16(v, d);
  TORCH_CHECK(v2 || version < 2, "linear_attention_cuda: version ", version,
              " needs head dims and strides that are "
              "multiples of 8 elements");
  const bool low = version != 3;

  cuda::StateArgs sa;
  sa.x = view_of(k);
  sa.x_transform = cuda::Transform::Phi;
  sa.y = view_of(v);
  sa.alpha = inv_n;
  sa.col_alpha = inv_n;
  sa.version = v2 ? 2 : 1;
  CoreForward f;
  at::Tensor s_hi, s_lo;
  if (v2 && cuda::state_splits(p, sa) == 1) {
    // One split: the reduction writes the pair directly (and the float32 state only when kept).
    s_hi = at::empty({bh, d, d}, q.options());
    s_lo = low ? at::empty({bh, d, d}, q.options()) : at::Tensor();
    if (keep) f.state = at::empty({bh, d, d}, f32);
    f.m = at::empty({bh, d}, f32);
    sa.state = keep ? f.state.data_ptr<float>() : nullptr;
    sa.state_hi = s_hi.data_ptr();
    sa.state_lo = low ? s_lo.data_ptr() : nullptr;
    sa.colsum = f.m.data_ptr<float>();
    run_launcher([&] { cuda::linear_attention_state(dtype, p, sa, current_stream()); });
  } else {
    std::tie(f.state, f.m) = run_state(dtype, p, sa, /*colsum=*/true, f32);
    if (v2) std::tie(s_hi, s_lo) = split_state(f.state, q.scalar_type());
  }

  f.out = at::empty({p.batch, p.tokens, p.heads * p.head_dim}, q.options());
  cuda::ApplyArgs aa;
  if (dwc_weight.defined()) {
    detail::depthwise_conv_cuda(v, heads, dwc_weight, dwc_bias, grid_h, grid_w, f.out, /*accumulate=*/false,
                                version == 1 ? 1 : 0);
    aa.accumulate = true;
  }
  if (keep) f.z = at::empty({bh, p.tokens}, f32);
  aa.a = view_of(q);
  aa.a_transform = cuda::Transform::Phi;
  if (v2) {
    aa.s_hi = s_hi.data_ptr();
    aa.s_lo = low ? s_lo.data_ptr() : nullptr;
  } else {
    aa.s = f.state.data_ptr<float>();
  }
  aa.z_m = f.m.data_ptr<float>();
  aa.z_out = keep ? f.z.data_ptr<float>() : nullptr;
  aa.out = f.out.data_ptr();
  aa.out_row_stride = f.out.stride(1);
  run_launcher([&] { cuda::linear_attention_apply(dtype, p, aa, current_stream()); });
  return f;
}

LinearAttentionGrads core_backward(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                   int64_t heads, const CoreForward& f, const at::Tensor& grad_out) {
  const cuda::DType dtype = checked_dtype(q_in, k_in, v_in, "linear attention backward");
  const c10::cuda::CUDAGuard guard(q_in.device());
  const at::Tensor q = token_layout(q_in), k = token_layout(k_in), v = token_layout(v_in);
  const at::Tensor dout = grad_out.to(q.scalar_type()).contiguous();
  const cuda::Problem p = problem_of(q, heads);
  const auto f32 = q.options().dtype(at::kFloat);
  const float inv_n = 1.0f / static_cast<float>(p.tokens);
  const int64_t B = p.batch, N = p.tokens, h = p.heads, d = p.head_dim;

  // g_n = dO_n . (Q_n S) = dO_n . o_n / z_n per (batch, head, token), then z_n^2 g_n.
  const at::Tensor z = f.z;  // (B*h, N)
  const at::Tensor g = (dout.to(at::kFloat) * f.out.to(at::kFloat)).view({B, N, h, d}).sum(-1).permute({0, 2, 1});
  const at::Tensor zzg = (g.reshape({B * h, N}) * z).contiguous();  // z^2 g = (dO . o) z

  cuda::ApplyArgs aq;  // dq = relu'(q) (z dO S^T - z^2 g m)
  LinearAttentionGrads grads;
  grads.q = at::empty({B, N, h * d}, q.options());
  aq.a = view_of(dout);
  aq.s = f.state.data_ptr<float>();
  aq.s_transposed = true;
  aq.row_scale = z.data_ptr<float>();
  aq.row_coef = zzg.data_ptr<float>();
  aq.col_vec = f.m.data_ptr<float>();
  aq.mask = view_of(q);
  aq.out = grads.q.data_ptr();
  aq.out_row_stride = grads.q.stride(1);
  run_launcher([&] { cuda::linear_attention_apply(dtype, p, aq, current_stream()); });

  cuda::StateArgs sa;  // dS = sum_n Q_n^T (z_n dO_n), dm = -sum_n z_n^2 g_n Q_n
  sa.x = view_of(q);
  sa.x_transform = cuda::Transform::Phi;
  sa.y = view_of(dout);
  sa.y_row_scale = z.data_ptr<float>();
  sa.col_weight = zzg.data_ptr<float>();
  sa.col_alpha = -1.0f;
  const auto [dS, dm] = run_state(dtype, p, sa, /*colsum=*/true, f32);
  const at::Tensor dm_n = (dm * inv_n).contiguous();

  cuda::ApplyArgs ak;  // dk = relu'(k) (V dS^T + dm) / N
  grads.k = at::empty({B, N, h * d}, q.options());
  ak.a = view_of(v);
  ak.s = dS.data_ptr<float>();
  ak.s_transposed = true;
  ak.alpha = inv_n;
  ak.col_add = dm_n.data_ptr<float>();
  ak.mask = view_of(k);
  ak.out = grads.k.data_ptr();
  ak.out_row_stride = grads.k.stride(1);
  run_launcher([&] { cuda::linear_attention_apply(dtype, p, ak, current_stream()); });

  cuda::ApplyArgs av;  // dv = K dS / N
  grads.v = at::empty({B, N, h * d}, q.options());
  av.a = view_of(k);
  av.a_transform = cuda::Transform::Phi;
  av.s = dS.data_ptr<float>();
  av.alpha = inv_n;
  av.out = grads.v.data_ptr();
  av.out_row_stride = grads.v.stride(1);
  run_launcher([&] { cuda::linear_attention_apply(dtype, p, av, current_stream()); });
  return grads;
}

struct LinearAttentionCore : public torch::autograd::Function<LinearAttentionCore> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, int64_t heads) {
    const CoreForward f = core_forward(q, k, v, heads, at::Tensor(), at::Tensor(), 0, 0, /*keep=*/true, 0);
    ctx->save_for_backward({q, k, v, f.out, f.state, f.m, f.z});
    ctx->saved_data["heads"] = heads;
    return f.out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    CoreForward f;
    f.out = saved[3];
    f.state = saved[4];
    f.m = saved[5];
    f.z = saved[6];
    const LinearAttentionGrads g =
        core_backward(saved[0], saved[1], saved[2], ctx->saved_data["heads"].toInt(), f, grad_outputs[0]);
    return {g.q, g.k, g.v, at::Tensor()};
  }
};

}  // namespace

at::Tensor linear_attention_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                 const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h,
                                 int64_t grid_w, int version) {
  check_arguments(q, k, v, heads, dwc_weight, dwc_bias, grid_h, grid_w);
  const at::NoGradGuard no_grad;
  return core_forward(q, k, v, heads, dwc_weight, dwc_bias, grid_h, grid_w, /*keep=*/false, version).out;
}

at::Tensor linear_attention_core_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads) {
  TORCH_CHECK(q.dim() == 3 && k.sizes() == q.sizes() && v.sizes() == q.sizes() && heads > 0 && q.size(2) % heads == 0,
              "linear_attention_core_cuda: q, k, v must be (B, N, D) with D divisible by heads");
  checked_dtype(q, k, v, "linear_attention_core_cuda");
// GCC 13 reports a false -Warray-bounds inside LibTorch's Function::apply (a std::vector<bool>::reserve it
// inlines); the code is LibTorch's, the warning is not about ours.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif
  return LinearAttentionCore::apply(q, k, v, heads);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
}

#else
at::Tensor linear_attention_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, const at::Tensor&,
                                 const at::Tensor&, int64_t, int64_t, int) {
  TORCH_CHECK(false, "linear_attention_cuda: this build has no CUDA kernels (configure with LIT_CUDA=ON)");
}

at::Tensor linear_attention_core_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t) {
  TORCH_CHECK(false, "linear_attention_core_cuda: this build has no CUDA kernels (configure with LIT_CUDA=ON)");
}

namespace {
bool fused_applies(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  return false;
}
}  // namespace
#endif

at::Tensor linear_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                            const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h, int64_t grid_w,
                            AttentionImpl impl, Pass pass) {
  check_arguments(q, k, v, heads, dwc_weight, dwc_bias, grid_h, grid_w);
  if (impl == AttentionImpl::Reference)
    return linear_attention_reference(q, k, v, heads, dwc_weight, dwc_bias, grid_h, grid_w);
  if (impl == AttentionImpl::Composed)
    return linear_attention_composed(q, k, v, heads, dwc_weight, dwc_bias, grid_h, grid_w, ComposedForm::Auto, pass);
  if (fused_applies(q, k, v)) {
    if (pass == Pass::Inference && !records_grad({q, k, v, dwc_weight, dwc_bias}))
      return linear_attention_cuda(q, k, v, heads, dwc_weight, dwc_bias, grid_h, grid_w);
    // Training: the attention's own backward kernels, the convolution through ATen's autograd.
    return linear_attention_core_cuda(q, k, v, heads) +
           depthwise_conv_reference(v, heads, dwc_weight, dwc_bias, grid_h, grid_w);
  }
  if (q.device().is_cpu())
    return linear_attention_composed(q, k, v, heads, dwc_weight, dwc_bias, grid_h, grid_w, ComposedForm::Auto, pass);
  return linear_attention_reference(q, k, v, heads, dwc_weight, dwc_bias, grid_h, grid_w);
}

}  // namespace lit::kernels
