// Captioned training data for text-to-image models (PixArt-Σ, LiT-T2I).
//
// Sources (read_captioned_images):
//   - a caption folder: every image (png, jpg, jpeg, webp, bmp; sub-folders too, sorted by path) with its
//     caption beside it in a text file of the same name (`cat.png` + `cat.txt`), the common layout of caption
//     data sets; an image without its .txt is an error naming the image;
//   - a JSONL file: one {"image": PATH, "caption": TEXT} object a line (PATH relative to the file's folder).
//
// `lit extract-latents --text-encoder T5` encodes each caption once (as PixArt caches its T5 features) into a
// caption folder beside the latents, so training never runs T5:
//   captions.json             count, max_length, caption_channels, the text encoder, shard files, and for
//                             pixel-space data (no VAE) image_size
//   captions-NNNNN.safetensors "features" (n, L, C) float32 T5 output (every row, as the official pipeline
//                             computes it), "mask" (n, L) int64, and without a VAE "images" (n, S, S, 3) uint8
//                             (the centre crops)
//   latents.json + shards     with a VAE: the posteriors of tools/train/latent_dataset.h, same order
//
// `lit extract-latents --tokenizer spiece.model` stores the captions' token ids instead, for a text encoder
// trained jointly with the model (TextTrainer's joint mode): captions.json then also says "kind": "tokens",
// the tokenizer (the path given), its CRC-32 and id count (pieces + 100 sentinels), caption_channels is 0, and
// the shards hold "tokens" (n, L) int64 (T5Tokenizer::batch: EOS appended, right-padded with 0) and "mask".
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "tools/train/latent_dataset.h"
#include "tools/train/train_data.h"
#include "weights/safetensors.h"

namespace lit::train {

struct CaptionedImage {
  std::string image;    // path
  std::string caption;  // the text, surrounding whitespace removed
};

// A caption folder or a .jsonl file (see above), in a stable order. Throws lit::Error naming the file (and the
// JSONL line) at fault: a missing caption file, a missing image, a bad line, no images at all.
std::vector<CaptionedImage> read_caption_folder(const std::string& dir);
std::vector<CaptionedImage> read_caption_jsonl(const std::string& path);
std::vector<CaptionedImage> read_captioned_images(const std::string& spec);

bool is_caption_folder(const std::string& path);  // has captions.json

struct CaptionFolderInfo {
  int64_t count = 0;
  int64_t max_length = 0;        // caption tokens L
  int64_t caption_channels = 0;  // text encoder width C
  int64_t image_size = 0;        // pixel-space data: the crop side; 0 when the images are latents
  bool random_flip = true;       // training mirrors half the examples; off where left and right matter
                                 // (captions that name positions: `lit extract-latents --no-flip`)
  std::string text_encoder;      // where the features came from, for the record
  std::vector<std::string> shards;
  // Token folders ("kind": "tokens"); a features folder's captions.json has none of these keys.
  bool tokens = false;
  std::string tokenizer;        // the SentencePiece model as given to extract-latents
  std::string tokenizer_crc32;  // of its bytes, 8 hex digits
  int64_t vocab_size = 0;       // the tokenizer's ids (pieces + sentinels)
};

// The CRC-32 of a file's bytes as 8 lowercase hex digits (a tokenizer's identity). Throws lit::Error.
std::string file_crc32_hex(const std::string& path);

// Writes captions.json and its shards (finish() last, so a folder without captions.json is unfinished).
class CaptionFolderWriter {
 public:
  CaptionFolderWriter(std::string dir, CaptionFolderInfo info, int64_t shard_size = 1024);
  // features (L, C), mask (L,), image (S, S, 3) uint8 for pixel-space data (else undefined).
  void add(const at::Tensor& features, const at::Tensor& mask, const at::Tensor& image = {});
  // A token folder (info.tokens): token ids (L,) int64 instead of the features.
  void add_tokens(const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& image = {});
  void finish();
  int64_t count() const { return count_; }

 private:
  void flush();
  std::string dir_;
  CaptionFolderInfo info_;
  int64_t shard_size_, count_ = 0;
  std::vector<at::Tensor> features_, masks_, images_;
};

// The training data of a text model: example i is an image (latents drawn from the stored posterior, or the
// pixel crop in [-1, 1], flipped when the seed's lowest bit is set, as the class-conditional data) whose
// Example::label is i itself, so that the trainer fetches the caption of each batch row with captions().
class CaptionedData : public TrainingData {
 public:
  explicit CaptionedData(std::string dir);  // a folder written by lit extract-latents --text-encoder/--tokenizer
  int64_t size() const override { return info_.count; }
  int64_t num_classes() const override { return 0; }
  std::vector<int64_t> example_shape() const override;
  Example get(int64_t index, uint64_t seed) const override;
  std::string description() const override;

  // Caption features (B, L, C) float32 and masks (B, L) int64 of the examples `indices` (B,) int64.
  // Throws lit::Error for a token folder.
  void captions(const at::Tensor& indices, at::Tensor* features, at::Tensor* mask) const;
  // A token folder: the captions' token ids (B, L) int64 and masks (B, L) int64. Throws lit::Error otherwise.
  void tokens(const at::Tensor& indices, at::Tensor* ids, at::Tensor* mask) const;
  bool holds_tokens() const { return info_.tokens; }
  const std::string& dir() const { return dir_; }
  const CaptionFolderInfo& info() const { return info_; }
  bool latent() const { return latents_ != nullptr; }
  double scaling_factor() const { return latents_ ? latents_->scaling_factor() : 1.0; }

 private:
  std::pair<size_t, int64_t> locate(int64_t index) const;  // shard, row
  std::string dir_;
  CaptionFolderInfo info_;
  std::vector<SafetensorsFile> shards_;
  std::vector<int64_t> shard_start_;
  std::shared_ptr<LatentFolder> latents_;
};

std::shared_ptr<CaptionedData> open_captioned_data(const std::string& dir);

}  // namespace lit::train
