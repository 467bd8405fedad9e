// A T5 encoder made here rather than downloaded: freshly initialised weights that train (GLIDE trained its text
// transformer jointly with the diffusion model), and the standard Hugging Face T5 folder it is saved as, which
// load_t5_encoder / TextEncoder::load (and transformers' T5EncoderModel.from_pretrained) read back.
//
// The initialisation is transformers' T5PreTrainedModel._init_weights (Mesh TensorFlow's), every tensor drawn
// from N(0, std^2) with f = initializer_factor:
//   shared (the token embedding)             std f                      (not scaled by d_model)
//   SelfAttention.q                          std f / sqrt(d_model * d_kv)  (T5 has no 1/sqrt(d_kv) in the logits:
//                                                                           it is folded in here)
//   SelfAttention.k, .v                      std f / sqrt(d_model)
//   SelfAttention.o                          std f / sqrt(num_heads * d_kv)
//   relative_attention_bias (layer 0)        std f / sqrt(d_model)
//   DenseReluDense.wi / wi_0 / wi_1          std f / sqrt(d_model)
//   DenseReluDense.wo                        std f / sqrt(d_ff)
//   every T5LayerNorm weight                 f (constant)
// The draws come from one CPU generator seeded by the seed, in state-dict order, then move to the device and
// dtype: the same seed gives the same weights on every device.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/text/t5_config.h"
#include "model/text/t5_encoder.h"

namespace lit::text {

struct T5InitOptions {
  uint64_t seed = 0;
  double initializer_factor = 1.0;  // transformers' config.initializer_factor
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
};

// A new encoder of this shape, initialised as above; every tensor is a leaf that requires grad.
T5EncoderModel init_t5_encoder(const T5Config& config, const T5InitOptions& options = {});

// The encoder's tensors by state-dict name ("shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight",
// ..., "encoder.final_layer_norm.weight"), in a fixed order: the tensors themselves, not copies, so that an
// optimizer given them trains the encoder.
std::vector<std::pair<std::string, at::Tensor>> t5_named_parameters(const T5EncoderModel& encoder);
std::vector<at::Tensor> t5_parameters(const T5EncoderModel& encoder);

// Every tensor of the encoder set to require grad or not (e.g. an encoder from load_t5_encoder, to train it).
void set_t5_requires_grad(const T5EncoderModel& encoder, bool requires_grad);

// A copy with tensors of its own (detached, not requiring grad): an EMA of the encoder.
T5EncoderModel clone_t5_encoder(const T5EncoderModel& encoder);

// A config file for a new encoder: the keys read_t5_config reads, plus initializer_factor (default 1); a file
// without vocab_size takes `vocab_size_if_absent` (the tokenizer's id count) rather than T5's 32128. Throws
// lit::Error naming the file.
struct T5InitConfig {
  T5Config config;
  double initializer_factor = 1.0;
};
T5InitConfig read_t5_init_config(const std::string& path, int64_t vocab_size_if_absent);

// config.json in transformers' T5Config keys (model_type "t5", architectures ["T5EncoderModel"], the sizes,
// feed_forward_proj, layer_norm_epsilon, dropout_rate 0, initializer_factor, pad/eos/decoder-start ids), which
// parse_t5_config reads back to the same T5Config.
std::string t5_config_json(const T5Config& config, double initializer_factor = 1.0);

// Writes a T5 folder: DIR/config.json, DIR/model.safetensors (the encoder's tensors in their dtype under the
// names load_t5_encoder reads, "format": "pt" metadata) and DIR/spiece.model (a copy of the tokenizer). The
// folder is written as DIR.partial and renamed into place when complete (an older DIR is replaced). Throws
// lit::Error: a tokenizer with more ids than the encoder's vocab_size, a missing tokenizer, an unwritable folder.
void save_t5_folder(const std::string& dir, const T5EncoderModel& encoder, const std::string& spiece_model_path,
                    double initializer_factor = 1.0);

}  // namespace lit::text
