// T5Tokenizer: T5's tokenizer as Hugging Face transformers applies it (`T5Tokenizer.from_pretrained(folder)`,
// what PixArt-Σ's inference script and diffusers' pipelines call), on the folder's SentencePiece model
// (`spiece.model`) read by the SentencePiece library itself.
//
// What the reference does, and therefore what this does:
// - The SentencePiece model's own normaliser (T5: nmt_nfkc): NFKC (full-width letters and digits become
//   ASCII, combining accents compose), tabs and newlines become spaces, leading, trailing and repeated
//   whitespace disappear. A character outside the vocabulary becomes <unk> (id 2).
// - The EOS id (`</s>`, 1) appended, no BOS; truncation to max_length keeps the EOS in the last slot; right
//   padding with the pad id (0) and an attention mask that is 1 on the pieces and the EOS.
// - `<extra_id_N>` sentinels (N < extra_ids, 100 for T5) are ids after the model's pieces, in reverse order:
//   <extra_id_0> is the last id, vocab_size() - 1 = pieces + extra_ids - 1.
// What the reference does not do: lowercase, strip punctuation, or clean captions. PixArt-Σ's official
// scripts pass the prompt as typed (only `.strip()`ed, which the normaliser makes a no-op); diffusers'
// PixArt pipelines lowercase (and, with clean_caption, rewrite URLs, HTML, punctuation). `lowercase` in
// TokenizeOptions is the former, opt-in; caption cleaning is not done. Sentinel strings typed in a prompt are
// tokenized as text, not as the sentinel ids.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lit::text {

struct TokenizeOptions {
  int64_t max_length = 300;  // PixArt-Σ: 300 tokens; PixArt-α: 120
  // Lowercase the prompt first (and strip surrounding whitespace), as diffusers' PixArt pipelines do. Off by
  // default: PixArt-Σ's official scripts do not. Lowercasing is Unicode's simple case mapping of the C.UTF-8
  // locale (ASCII only if that locale is missing); Python's str.lower() differs only for the few characters
  // whose lowercase is several characters (e.g. U+0130).
  bool lowercase = false;
};

// A batch of tokenized prompts: [B, max_length] int64 each, on the CPU.
struct TokenBatch {
  at::Tensor input_ids;
  at::Tensor attention_mask;     // 1 = a piece or the EOS, 0 = padding
  std::vector<int64_t> lengths;  // real tokens per prompt (EOS included) = attention_mask row sums
  std::vector<bool> truncated;   // the prompt had more pieces than max_length - 1
};

class T5Tokenizer {
 public:
  // Reads a SentencePiece model file; throws lit::Error naming the file if it is missing or not a model.
  // extra_ids: how many <extra_id_N> sentinels follow the pieces (T5: 100).
  static T5Tokenizer load(const std::string& spiece_model_path, int64_t extra_ids = 100);

  // Pieces of the SentencePiece model plus the sentinels (T5-v1.1: 32000 + 100 = 32100).
  int64_t vocab_size() const;
  int64_t piece_count() const;
  int64_t extra_ids() const { return extra_ids_; }
  int64_t pad_id() const { return pad_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t unk_id() const { return unk_id_; }
  // The piece of an id ("▁red", "</s>", "<extra_id_0>"), and back (unk_id() for an unknown piece).
  std::string id_to_piece(int64_t id) const;
  int64_t piece_to_id(const std::string& piece) const;
  const std::string& path() const { return path_; }

  // The ids of one prompt, EOS appended, truncated to max_length keeping the EOS, not padded.
  std::vector<int64_t> encode(const std::string& prompt, const TokenizeOptions& options = {},
                              bool* truncated = nullptr) const;
  // Pieces as SentencePiece cuts them (no EOS), for showing what a prompt became.
  std::vector<std::string> pieces(const std::string& prompt, const TokenizeOptions& options = {}) const;
  // A padded batch (padding="max_length", truncation=True).
  TokenBatch batch(const std::vector<std::string>& prompts, const TokenizeOptions& options = {}) const;

  // The prompt as the tokenizer sees it before SentencePiece: lowercased and stripped when asked, else as is.
  static std::string preprocess(const std::string& prompt, const TokenizeOptions& options);

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
  std::string path_;
  int64_t extra_ids_ = 100;
  int64_t pad_id_ = 0, eos_id_ = 1, unk_id_ = 2;
};

}  // namespace lit::text
