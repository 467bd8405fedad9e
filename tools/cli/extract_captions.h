// `lit extract-latents --text-encoder T5DIR`: for text-to-image training, encodes each caption of a caption
// folder or JSONL once with T5 (and each image with the VAE, when --vae is given; without one the centre crops
// are stored for pixel-space models) into the folder layout of tools/train/caption_data.h.
//
// `lit extract-latents --tokenizer spiece.model` stores each caption's token ids instead of T5 features, for a
// text encoder trained jointly with the model (the same tokenization TextEncoder applies when generating).
#pragma once

#include <cstdint>
#include <string>

namespace lit::cli {

struct CaptionExtractOptions {
  std::string vae;  // empty: pixel-space data
  std::string text_encoder, data, output, device = "cpu";
  int64_t image_size = 256, batch_size = 32, shard_size = 4096, limit = 0;
  int64_t max_length = 300;  // caption tokens: the model's model_max_length (PixArt-Σ 300, PixArt-α 120)
  std::string tokenizer;     // a SentencePiece model: store token ids, not features (then no text_encoder)
  bool random_flip = true;   // false: training never mirrors the images (captions that say left/right)
};

void extract_captioned(const CaptionExtractOptions& options);

}  // namespace lit::cli
