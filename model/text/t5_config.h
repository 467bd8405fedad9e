// T5Config: the architecture of a T5 encoder, read from the `config.json` of a Hugging Face T5 folder
// (transformers' T5Config). Only what shapes the encoder is kept; keys absent from the file take
// transformers' defaults, as T5Config's constructor does.
#pragma once

#include <cstdint>
#include <string>

namespace lit::text {

struct T5Config {
  int64_t vocab_size = 32128;
  int64_t d_model = 512;
  int64_t d_kv = 64;  // per head; inner dimension = num_heads * d_kv (need not equal d_model)
  int64_t d_ff = 2048;
  int64_t num_layers = 6;
  int64_t num_heads = 8;
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  double layer_norm_epsilon = 1e-6;
  // "relu" (T5 v1.0), "gated-gelu" (T5 v1.1, mT5, Flan-T5, PixArt's T5-XXL), or "[gated-]ACT".
  std::string feed_forward_proj = "relu";

  // As transformers derives them: feed_forward_proj = "gated-ACT" or "ACT"; "gated-gelu" means the tanh
  // approximation ("gelu_new"). Activations: relu, gelu (erf), gelu_new (tanh), silu.
  bool is_gated_act() const;
  std::string dense_act_fn() const;
  int64_t inner_dim() const { return num_heads * d_kv; }

  // The published T5-v1.1-XXL encoder (PixArt-α/Σ's text encoder): d_model 4096, 64 heads of 64, d_ff 10240,
  // 24 layers, gated-gelu, vocab 32128.
  static T5Config t5_v1_1_xxl();
  // A short summary: "d_model 4096, 24 layers, 64 heads x 64, d_ff 10240, gated-gelu, vocab 32128".
  std::string summary() const;
  // Encoder parameters (embedding, attention, FFN, norms, the relative position table).
  int64_t parameter_count() const;
};

// Parses and checks a T5 config (JSON text); `origin` names it in errors. Throws lit::Error for another
// model_type (umT5's per-layer position bias is a different model), a bad feed_forward_proj or activation,
// or non-positive sizes.
T5Config parse_t5_config(const std::string& json_text, const std::string& origin);
T5Config read_t5_config(const std::string& path);  // throws lit::Error naming the file

}  // namespace lit::text
