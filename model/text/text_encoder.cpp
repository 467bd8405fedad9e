#include "model/text/text_encoder.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "common/error.h"

namespace lit::text {

TextEncoder TextEncoder::load(const std::string& path, const TextEncoderOptions& options) {
  if (options.max_length < 1)
    throw Error("text encoder: max_length must be at least 1, not " + std::to_string(options.max_length));
  TextEncoder enc;
  enc.files_ = find_t5_files(path);
  enc.options_ = options;
  enc.tokenizer_ = T5Tokenizer::load(enc.files_.spiece_model);
  const at::ScalarType dtype = t5_compute_dtype(options.dtype, options.device, &enc.notice_);
  enc.model_ = load_t5_encoder(enc.files_, options.device, dtype);
  if (enc.tokenizer_.vocab_size() > enc.model_.config().vocab_size)
    throw Error(enc.files_.spiece_model + ": " + std::to_string(enc.tokenizer_.vocab_size()) +
                " token ids (pieces + 100 sentinels), more than the encoder's vocab_size " +
                std::to_string(enc.model_.config().vocab_size) + " in " + enc.files_.config);
  return enc;
}

TextEmbeddings TextEncoder::encode(const std::vector<std::string>& prompts, EncodeLength length) const {
  if (prompts.empty()) throw Error("text encoder: no prompts to encode");
  TokenizeOptions topt;
  topt.max_length = options_.max_length;
  topt.lowercase = options_.lowercase;
  const TokenBatch tokens = tokenizer_.batch(prompts, topt);
  const at::Device device = model_.device();
  TextEmbeddings out;
  out.input_ids = tokens.input_ids.to(device);
  out.attention_mask = tokens.attention_mask.to(device);
  out.lengths = tokens.lengths;
  out.truncated = tokens.truncated;

  at::NoGradGuard no_grad;
  const int64_t L = options_.max_length;
  const int64_t n = length == EncodeLength::kFull ? L : *std::max_element(tokens.lengths.begin(), tokens.lengths.end());
  const at::Tensor hidden = model_.forward(tokens.input_ids.narrow(1, 0, n), tokens.attention_mask.narrow(1, 0, n));
  if (n == L) {
    out.embeddings = hidden.to(at::kFloat);
  } else {
    out.embeddings = at::zeros({hidden.size(0), L, hidden.size(2)}, hidden.options().dtype(at::kFloat));
    out.embeddings.narrow(1, 0, n).copy_(hidden);
  }
  return out;
}

const TextEmbeddings& TextEncoder::null_embedding(const std::string& negative_prompt) const {
  auto it = null_cache_->find(negative_prompt);
  if (it == null_cache_->end())
    it = null_cache_->emplace(negative_prompt, encode({negative_prompt}, EncodeLength::kFull)).first;
  return it->second;
}

}  // namespace lit::text
