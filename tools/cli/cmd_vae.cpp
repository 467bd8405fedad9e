// lit vae encode|decode: images to latents and back through a Stable Diffusion VAE (a diffusers folder).
// Latent files hold one tensor (N, C, h, w) in the diffusion model's space (scaled by the VAE's factor), as
// `lit generate --save-latents` writes them: encode multiplies by the scaling factor, decode divides by it.
#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/format.h"
#include "kernels/runtime/cuda_support.h"
#include "model/vae/vae.h"
#include "tools/cli/commands.h"
#include "weights/generation_params.h"
#include "weights/image_io.h"
#include "weights/latent_file.h"
#include "weights/safetensors.h"

namespace lit::cli {
namespace {

struct VaeOptions {
  std::string vae, vae_config, device = "auto";
  int64_t batch = 8;
};

struct EncodeOptions : VaeOptions {
  std::vector<std::string> images;
  std::string output = "latents.safetensors";
  bool sample = false;
  uint64_t seed = 0;
};

struct DecodeOptions : VaeOptions {
  std::string latents, output, raw;
  std::string format = "png";
  int quality = 95;
  int64_t tile = 0, overlap = -1, memory_budget_mib = 0;
  bool per_tile_norm = false;
};

void add_vae_options(CLI::App* cmd, VaeOptions& o) {
  cmd->add_option("--vae", o.vae, "the VAE: a diffusers folder (config.json + diffusion_pytorch_model.safetensors)")
      ->required();
  cmd->add_option("--vae-config", o.vae_config, "its config.json, when --vae is a weights file without one beside it");
  cmd->add_option("--device", o.device, "auto (CUDA when present), cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--batch", o.batch, "images per VAE call")->capture_default_str()->check(CLI::PositiveNumber);
}

AutoencoderKL load(const VaeOptions& o) {
  VaeLoadOptions options;
  options.config_path = o.vae_config;
  options.device = kernels::parse_device(o.device);
  return load_vae(o.vae, options);
}

// ---------------------------------------------------------------------------------------------------------
// encode
// ---------------------------------------------------------------------------------------------------------
void encode(const EncodeOptions& o) {
  const AutoencoderKL vae = load(o);
  std::vector<at::Tensor> latents;
  int64_t width = 0, height = 0;
  for (size_t begin = 0; begin < o.images.size(); begin += static_cast<size_t>(o.batch)) {
    const size_t end = std::min(o.images.size(), begin + static_cast<size_t>(o.batch));
    std::vector<at::Tensor> pixels;
    for (size_t i = begin; i < end; ++i) {
      pixels.push_back(read_image(o.images[i]));
      if (i == 0) {
        height = pixels.back().size(0);
        width = pixels.back().size(1);
      } else if (pixels.back().size(0) != height || pixels.back().size(1) != width) {
        throw Error(o.images[i] + ": " + std::to_string(pixels.back().size(1)) + "x" +
                    std::to_string(pixels.back().size(0)) + " pixels, but " + o.images[0] + " has " +
                    std::to_string(width) + "x" + std::to_string(height) + " (one latent file holds one size)");
      }
    }
    const DiagonalGaussian posterior = vae.encode(images_from_uint8(at::stack(pixels)));
    at::Tensor z = posterior.mean;
    if (o.sample) {
      // Image i's noise comes from its own generator seeded seed + i, whatever the batching.
      std::vector<at::Tensor> samples;
      for (size_t i = begin; i < end; ++i) {
        const auto j = static_cast<int64_t>(i - begin);
        const DiagonalGaussian one{posterior.mean.slice(0, j, j + 1), posterior.logvar.slice(0, j, j + 1)};
        samples.push_back(one.sample(at::detail::createCPUGenerator(o.seed + i)));
      }
      z = at::cat(samples);
    }
    latents.push_back(vae.to_model_space(z).to(at::kCPU, at::kFloat));
  }
  const at::Tensor all = at::cat(latents);
  write_latents(o.output, all,
                {{"vae", o.vae},
                 {"scaling_factor", format_number(vae.config().scaling_factor)},
                 {"shift_factor", format_number(vae.config().shift_factor)},
                 {"posterior", o.sample ? "sample, seed " + std::to_string(o.seed) + " + image index" : "mean"}});
  std::cout << "encoded " << o.images.size() << " image" << (o.images.size() == 1 ? "" : "s") << " of " << width << "x"
            << height << " -> " << o.output << ": latents " << shape_string(all.sizes()) << " ("
            << (o.sample ? "posterior samples" : "posterior mean") << " x " << format_number(vae.scaling_factor())
            << ")\n";
}

// ---------------------------------------------------------------------------------------------------------
// decode
// ---------------------------------------------------------------------------------------------------------
void decode(const DecodeOptions& o) {
  if (o.output.empty() && o.raw.empty()) throw Error("vae decode: give -o FOLDER for images, --raw FILE, or both");
  const std::string ext = "." + o.format;
  if (!o.output.empty() && !can_write_image_format("x" + ext))
    throw Error("--format " + o.format + ": this build writes png" +
                (can_write_image_format("x.jpg") ? ", jpg and webp" : " only (" + image_codecs_summary() + ")"));
  const at::Tensor latents = read_latents(o.latents);
  const AutoencoderKL vae = load(o);
  check_latent_channels(vae, latents.size(1), o.latents);
  if (!o.output.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.output, ec);
    if (ec) throw Error("cannot create " + o.output + ": " + ec.message());
  }

#ifdef __GLIBC__
  // glibc serves freed blocks of up to 32 MiB again from its heap and keeps them there, so a tiled decode's
  // many tile-sized tensors would keep the process's memory high after the tiles are gone. With a budget
  // the user asks for memory that stays down: large blocks go straight back to the system (at the price of
  // fresh page faults on every large allocation).
  if (o.memory_budget_mib > 0) mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
  VaeTiling tiling;
  tiling.tile = o.tile;
  tiling.overlap = o.overlap;
  tiling.memory_budget = o.memory_budget_mib << 20;
  tiling.exact_group_norm = !o.per_tile_norm;
  const bool show_progress = ::isatty(STDERR_FILENO) && (o.tile > 0 || o.memory_budget_mib > 0);
  if (show_progress) {
    tiling.progress = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\rdecoding: tile %lld/%lld", static_cast<long long>(done), static_cast<long long>(total));
      if (done == total) std::fprintf(stderr, "\r\033[K");
    };
  }

  const int64_t n = latents.size(0);
  std::vector<at::Tensor> raw;
  at::IntArrayRef image_size;
  at::Tensor last;
  for (int64_t begin = 0; begin < n; begin += o.batch) {
    const int64_t end = std::min(n, begin + o.batch);
    last = vae.decode(vae.from_model_space(latents.slice(0, begin, end)), tiling).to(at::kCPU, at::kFloat);
    if (!o.raw.empty()) raw.push_back(last);
    if (!o.output.empty()) {
      const at::Tensor pixels = images_to_uint8(last);
      for (int64_t i = begin; i < end; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "%06lld", static_cast<long long>(i));
        write_image((std::filesystem::path(o.output) / (name + ext)).string(), pixels[i - begin], {{}, o.quality});
      }
    }
  }
  if (!o.raw.empty())
    write_safetensors(o.raw, {{"images", at::cat(raw)}},
                      {{"vae", o.vae}, {"range", "[-1, 1], not clamped"}, {"latents", o.latents}});
  std::cout << "decoded " << n << " latent" << (n == 1 ? "" : "s") << " " << shape_string(latents.sizes()) << " -> "
            << last.size(3) << "x" << last.size(2) << " images";
  if (!o.output.empty()) std::cout << " in " << o.output << " (" << o.format << ")";
  if (!o.raw.empty()) std::cout << (o.output.empty() ? " in " : ", float32 in ") << o.raw;
  std::cout << "\n";
}

}  // namespace

void add_vae_command(CLI::App& app) {
  auto* vae = app.add_subcommand("vae", "Encode images to latents and decode latents to images (Stable Diffusion VAE)");
  vae->require_subcommand(1);

  auto enc = std::make_shared<EncodeOptions>();
  auto* e = vae->add_subcommand("encode", "Images (PNG, JPEG, ...) -> a latent file in the model's (scaled) space");
  e->add_option("images", enc->images, "image files, all of one size (a multiple of 8)")->required();
  add_vae_options(e, *enc);
  e->add_option("-o,--output", enc->output, "latent file (safetensors)")->capture_default_str();
  e->add_flag("--sample", enc->sample, "sample the posterior instead of taking its mean");
  e->add_option("--seed", enc->seed, "with --sample: image i uses seed + i")->capture_default_str();
  e->callback([enc] { encode(*enc); });

  auto dec = std::make_shared<DecodeOptions>();
  auto* d = vae->add_subcommand("decode", "A latent file -> images (000000.png, ...) and/or the raw float output");
  d->add_option("latents", dec->latents, "latent file: one tensor (N, C, h, w), scaled as the model sees it")
      ->required();
  add_vae_options(d, *dec);
  d->add_option("-o,--output", dec->output, "folder for the images");
  d->add_option("--raw", dec->raw, "also keep the decoder's float output, (N, 3, H, W) in [-1, 1], as safetensors");
  d->add_option("--format", dec->format, "image format: png, jpg or webp")->capture_default_str();
  d->add_option("--quality", dec->quality, "JPEG/WebP quality")->capture_default_str()->check(CLI::Range(1, 100));
  d->add_option("--tile", dec->tile, "decode in tiles of this many latent pixels (8 image pixels each)")
      ->check(CLI::NonNegativeNumber);
  d->add_option("--tile-overlap", dec->overlap,
                "latent pixels of context around each tile (default: the decoder's receptive radius, exact)");
  d->add_option("--memory-budget", dec->memory_budget_mib,
                "MiB the decode may use beyond weights and output; tiles are sized to fit")
      ->check(CLI::NonNegativeNumber);
  d->add_flag("--per-tile-norm", dec->per_tile_norm,
              "normalise each tile by its own statistics (faster, approximate) instead of the image's");
  d->callback([dec] { decode(*dec); });
}

}  // namespace lit::cli
