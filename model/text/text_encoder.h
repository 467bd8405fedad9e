// TextEncoder: prompts -> the T5 token embeddings a text-to-image model (PixArt-Σ, LiT-T2I) attends to. The
// tokenizer (tokenizer.h) and the T5 encoder (t5_encoder.h) of one Hugging Face folder, loaded together.
//
// Two lengths:
// - EncodeLength::kFull (default) runs T5 on all max_length positions, as PixArt-Σ's scripts and diffusers
//   do: every row of the output, padding rows too, is what transformers computes. Keep it for the null /
//   negative prompt: PixArt-Σ's official sampler pairs T5("")'s 300 rows with the *conditional* prompt's
//   mask, so the pad rows of the null caption are read.
// - EncodeLength::kLongestPrompt runs T5 only on the first n positions, n = the longest real token count of
//   the batch (T5's attention never lets a real token see a padded one, so those rows are the same numbers
//   up to float rounding), and leaves rows n.. as exact zeros. For conditional prompts whose padding rows the
//   consumer masks out (PixArt drops them), this saves most of the work: 300 positions -> often 20-60.
//
// The embedding of the empty / negative prompt is cached (null_embedding), since every generation needs it.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/text/t5_encoder.h"
#include "model/text/t5_loader.h"
#include "model/text/tokenizer.h"

namespace lit::text {

struct TextEncoderOptions {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;  // fp16 computes in bf16 (fp32 on the CPU): see t5_compute_dtype
  int64_t max_length = 300;           // PixArt-Σ: 300, PixArt-α: 120
  bool lowercase = false;             // as diffusers' pipelines (tokenizer.h); PixArt-Σ's scripts do not
};

enum class EncodeLength { kFull, kLongestPrompt };

struct TextEmbeddings {
  at::Tensor embeddings;         // (B, max_length, d_model) float32, on the encoder's device
  at::Tensor attention_mask;     // (B, max_length) int64, on the same device
  at::Tensor input_ids;          // (B, max_length) int64, on the same device
  std::vector<int64_t> lengths;  // real tokens per prompt, EOS included
  std::vector<bool> truncated;   // the prompt did not fit in max_length - 1 pieces
};

class TextEncoder {
 public:
  // A T5 folder (or a diffusers pipeline folder); see t5_loader.h for the layouts and the errors.
  static TextEncoder load(const std::string& path, const TextEncoderOptions& options = {});

  TextEmbeddings encode(const std::vector<std::string>& prompts, EncodeLength length = EncodeLength::kFull) const;
  // T5 of the negative prompt ("" by default) at full length, batch 1, computed once and cached.
  const TextEmbeddings& null_embedding(const std::string& negative_prompt = "") const;

  const T5Tokenizer& tokenizer() const { return tokenizer_; }
  const T5EncoderModel& model() const { return model_; }
  const TextEncoderOptions& options() const { return options_; }
  const T5Files& files() const { return files_; }
  at::ScalarType compute_dtype() const { return model_.dtype(); }
  // Empty, or what the front end should tell the user (e.g. fp16 asked for, bf16 used).
  const std::string& notice() const { return notice_; }

 private:
  T5Files files_;
  TextEncoderOptions options_;
  T5Tokenizer tokenizer_;
  T5EncoderModel model_;
  std::string notice_;
  std::shared_ptr<std::map<std::string, TextEmbeddings>> null_cache_ =
      std::make_shared<std::map<std::string, TextEmbeddings>>();
};

}  // namespace lit::text
