#include "model/text/t5_encoder.h"

#include <cmath>
#include <limits>

#include "common/error.h"

namespace lit::text {
namespace {

at::Tensor meta(at::IntArrayRef shape) {
  return at::empty(shape, at::TensorOptions().device(at::kMeta).dtype(at::kFloat));
}

// transformers' ACT2FN for the names T5 configs use. gelu_new is NewGELUActivation written out term by term
// as transformers writes it (not at::gelu(x, "tanh")), so that bf16 rounds where the reference rounds.
at::Tensor activation(const std::string& name, const at::Tensor& x) {
  if (name == "gelu_new") return 0.5 * x * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * at::pow(x, 3.0))));
  if (name == "relu") return at::relu(x);
  if (name == "gelu") return at::gelu(x);
  if (name == "silu") return at::silu(x);
  throw Error("T5: unsupported activation '" + name + "'");
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// T5LayerNorm
// ---------------------------------------------------------------------------------------------------------
T5LayerNorm::T5LayerNorm(int64_t dim, double eps) : weight(meta({dim})), variance_epsilon(eps) {}

at::Tensor T5LayerNorm::forward(const at::Tensor& hidden_states) const {
  // Root mean square only (no mean, no bias); the variance in float32 whatever the activations' dtype.
  const at::Tensor variance = hidden_states.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true);
  at::Tensor h = hidden_states * at::rsqrt(variance + variance_epsilon);
  if (weight.scalar_type() == at::kHalf || weight.scalar_type() == at::kBFloat16) h = h.to(weight.scalar_type());
  return weight * h;
}

void T5LayerNorm::visit(const std::string& prefix, const ParamVisitor& fn) {
  fn(prefix + "weight", weight);
}

// ---------------------------------------------------------------------------------------------------------
// T5Attention
// ---------------------------------------------------------------------------------------------------------
T5Attention::T5Attention(const T5Config& config, bool has_bias)
    : q(meta({config.inner_dim(), config.d_model})),
      k(meta({config.inner_dim(), config.d_model})),
      v(meta({config.inner_dim(), config.d_model})),
      o(meta({config.d_model, config.inner_dim()})),
      has_relative_attention_bias(has_bias),
      n_heads(config.num_heads),
      key_value_proj_dim(config.d_kv),
      relative_attention_num_buckets(config.relative_attention_num_buckets),
      relative_attention_max_distance(config.relative_attention_max_distance) {
  if (has_bias) relative_attention_bias = meta({config.relative_attention_num_buckets, config.num_heads});
}

at::Tensor T5Attention::relative_position_bucket(const at::Tensor& relative_position, bool bidirectional,
                                                 int64_t num_buckets, int64_t max_distance) {
  at::Tensor relative_buckets = at::zeros_like(relative_position);
  at::Tensor position = relative_position;
  if (bidirectional) {
    num_buckets /= 2;  // half the buckets for keys after the query, half for keys before
    relative_buckets = relative_buckets + (position > 0).to(at::kLong) * num_buckets;
    position = at::abs(position);
  } else {
    position = -at::min(position, at::zeros_like(position));
  }
  // Half of the buckets are exact increments in position; the other half grow logarithmically up to
  // max_distance, beyond which everything shares the last bucket.
  const int64_t max_exact = num_buckets / 2;
  const at::Tensor is_small = position < max_exact;
  at::Tensor if_large = max_exact + (at::log(position.to(at::kFloat) / static_cast<double>(max_exact)) /
                                     std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
                                     static_cast<double>(num_buckets - max_exact))
                                        .to(at::kLong);
  if_large = at::min(if_large, at::full_like(if_large, num_buckets - 1));
  return relative_buckets + at::where(is_small, position, if_large);
}

at::Tensor T5Attention::compute_bias(int64_t query_length, int64_t key_length) const {
  if (!has_relative_attention_bias) throw Error("T5: compute_bias on a layer without the relative position table");
  const auto opts = at::TensorOptions().dtype(at::kLong).device(relative_attention_bias.device());
  const at::Tensor context_position = at::arange(query_length, opts).unsqueeze(1);
  const at::Tensor memory_position = at::arange(key_length, opts).unsqueeze(0);
  const at::Tensor relative_position = memory_position - context_position;  // (query, key)
  const at::Tensor buckets = relative_position_bucket(relative_position, /*bidirectional=*/true,
                                                      relative_attention_num_buckets, relative_attention_max_distance);
  const at::Tensor values = at::embedding(relative_attention_bias, buckets);  // (query, key, heads)
  return values.permute({2, 0, 1}).unsqueeze(0);                              // (1, heads, query, key)
}

at::Tensor T5Attention::forward(const at::Tensor& hidden_states, const at::Tensor& position_bias) const {
  const int64_t B = hidden_states.size(0);
  auto shape = [&](const at::Tensor& x) {  // (B, L, inner) -> (B, heads, L, d_kv)
    return x.view({B, -1, n_heads, key_value_proj_dim}).transpose(1, 2);
  };
  const at::Tensor query_states = shape(at::linear(hidden_states, q));
  const at::Tensor key_states = shape(at::linear(hidden_states, k));
  const at::Tensor value_states = shape(at::linear(hidden_states, v));

  // No 1/sqrt(d_kv): T5 folds it into the initialisation of q.
  at::Tensor scores = at::matmul(query_states, key_states.transpose(3, 2));
  scores = scores + position_bias;
  const at::Tensor attn_weights = at::softmax(scores.to(at::kFloat), -1).to(scores.scalar_type());
  at::Tensor attn_output = at::matmul(attn_weights, value_states);
  attn_output = attn_output.transpose(1, 2).contiguous().view({B, -1, n_heads * key_value_proj_dim});
  return at::linear(attn_output, o);
}

void T5Attention::visit(const std::string& prefix, const ParamVisitor& fn) {
  fn(prefix + "q.weight", q);
  fn(prefix + "k.weight", k);
  fn(prefix + "v.weight", v);
  fn(prefix + "o.weight", o);
  if (has_relative_attention_bias) fn(prefix + "relative_attention_bias.weight", relative_attention_bias);
}

// ---------------------------------------------------------------------------------------------------------
// Feed-forward
// ---------------------------------------------------------------------------------------------------------
T5DenseActDense::T5DenseActDense(const T5Config& config)
    : wo(meta({config.d_model, config.d_ff})), gated(config.is_gated_act()), act(config.dense_act_fn()) {
  if (gated) {
    wi_0 = meta({config.d_ff, config.d_model});
    wi_1 = meta({config.d_ff, config.d_model});
  } else {
    wi = meta({config.d_ff, config.d_model});
  }
}

at::Tensor T5DenseActDense::forward(const at::Tensor& hidden_states) const {
  at::Tensor h = gated ? activation(act, at::linear(hidden_states, wi_0)) * at::linear(hidden_states, wi_1)
                       : activation(act, at::linear(hidden_states, wi));
  if (h.scalar_type() != wo.scalar_type()) h = h.to(wo.scalar_type());  // as transformers (a float32 wo)
  return at::linear(h, wo);
}

void T5DenseActDense::visit(const std::string& prefix, const ParamVisitor& fn) {
  if (gated) {
    fn(prefix + "wi_0.weight", wi_0);
    fn(prefix + "wi_1.weight", wi_1);
  } else {
    fn(prefix + "wi.weight", wi);
  }
  fn(prefix + "wo.weight", wo);
}

// ---------------------------------------------------------------------------------------------------------
// T5Block and the encoder
// ---------------------------------------------------------------------------------------------------------
T5Block::T5Block(const T5Config& config, bool has_relative_attention_bias)
    : self_attention(config, has_relative_attention_bias),
      attention_layer_norm(config.d_model, config.layer_norm_epsilon),
      dense_relu_dense(config),
      ff_layer_norm(config.d_model, config.layer_norm_epsilon) {}

at::Tensor T5Block::forward(const at::Tensor& hidden_states, const at::Tensor& position_bias) const {
  at::Tensor h = hidden_states + self_attention.forward(attention_layer_norm.forward(hidden_states), position_bias);
  return h + dense_relu_dense.forward(ff_layer_norm.forward(h));
}

void T5Block::visit(const std::string& prefix, const ParamVisitor& fn) {
  self_attention.visit(prefix + "layer.0.SelfAttention.", fn);
  attention_layer_norm.visit(prefix + "layer.0.layer_norm.", fn);
  dense_relu_dense.visit(prefix + "layer.1.DenseReluDense.", fn);
  ff_layer_norm.visit(prefix + "layer.1.layer_norm.", fn);
}

T5EncoderModel::T5EncoderModel(T5Config config)
    : config_(std::move(config)),
      shared_(meta({config_.vocab_size, config_.d_model})),
      final_layer_norm_(config_.d_model, config_.layer_norm_epsilon) {
  for (int64_t i = 0; i < config_.num_layers; ++i)
    blocks_.emplace_back(config_, /*has_relative_attention_bias=*/i == 0);
}

at::Tensor T5EncoderModel::position_bias(int64_t length, const at::Tensor& attention_mask) const {
  at::Tensor bias = blocks_.at(0).self_attention.compute_bias(length, length);
  if (!attention_mask.defined()) return bias;
  // (1 - mask) * finfo(dtype).min on the keys, added once to the shared bias.
  const at::ScalarType dtype = bias.scalar_type();
  const double most_negative = dtype == at::kBFloat16
                                   ? static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest())
                               : dtype == at::kHalf   ? static_cast<double>(std::numeric_limits<c10::Half>::lowest())
                               : dtype == at::kDouble ? std::numeric_limits<double>::lowest()
                                                      : static_cast<double>(std::numeric_limits<float>::lowest());
  const at::Tensor extended = attention_mask.to(bias.device(), dtype).unsqueeze(1).unsqueeze(2);
  return bias + (1.0 - extended) * most_negative;
}

at::Tensor T5EncoderModel::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask) const {
  if (input_ids.dim() != 2) throw Error("T5 encoder: input_ids must be (batch, length)");
  if (attention_mask.defined() && attention_mask.sizes() != input_ids.sizes())
    throw Error("T5 encoder: attention_mask must have the shape of input_ids");
  // Checked where it costs no device synchronisation (the tokenizer's ids are on the CPU).
  if (input_ids.device().is_cpu() && input_ids.numel() > 0 &&
      (input_ids.min().item<int64_t>() < 0 || input_ids.max().item<int64_t>() >= config_.vocab_size))
    throw Error("T5 encoder: a token id is outside the vocabulary of " + std::to_string(config_.vocab_size));
  const at::Tensor ids = input_ids.to(device(), at::kLong);
  at::Tensor hidden_states = at::embedding(shared_, ids);
  const at::Tensor bias = position_bias(ids.size(1), attention_mask);
  for (const T5Block& block : blocks_) hidden_states = block.forward(hidden_states, bias);
  return final_layer_norm_.forward(hidden_states);
}

void T5EncoderModel::visit(const ParamVisitor& fn) {
  fn("shared.weight", shared_);
  for (size_t i = 0; i < blocks_.size(); ++i) blocks_[i].visit("encoder.block." + std::to_string(i) + ".", fn);
  final_layer_norm_.visit("encoder.final_layer_norm.", fn);
}

}  // namespace lit::text
