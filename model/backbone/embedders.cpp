#include "model/backbone/embedders.h"

#include <cmath>

#include "common/error.h"

namespace lit::dit {

// ---------------------------------------------------------------------------------------------------------
// Patch embedding
// ---------------------------------------------------------------------------------------------------------
PatchEmbedImpl::PatchEmbedImpl(int64_t patch_size, int64_t in_channels, int64_t hidden_size,
                               const at::TensorOptions& options)
    : torch::nn::Module("PatchEmbed") {
  proj = register_module("proj", Conv2d(in_channels, hidden_size, /*kernel=*/patch_size, /*stride=*/patch_size,
                                        /*padding=*/0, /*groups=*/1, options));
}

at::Tensor PatchEmbedImpl::forward(const at::Tensor& x) {
  return proj(x).flatten(2).transpose(1, 2);  // (B, D, h, w) -> (B, h*w, D)
}

// ---------------------------------------------------------------------------------------------------------
// 2-D sin-cos position embedding
// ---------------------------------------------------------------------------------------------------------
namespace {

// (M,) positions -> (M, embed_dim) [sin(pos w), cos(pos w)], w_k = 1 / 10000^(k / (embed_dim/2)), float64.
at::Tensor sincos_1d(int64_t embed_dim, const at::Tensor& pos) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor omega = 1.0 / at::pow(10000.0, at::arange(embed_dim / 2, f64) / (embed_dim / 2.0));
  const at::Tensor out = at::outer(pos, omega);  // (M, D/2)
  return at::cat({at::sin(out), at::cos(out)}, 1);
}

}  // namespace

at::Tensor sincos_pos_embed_2d(int64_t embed_dim, int64_t grid_size) {
  if (embed_dim % 4 != 0)
    throw Error("sin-cos position embedding: dimension " + std::to_string(embed_dim) + " is not a multiple of 4");
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor idx = at::arange(grid_size, f64);
  const at::Tensor col = idx.repeat({grid_size});                                     // token i*G + j -> j
  const at::Tensor row = idx.repeat_interleave(grid_size);                            // token i*G + j -> i
  return at::cat({sincos_1d(embed_dim / 2, col), sincos_1d(embed_dim / 2, row)}, 1);  // (G*G, D)
}

// ---------------------------------------------------------------------------------------------------------
// Timestep embedding
// ---------------------------------------------------------------------------------------------------------
at::Tensor timestep_frequencies(int64_t dim, double max_period) {
  const int64_t half = dim / 2;
  return at::exp(at::arange(0, half, at::TensorOptions().dtype(at::kFloat)) * (-std::log(max_period)) / half);
}

at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double max_period) {
  return timestep_embedding(t, dim, timestep_frequencies(dim, max_period).to(t.device()));
}

at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, const at::Tensor& freqs) {
  const at::Tensor args = t.unsqueeze(1).to(at::kFloat) * freqs.unsqueeze(0);
  at::Tensor embedding = at::cat({at::cos(args), at::sin(args)}, -1);
  if (dim % 2) embedding = at::cat({embedding, at::zeros_like(embedding.narrow(1, 0, 1))}, -1);
  return embedding;
}

TimestepEmbedderImpl::TimestepEmbedderImpl(int64_t hidden_size, const at::TensorOptions& options)
    : torch::nn::Module("TimestepEmbedder") {
  auto mlp = register_module("mlp", std::make_shared<Indexed>());
  mlp0 = mlp->add(0, Linear(kFrequencyEmbeddingSize, hidden_size, options));
  mlp2 = mlp->add(2, Linear(hidden_size, hidden_size, options));
}

at::Tensor TimestepEmbedderImpl::forward(const at::Tensor& t) {
  if (!freqs_.defined() || freqs_.device() != t.device())
    freqs_ = timestep_frequencies(kFrequencyEmbeddingSize).to(t.device());
  const at::Tensor t_freq = timestep_embedding(t, kFrequencyEmbeddingSize, freqs_).to(mlp0->weight.scalar_type());
  return mlp2(at::silu(mlp0(t_freq)));
}

// ---------------------------------------------------------------------------------------------------------
// Label embedding
// ---------------------------------------------------------------------------------------------------------
LabelEmbedderImpl::LabelEmbedderImpl(int64_t num_classes, int64_t hidden_size, double dropout_prob,
                                     const at::TensorOptions& options)
    : torch::nn::Module("LabelEmbedder"), num_classes(num_classes), dropout_prob(dropout_prob) {
  const bool use_cfg_embedding = dropout_prob > 0;
  embedding_table =
      register_module("embedding_table", Embedding(num_classes + use_cfg_embedding, hidden_size, options));
}

at::Tensor LabelEmbedderImpl::token_drop(const at::Tensor& labels,
                                         const std::optional<at::Tensor>& force_drop_ids) const {
  const at::Tensor drop = force_drop_ids
                              ? force_drop_ids->to(labels.device()) == 1
                              : at::rand({labels.size(0)}, labels.options().dtype(at::kFloat)) < dropout_prob;
  return at::where(drop, at::full_like(labels, num_classes), labels);
}

at::Tensor LabelEmbedderImpl::forward(const at::Tensor& labels, bool train,
                                      const std::optional<at::Tensor>& force_drop_ids) {
  const bool use_dropout = dropout_prob > 0;
  const at::Tensor ids = (train && use_dropout) || force_drop_ids ? token_drop(labels, force_drop_ids) : labels;
  return embedding_table(ids);
}

}  // namespace lit::dit
