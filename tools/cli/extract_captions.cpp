#include "tools/cli/extract_captions.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <iostream>
#include <optional>
#include <vector>

#include "common/error.h"
#include "kernels/runtime/cuda_support.h"
#include "model/text/text_encoder.h"
#include "model/vae/vae.h"
#include "tools/cli/progress.h"
#include "tools/train/caption_data.h"
#include "tools/train/image_folder.h"
#include "tools/train/latent_dataset.h"
#include "weights/image_io.h"

namespace lit::cli {

void extract_captioned(const CaptionExtractOptions& opt) {
  const bool tokens_only = !opt.tokenizer.empty();
  if (tokens_only && !opt.text_encoder.empty())
    throw Error("extract-latents: give --text-encoder (cache T5 features) or --tokenizer (cache token ids), not both");
  if (opt.max_length < 1)
    throw Error("extract-latents: --max-length must be at least 1, not " + std::to_string(opt.max_length));
  const at::Device device = kernels::parse_device(opt.device);
  const std::vector<train::CaptionedImage> items = train::read_captioned_images(opt.data);
  std::optional<text::TextEncoder> encoder;
  std::optional<text::T5Tokenizer> tokenizer;
  if (tokens_only) {
    tokenizer.emplace(text::T5Tokenizer::load(opt.tokenizer));
  } else {
    text::TextEncoderOptions to;
    to.device = device;
    to.max_length = opt.max_length;
    encoder.emplace(text::TextEncoder::load(opt.text_encoder, to));
  }
  const int64_t width = encoder ? encoder->model().config().d_model : 0;

  std::optional<AutoencoderKL> vae;
  std::optional<train::LatentFolderWriter> latents;
  train::LatentFolderInfo li;
  if (!opt.vae.empty()) {
    VaeLoadOptions vo;
    vo.device = device;
    vae.emplace(load_vae(opt.vae, vo));
    const int64_t f = vae->config().downsample_factor();
    if (opt.image_size % f != 0)
      throw Error("extract-latents: --image-size " + std::to_string(opt.image_size) + " is not a multiple of " +
                  std::to_string(f));
    li.shape = {vae->latent_channels(), opt.image_size / f, opt.image_size / f};
    li.classes = {"captioned"};
    li.scaling_factor = vae->scaling_factor();
    li.shift_factor = vae->config().shift_factor;
    li.image_size = opt.image_size;
    li.vae = opt.vae;
    latents.emplace(opt.output, li, opt.shard_size);
  }
  train::CaptionFolderInfo ci;
  ci.max_length = opt.max_length;
  ci.caption_channels = width;
  ci.image_size = vae ? 0 : opt.image_size;
  ci.random_flip = opt.random_flip;
  ci.text_encoder = opt.text_encoder;
  if (tokenizer) {
    ci.tokens = true;
    ci.tokenizer = opt.tokenizer;
    ci.tokenizer_crc32 = train::file_crc32_hex(opt.tokenizer);
    ci.vocab_size = tokenizer->vocab_size();
  }
  train::CaptionFolderWriter captions(opt.output, ci, opt.shard_size);

  const int64_t total = opt.limit > 0 ? std::min<int64_t>(opt.limit, static_cast<int64_t>(items.size()))
                                      : static_cast<int64_t>(items.size());
  std::cout << "data    " << opt.data << ": " << items.size() << " captioned images\n";
  if (tokenizer)
    std::cout << "text    " << opt.tokenizer << ": " << tokenizer->vocab_size() << " token ids ("
              << tokenizer->piece_count() << " pieces + " << tokenizer->extra_ids() << " sentinels), " << opt.max_length
              << " tokens" << std::endl;
  else
    std::cout << "text    " << opt.text_encoder << ": width " << width << ", " << opt.max_length << " tokens"
              << std::endl;
  int64_t truncated = 0;
  ProgressBar bar(total, "images");
  at::NoGradGuard no_grad;
  for (int64_t first = 0; first < total; first += opt.batch_size) {
    const int64_t n = std::min(opt.batch_size, total - first);
    std::vector<at::Tensor> crops;
    std::vector<std::string> texts;
    for (int64_t i = first; i < first + n; ++i) {
      crops.push_back(train::center_crop_arr(read_image(items[static_cast<size_t>(i)].image), opt.image_size));
      texts.push_back(items[static_cast<size_t>(i)].caption);
    }
    // Every row of T5's output, padding rows too, as the official pipeline caches them; or the token ids as
    // TextEncoder::encode tokenizes a prompt (no lowercasing).
    at::Tensor features, mask;
    if (tokenizer) {
      text::TokenizeOptions topt;
      topt.max_length = opt.max_length;
      const text::TokenBatch b = tokenizer->batch(texts, topt);
      for (bool t : b.truncated) truncated += t ? 1 : 0;
      features = b.input_ids;
      mask = b.attention_mask;
    } else {
      const text::TextEmbeddings e = encoder->encode(texts, text::EncodeLength::kFull);
      for (bool t : e.truncated) truncated += t ? 1 : 0;
      features = e.embeddings.to(at::kCPU, at::kFloat);
      mask = e.attention_mask.to(at::kCPU);
    }
    // features: T5 output rows (n, L, C), or the token ids (n, L) of a token folder.
    const auto add = [&](int64_t i, const at::Tensor& image) {
      if (tokenizer)
        captions.add_tokens(features[i], mask[i], image);
      else
        captions.add(features[i], mask[i], image);
    };
    if (vae) {
      const at::Tensor images = images_from_uint8(at::stack(crops));
      const DiagonalGaussian post = vae->encode(at::cat({images, images.flip({3})}).to(device));
      const at::Tensor mean = post.mean.view({2, n, -1, li.shape[1], li.shape[2]}).transpose(0, 1).cpu();
      const at::Tensor logvar = post.logvar.view({2, n, -1, li.shape[1], li.shape[2]}).transpose(0, 1).cpu();
      for (int64_t i = 0; i < n; ++i) {
        latents->add(mean[i], logvar[i], 0);
        add(i, at::Tensor());
      }
    } else {
      for (int64_t i = 0; i < n; ++i) add(i, crops[static_cast<size_t>(i)]);
    }
    bar.update(first + n);
  }
  if (latents) latents->finish();
  captions.finish();
  bar.finish();
  std::cout << "wrote   " << opt.output << ": " << captions.count() << " captions (";
  if (tokenizer)
    std::cout << opt.max_length << " token ids + mask, tokenizer crc32 " << ci.tokenizer_crc32 << ")";
  else
    std::cout << opt.max_length << "x" << width << " T5 features + mask)";
  if (vae)
    std::cout << " and posteriors (with flips), latents " << li.shape[0] << "x" << li.shape[1] << "x" << li.shape[2];
  else
    std::cout << " and " << opt.image_size << "x" << opt.image_size << " pixel crops (no VAE)";
  if (!opt.random_flip) std::cout << "; training never mirrors them (--no-flip)";
  std::cout << "\n";
  if (truncated > 0)
    std::cout << "note    " << truncated << " captions were longer than " << opt.max_length
              << " tokens and were truncated\n";
}

}  // namespace lit::cli
