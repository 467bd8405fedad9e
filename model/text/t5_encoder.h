// T5EncoderModel: the encoder half of T5 as Hugging Face transformers' modeling_t5 computes it, with the
// same module names, so that a checkpoint's state dict loads with nothing renamed (`shared.weight`,
// `encoder.block.{i}.layer.0.SelfAttention.q.weight`, ..., `encoder.final_layer_norm.weight`).
//
// What makes T5 T5 (each reproduced here, tests/text checks them against transformers' outputs):
// - T5LayerNorm is an RMS norm: no mean subtraction, no bias, the variance computed in float32, the
//   normalised activations cast back to the weight's dtype (bf16) before the scale.
// - T5Attention has no 1/sqrt(d_kv) scaling of the logits (folded into the initialisation) and no absolute
//   positions: a learned bias per (relative-position bucket, head), bidirectional buckets (half per
//   direction, exact up to num_buckets/4, logarithmic up to max_distance). Only layer 0 owns the table;
//   its bias is computed once and re-used by every layer. Padded keys get the dtype's most negative value
//   added to their logits; the softmax runs in float32.
// - The feed-forward is wo(act(wi_0 x) * wi_1 x) (v1.1 gated-gelu, tanh GELU) or wo(relu(wi x)) (v1.0).
// - Pre-norm residual blocks, then a final RMS norm. The embedding is not scaled.
// Rows of the output at padded positions are real outputs (their queries attend to the valid keys), as in
// transformers.
//
// Inference only, plain structs over ATen ops (as model/vae/vae_blocks.h): each holds its tensors and visits
// them by state-dict name. Built on the meta device (shapes only); the loader (t5_loader.h) fills it.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/text/t5_config.h"

namespace lit::text {

using ParamVisitor = std::function<void(const std::string& name, at::Tensor& tensor)>;

struct T5LayerNorm {
  T5LayerNorm() = default;
  T5LayerNorm(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& hidden_states) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  at::Tensor weight;  // (dim)
  double variance_epsilon = 1e-6;
};

struct T5Attention {
  T5Attention() = default;
  T5Attention(const T5Config& config, bool has_relative_attention_bias);

  // Bucket of each relative position (key - query), transformers' _relative_position_bucket.
  static at::Tensor relative_position_bucket(const at::Tensor& relative_position, bool bidirectional,
                                             int64_t num_buckets, int64_t max_distance);
  // (1, heads, query_length, key_length) in the table's dtype; only for the layer that owns the table.
  at::Tensor compute_bias(int64_t query_length, int64_t key_length) const;
  // hidden_states (B, L, d_model); position_bias (B or 1, heads, L, L), the padding mask already added.
  at::Tensor forward(const at::Tensor& hidden_states, const at::Tensor& position_bias) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  at::Tensor q, k, v, o;               // nn.Linear weights without bias: (inner, d_model) x3, (d_model, inner)
  at::Tensor relative_attention_bias;  // (num_buckets, heads), layer 0 only
  bool has_relative_attention_bias = false;
  int64_t n_heads = 0, key_value_proj_dim = 0;
  int64_t relative_attention_num_buckets = 32, relative_attention_max_distance = 128;
};

// T5DenseActDense (v1.0: wi, act, wo) or T5DenseGatedActDense (v1.1: act(wi_0) * wi_1, wo).
struct T5DenseActDense {
  T5DenseActDense() = default;
  explicit T5DenseActDense(const T5Config& config);
  at::Tensor forward(const at::Tensor& hidden_states) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  at::Tensor wi, wi_0, wi_1, wo;  // (d_ff, d_model) ...; (d_model, d_ff)
  bool gated = true;
  std::string act = "gelu_new";
};

struct T5Block {
  T5Block() = default;
  T5Block(const T5Config& config, bool has_relative_attention_bias);
  at::Tensor forward(const at::Tensor& hidden_states, const at::Tensor& position_bias) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  // layer.0: T5LayerSelfAttention, layer.1: T5LayerFF
  T5Attention self_attention;
  T5LayerNorm attention_layer_norm;
  T5DenseActDense dense_relu_dense;
  T5LayerNorm ff_layer_norm;
};

class T5EncoderModel {
 public:
  T5EncoderModel() = default;
  explicit T5EncoderModel(T5Config config);  // meta tensors, shapes only

  const T5Config& config() const { return config_; }
  at::Device device() const { return shared_.device(); }
  at::ScalarType dtype() const { return shared_.scalar_type(); }

  // input_ids (B, L) int64; attention_mask (B, L), 1 = token, 0 = padding (undefined: every token).
  // Returns last_hidden_state (B, L, d_model) in the model's dtype, on its device.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {}) const;

  // The position bias every layer adds: layer 0's compute_bias(L, L) plus the padding mask, (B, heads, L, L).
  at::Tensor position_bias(int64_t length, const at::Tensor& attention_mask) const;

  // Every tensor by its state-dict name; the embedding as "shared.weight" (transformers saves the encoder's
  // embed_tokens under that name).
  void visit(const ParamVisitor& fn);
  const T5Block& block(size_t i) const { return blocks_.at(i); }

 private:
  T5Config config_;
  at::Tensor shared_;  // (vocab_size, d_model)
  std::vector<T5Block> blocks_;
  T5LayerNorm final_layer_norm_;
};

}  // namespace lit::text
