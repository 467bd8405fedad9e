// lit extract-latents --vae DIR --data FOLDER -o DIR: encodes every image of an image folder (and its
// horizontal flip) once with the VAE and stores the posteriors, for `lit train/distill --data DIR`.
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "common/error.h"
#include "kernels/runtime/cuda_support.h"
#include "model/vae/vae.h"
#include "tools/cli/commands.h"
#include "tools/cli/extract_captions.h"
#include "tools/cli/progress.h"
#include "tools/train/image_folder.h"
#include "tools/train/latent_dataset.h"
#include "weights/image_io.h"

namespace lit::cli {
namespace {

struct ExtractOptions {
  std::string vae, data, output, device = "cpu";
  int64_t image_size = 256, batch_size = 32, shard_size = 4096, limit = 0;
  std::string text_encoder;  // text-to-image data: captions encoded once (extract_captions.h)
  std::string tokenizer;     // ... or only tokenized, for a text encoder trained jointly
  int64_t max_length = 300;
  bool no_flip = false;
};

void extract(const ExtractOptions& opt) {
  if (opt.no_flip && opt.text_encoder.empty() && opt.tokenizer.empty())
    throw Error("extract-latents: --no-flip is for captioned data (with --text-encoder or --tokenizer)");
  if (!opt.text_encoder.empty() || !opt.tokenizer.empty())
    return extract_captioned({opt.vae, opt.text_encoder, opt.data, opt.output, opt.device, opt.image_size,
                              opt.batch_size, opt.shard_size, opt.limit, opt.max_length, opt.tokenizer, !opt.no_flip});
  if (opt.vae.empty())
    throw Error("extract-latents: give the VAE (--vae DIR), or --text-encoder / --tokenizer for captioned data");
  const at::Device device = kernels::parse_device(opt.device);
  VaeLoadOptions vo;
  vo.device = device;
  const AutoencoderKL vae = load_vae(opt.vae, vo);
  const auto folder = train::open_image_folder(opt.data, opt.image_size, /*random_flip=*/false);
  const int64_t f = vae.config().downsample_factor();
  if (opt.image_size % f != 0)
    throw Error("extract-latents: --image-size " + std::to_string(opt.image_size) + " is not a multiple of " +
                std::to_string(f));
  train::LatentFolderInfo info;
  info.shape = {vae.latent_channels(), opt.image_size / f, opt.image_size / f};
  info.classes = folder->classes();
  info.scaling_factor = vae.scaling_factor();
  info.shift_factor = vae.config().shift_factor;
  info.image_size = opt.image_size;
  info.vae = opt.vae;
  const int64_t total = opt.limit > 0 ? std::min(opt.limit, folder->size()) : folder->size();
  std::cout << "data    " << folder->description() << std::endl;
  train::LatentFolderWriter writer(opt.output, info, opt.shard_size);
  ProgressBar bar(total, "images");
  at::NoGradGuard no_grad;
  for (int64_t first = 0; first < total; first += opt.batch_size) {
    const int64_t n = std::min(opt.batch_size, total - first);
    std::vector<at::Tensor> crops;
    for (int64_t i = first; i < first + n; ++i) crops.push_back(folder->cropped(i));
    const at::Tensor images = images_from_uint8(at::stack(crops));  // (n, 3, S, S)
    // Unflipped and flipped in one batch: (2n, ...) -> per image (2, C, h, w).
    const DiagonalGaussian post = vae.encode(at::cat({images, images.flip({3})}).to(device));
    const at::Tensor mean = post.mean.view({2, n, -1, info.shape[1], info.shape[2]}).transpose(0, 1).cpu();
    const at::Tensor logvar = post.logvar.view({2, n, -1, info.shape[1], info.shape[2]}).transpose(0, 1).cpu();
    for (int64_t i = 0; i < n; ++i) writer.add(mean[i], logvar[i], folder->label(first + i));
    bar.update(first + n);
  }
  writer.finish();
  bar.finish();
  std::cout << "wrote   " << opt.output << ": " << writer.count() << " images' posteriors (with flips), latents "
            << info.shape[0] << "x" << info.shape[1] << "x" << info.shape[2] << ", scaling factor "
            << info.scaling_factor << "\n";
}

}  // namespace

void add_extract_latents_command(CLI::App& app) {
  static ExtractOptions opt;
  auto* cmd = app.add_subcommand("extract-latents", "Encode an image folder with the VAE once, for training");
  cmd->add_option("--vae", opt.vae, "the VAE (diffusers folder); with --text-encoder optional (pixel-space data)");
  cmd->add_option(
         "--data", opt.data,
         "image folder, one sub-folder per class; with --text-encoder/--tokenizer a caption folder (name.png + "
         "name.txt) or a .jsonl of {\"image\", \"caption\"}")
      ->required();
  cmd->add_option("--text-encoder", opt.text_encoder, "T5 folder: also encode each image's caption once (text models)");
  cmd->add_option("--tokenizer", opt.tokenizer,
                  "spiece.model: store each caption's token ids instead (a text encoder trained jointly)");
  cmd->add_option("--max-length", opt.max_length,
                  "caption tokens with --text-encoder or --tokenizer (the model's model_max_length)")
      ->capture_default_str();
  cmd->add_option("-o,--output", opt.output, "latents folder to write")->required();
  cmd->add_flag("--no-flip", opt.no_flip,
                "captioned data: training never mirrors the images (for captions that name left and right)");
  cmd->add_option("--image-size", opt.image_size, "centre-crop size in pixels")->capture_default_str();
  cmd->add_option("--batch-size", opt.batch_size, "images per VAE batch")->capture_default_str();
  cmd->add_option("--shard-size", opt.shard_size, "images per shard file")->capture_default_str();
  cmd->add_option("--limit", opt.limit, "only the first N images (0: all)")->capture_default_str();
  cmd->add_option("--device", opt.device, "cpu, cuda, ...")->capture_default_str();
  cmd->callback([] { extract(opt); });
}

}  // namespace lit::cli
