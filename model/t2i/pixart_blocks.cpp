#include "model/t2i/pixart_blocks.h"

#include <cmath>
#include <limits>
#include <vector>

#include "common/error.h"
#include "kernels/adaln.h"
#include "kernels/linear_gelu.h"
#include "kernels/runtime/torch_compat.h"

namespace lit::t2i {

// ---------------------------------------------------------------------------------------------------------
// Position embedding
// ---------------------------------------------------------------------------------------------------------
namespace {

// (M,) float32 positions -> (M, embed_dim) float64 [sin(pos w), cos(pos w)], w_k = 1 / 10000^(k / (embed_dim/2)).
at::Tensor sincos_1d(int64_t embed_dim, const at::Tensor& pos) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor omega = 1.0 / at::pow(10000.0, at::arange(embed_dim / 2, f64) / (embed_dim / 2.0));
  const at::Tensor out = at::outer(pos.to(at::kDouble), omega);
  return at::cat({at::sin(out), at::cos(out)}, 1);
}

// arange(n) / (n / base_size) / pe_interpolation in float32, as numpy computes it on a float32 array.
at::Tensor axis_positions(int64_t n, int64_t base_size, double pe_interpolation) {
  const float step = static_cast<float>(static_cast<double>(n) / static_cast<double>(base_size));
  const float interp = static_cast<float>(pe_interpolation);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i) / step / interp;
  return at::tensor(v, at::TensorOptions().dtype(at::kFloat));
}

}  // namespace

at::Tensor pixart_pos_embed(int64_t embed_dim, int64_t grid_h, int64_t grid_w, double pe_interpolation,
                            int64_t base_size) {
  if (embed_dim % 4 != 0)
    throw Error("PixArt position embedding: dimension " + std::to_string(embed_dim) + " is not a multiple of 4");
  if (grid_h <= 0 || grid_w <= 0 || base_size <= 0)
    throw Error("PixArt position embedding: empty grid " + std::to_string(grid_h) + "x" + std::to_string(grid_w));
  const at::Tensor ph = axis_positions(grid_h, base_size, pe_interpolation);
  const at::Tensor pw = axis_positions(grid_w, base_size, pe_interpolation);
  const at::Tensor col = pw.repeat({grid_h});           // token i*w + j -> w coordinate j
  const at::Tensor row = ph.repeat_interleave(grid_w);  // token i*w + j -> h coordinate i
  return at::cat({sincos_1d(embed_dim / 2, col), sincos_1d(embed_dim / 2, row)}, 1).to(at::kFloat);
}

// ---------------------------------------------------------------------------------------------------------
// Caption embedder
// ---------------------------------------------------------------------------------------------------------
CaptionEmbedderImpl::CaptionEmbedderImpl(int64_t caption_channels, int64_t hidden_size, int64_t token_num,
                                         double uncond_prob, const at::TensorOptions& options)
    : torch::nn::Module("CaptionEmbedder"), uncond_prob(uncond_prob) {
  auto y_proj = register_module("y_proj", std::make_shared<torch::nn::Module>("Mlp"));
  fc1 = y_proj->register_module("fc1", dit::Linear(caption_channels, hidden_size, options));
  fc2 = y_proj->register_module("fc2", dit::Linear(hidden_size, hidden_size, options));
  y_embedding = register_buffer("y_embedding", at::empty({token_num, caption_channels}, options));
}

at::Tensor CaptionEmbedderImpl::token_drop(const at::Tensor& caption,
                                           const std::optional<at::Tensor>& force_drop_ids) const {
  const at::Tensor drop = force_drop_ids
                              ? force_drop_ids->to(caption.device()) == 1
                              : at::rand({caption.size(0)}, caption.options().dtype(at::kFloat)) < uncond_prob;
  if (caption.size(2) != y_embedding.size(0) || caption.size(3) != y_embedding.size(1))
    throw Error("PixArt caption dropout: captions of " + std::to_string(caption.size(2)) + " tokens x " +
                std::to_string(caption.size(3)) + " cannot be replaced by the null caption (" +
                std::to_string(y_embedding.size(0)) + " x " + std::to_string(y_embedding.size(1)) + ")");
  return at::where(drop.view({-1, 1, 1, 1}), y_embedding.to(caption.dtype()), caption);
}

at::Tensor CaptionEmbedderImpl::forward(const at::Tensor& caption, bool train,
                                        const std::optional<at::Tensor>& force_drop_ids) {
  const bool drop = (train && uncond_prob > 0) || force_drop_ids.has_value();
  const at::Tensor c = drop ? token_drop(caption, force_drop_ids) : caption;
  return fc2(kernels::linear_gelu_tanh(c, fc1->weight, fc1->bias));
}

// ---------------------------------------------------------------------------------------------------------
// Size embedder
// ---------------------------------------------------------------------------------------------------------
SizeEmbedderImpl::SizeEmbedderImpl(int64_t out_dim, const at::TensorOptions& options)
    : torch::nn::Module("SizeEmbedder") {
  auto mlp = register_module("mlp", std::make_shared<dit::Indexed>());
  mlp0 = mlp->add(0, dit::Linear(dit::TimestepEmbedderImpl::kFrequencyEmbeddingSize, out_dim, options));
  mlp2 = mlp->add(2, dit::Linear(out_dim, out_dim, options));
}

at::Tensor SizeEmbedderImpl::forward(const at::Tensor& s_in, int64_t batch) {
  at::Tensor s = s_in.dim() == 1 ? s_in.unsqueeze(1) : s_in;
  if (s.dim() != 2 || s.size(0) == 0 || batch % s.size(0) != 0)
    throw Error("PixArt micro-condition: expected (B, dims) values for a batch of " + std::to_string(batch));
  if (s.size(0) != batch) s = s.repeat({batch / s.size(0), 1});
  const int64_t dims = s.size(1);
  const at::Tensor freq = dit::timestep_embedding(s.reshape({-1}), dit::TimestepEmbedderImpl::kFrequencyEmbeddingSize)
                              .to(mlp0->weight.scalar_type());
  return mlp2(at::silu(mlp0(freq))).reshape({batch, dims * mlp2->weight.size(0)});
}

// ---------------------------------------------------------------------------------------------------------
// Cross-attention
// ---------------------------------------------------------------------------------------------------------
namespace {

// softmax(q k^T / sqrt(d)) v over (B, heads, N, d) x (B, heads, L, d), keys restricted to mask (B, L) bool.
at::Tensor masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask) {
  if (!mask.defined()) return compat::scaled_dot_product_attention(q, k, v);
  const at::Tensor key_mask = mask.view({mask.size(0), 1, 1, mask.size(1)});
#if LIT_TORCH_AT_LEAST(2, 0)
  if (!(q.device().is_cpu() && kernels::records_grad({q, k, v})))
    return at::scaled_dot_product_attention(q, k, v, key_mask);
#endif
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  const at::Tensor scores = at::matmul(q * scale, k.transpose(-2, -1))
                                .masked_fill(key_mask.logical_not(), -std::numeric_limits<double>::infinity());
  return at::matmul(at::softmax(scores, -1), v);
}

}  // namespace

MultiHeadCrossAttentionImpl::MultiHeadCrossAttentionImpl(int64_t dim, int64_t num_heads,
                                                         const at::TensorOptions& options)
    : torch::nn::Module("MultiHeadCrossAttention"), num_heads(num_heads) {
  q_linear = register_module("q_linear", dit::Linear(dim, dim, options));
  kv_linear = register_module("kv_linear", dit::Linear(dim, 2 * dim, options));
  proj = register_module("proj", dit::Linear(dim, dim, options));
}

at::Tensor MultiHeadCrossAttentionImpl::forward(const at::Tensor& x, const at::Tensor& cond, const at::Tensor& mask) {
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2), L = cond.size(1), d = D / num_heads;
  // Padded caption rows are zeroed: the official code never reads them, so neither may a NaN or inf there.
  const at::Tensor c = mask.defined() ? cond.masked_fill(mask.unsqueeze(-1).logical_not(), 0) : cond;
  const at::Tensor q = q_linear(x).view({B, N, num_heads, d}).transpose(1, 2);                // (B, h, N, d)
  const at::Tensor kv = kv_linear(c).view({B, L, 2, num_heads, d}).permute({2, 0, 3, 1, 4});  // (2, B, h, L, d)
  const at::Tensor out = masked_attention(q, kv[0], kv[1], mask);                             // (B, h, N, d)
  return proj(out.transpose(1, 2).reshape({B, N, D}));
}

// ---------------------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------------------
PixArtMSBlockImpl::PixArtMSBlockImpl(const PixArtConfig& config, const at::TensorOptions& options)
    : torch::nn::Module("PixArtMSBlock"), hidden_size(config.hidden_size) {
  const int64_t D = config.hidden_size;
  // norm1, norm2: LayerNorm without affine parameters, eps 1e-6.
  if (config.is_linear())
    attn = register_module("attn",
                           std::make_shared<dit::LinearAttention>(D, config.linear_heads, config.dwc_kernel, options));
  else
    attn = register_module("attn", std::make_shared<dit::SoftmaxAttention>(D, config.num_heads, options));
  cross_attn = register_module("cross_attn", MultiHeadCrossAttention(D, config.num_heads, options));
  mlp = register_module("mlp", dit::Mlp(D, config.mlp_hidden_size(), options));
  scale_shift_table = register_parameter("scale_shift_table", at::empty({6, D}, options));
}

at::Tensor PixArtMSBlockImpl::forward(const at::Tensor& x, const at::Tensor& y, const at::Tensor& t0,
                                      const at::Tensor& mask, int64_t grid_h, int64_t grid_w,
                                      const ActivationTrace* trace, const std::string& trace_prefix) {
  const int64_t B = x.size(0);
  const auto m = (scale_shift_table.unsqueeze(0) + t0.reshape({B, 6, -1})).chunk(6, /*dim=*/1);  // (B, 1, D) each
  auto row = [](const at::Tensor& v) { return v.squeeze(1); };                                   // (B, D)
  const at::Tensor a =
      attn->forward(kernels::layer_norm_modulate(x, row(m[0]), row(m[1])), grid_h, grid_w);  // shift_msa, scale_msa
  if (trace) (*trace)(trace_prefix + "attn_out", a);
  at::Tensor h = x + m[2] * a;  // gate_msa
  const at::Tensor c = cross_attn(h, y, mask);
  if (trace) (*trace)(trace_prefix + "cross_attn_out", c);
  h = h + c;
  return h + m[5] * mlp(kernels::layer_norm_modulate(h, row(m[3]), row(m[4])));  // gate, shift, scale (mlp)
}

// ---------------------------------------------------------------------------------------------------------
// Final layer
// ---------------------------------------------------------------------------------------------------------
T2IFinalLayerImpl::T2IFinalLayerImpl(int64_t hidden_size, int64_t patch_size, int64_t out_channels,
                                     const at::TensorOptions& options)
    : torch::nn::Module("T2IFinalLayer") {
  linear = register_module("linear", dit::Linear(hidden_size, patch_size * patch_size * out_channels, options));
  scale_shift_table = register_parameter("scale_shift_table", at::empty({2, hidden_size}, options));
}

at::Tensor T2IFinalLayerImpl::forward(const at::Tensor& x, const at::Tensor& t) {
  const auto m = (scale_shift_table.unsqueeze(0) + t.unsqueeze(1)).chunk(2, /*dim=*/1);  // shift, scale (B, 1, D)
  return linear(kernels::layer_norm_modulate(x, m[0].squeeze(1), m[1].squeeze(1)));
}

}  // namespace lit::t2i
