// lit generate: images from a DiT or LiT checkpoint through the generation pipeline (pipeline/session.h);
// tools/cli/generate_job.h for the run folder.
#include <iostream>

#include "common/error.h"
#include "common/parse_number.h"
#include "kernels/execution.h"
#include "pipeline/request.h"
#include "sampler/sampler.h"
#include "tools/cli/commands.h"
#include "tools/cli/generate_job.h"
#include "tools/cli/interrupt.h"
#include "tools/cli/shards.h"

namespace lit::cli {

void add_generate_command(CLI::App& app) {
  static GenerateOptions o;
  GenerationRequest& r = o.request;
  auto* cmd = app.add_subcommand("generate", "Generate images from a DiT, LiT, PixArt-Σ or LiT-T2I checkpoint");
  cmd->add_option("--model", r.model,
                  "checkpoint (.safetensors, .pt, training checkpoint); default: the built-in model (with --prompt "
                  "or --prompts-file: the built-in text model, its T5 folder and learned null caption)");
  cmd->add_option("--config", r.config, "model config JSON, for a checkpoint that records none");
  cmd->add_option("--use-weights", r.use_weights, "state dict of a training checkpoint: ema or model")
      ->capture_default_str();
  cmd->add_option("--vae", r.vae, "diffusers VAE folder (latent models); none for pixel-space models");
  cmd->add_option("-o,--output", o.output, "output folder (one PNG per image, run.json)")->required();
  cmd->add_option("--class", o.classes, "class id or name, repeatable; cycled over the images");
  cmd->add_option("--classes-file", o.classes_file, "file with one class id or name per line");
  cmd->add_flag("--random-classes", o.random_classes, "uniformly random classes (DiT's FID protocol)");
  cmd->add_flag("--all-classes", o.all_classes, "every class in turn: image i has class i mod the class count");
  auto* prompt = cmd->add_option("--prompt", o.prompt, "text-to-image models: the prompt of every image");
  cmd->add_option("--negative-prompt", o.negative_prompt, "text-to-image: what guidance steers away from");
  cmd->add_option("--prompts-file", o.prompts_file,
                  "text-to-image: one prompt per line; image i has prompt i (cycled; -n defaults to the count)");
  cmd->add_option("--text-encoder", r.text_encoder,
                  "text-to-image: the T5 folder (Hugging Face layout; default for the built-in text model: its own)");
  cmd->add_option("--width", r.width, "text-to-image: image width in pixels (default: the model's)");
  cmd->add_option("--height", r.height, "text-to-image: image height in pixels (default: the model's)");
  cmd->add_option("--max-length", r.max_length,
                  "text-to-image: caption tokens (default: the model's model_max_length; diffusers folders 300)");
  cmd->add_option_function<std::string>(
         "--guidance-convention",
         [](const std::string& name) { o.request.guidance_convention = parse_guidance_convention(name); },
         "text-to-image null branch: official (T5 of the negative prompt with the prompt's mask, PixArt's "
         "scripts) or diffusers (with its own mask, diffusers' pipeline)")
      ->check(CLI::IsMember({"official", "diffusers"}))
      ->default_str("official");
  auto* null_caption =
      cmd->add_option_function<std::string>(
             "--null-caption", [](const std::string& name) { o.request.learned_null_caption = name == "learned"; },
             "text-to-image null caption: t5 (T5 of the negative prompt) or learned (the model's y_embedding; "
             "the built-in text model's default)")
          ->check(CLI::IsMember({"t5", "learned"}))
          ->default_str("t5");
  auto* num_images = cmd->add_option("-n,--num-images", r.num_images, "number of images")->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size, "images per model batch (does not change the images)")
      ->capture_default_str();
  // A string, converted strictly: CLI11 would wrap -1 and clamp 2^64 to 2^64 - 1.
  static std::string seed_text = "0";
  cmd->add_option("--seed", seed_text, "image i uses seed + i (0 .. 2^64 - 1)")->capture_default_str();
  auto* sampler = cmd->add_option("--sampler", r.sampler,
                                  "ddpm, ddim or dpm++2m (also dpmsolver++, dpmpp2m; text-to-image: PixArt's "
                                  "DPM-Solver++ on continuous time, its default)")
                      ->capture_default_str();
  auto* steps = cmd->add_option("--steps", r.steps, "sampling steps (respaced, 1..1000; text-to-image default 20)")
                    ->capture_default_str();
  cmd->add_option("--eta", r.eta, "DDIM eta (0: deterministic)")->capture_default_str();
  auto* cfg = cmd->add_option("--cfg-scale", r.cfg_scale, "classifier-free guidance scale (1: none; text-to-image 4.5)")
                  ->capture_default_str();
  cmd->add_flag("--cfg-all-channels", r.cfg_all_channels,
                "guide all noise channels (standard form) instead of DiT's first 3");
  cmd->add_option("--size", o.size, "image size in pixels (must match the model; default: the model's)");
  cmd->add_option("--device", r.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dtype", r.dtype, "fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option_function<std::string>(
         "--clamp-x0", [](const std::string& name) { o.request.clamp_x0 = parse_clamp_x0(name); },
         "clamp each x_0 prediction to [-1, 1]: auto (on for pixel-space models, off for latents), on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->default_str("auto");
  add_attention_option(cmd, &r.execution.attention);
  cmd->add_option_function<std::string>(
         "--precision-path",
         [](const std::string& name) { o.request.execution.precision = kernels::parse_precision_path(name); },
         "bf16/fp16 on CUDA: fused (the fused inference kernels) or plain (ATen operators, as in training)")
      ->check(CLI::IsMember(kernels::precision_path_names()))
      ->default_str("fused");
  cmd->add_flag("--cuda-graphs", r.execution.cuda_graphs,
                "on CUDA, replay a CUDA graph of the model's forward per batch shape (experimental: not yet "
                "verified on a GPU)");
  cmd->add_option("--format", o.format, "image files: png (with parameters), jpg or webp")->capture_default_str();
  cmd->add_option("--grid", o.grid, "also write a contact sheet of the images to this file");
  cmd->add_option("--grid-columns", o.grid_columns, "images per row of the sheet (default: square)");
  cmd->add_option("--grid-scale", o.grid_scale, "enlarge every image of the sheet N times (tiny images)");
  cmd->add_flag("--grid-labels", o.grid_labels, "write each image's class name under it on the sheet");
  cmd->add_option("--npz", o.npz, "also write arr_0 (uint8 NHWC) for the ADM evaluator / lit fid");
  cmd->add_option("--save-latents", o.save_latents, "also write the final latents (before decoding)");
  cmd->add_option("--init-noise", o.init_noise, "start from this noise (latents file, N x C x H x W)");
  cmd->add_flag("--resume", o.resume, "continue the run in the output folder, skipping complete images");
  cmd->add_option("--shard", o.shard,
                  "K/N: make only shard K of N (batch b is shard b mod N; under torchrun: RANK/WORLD_SIZE)");
  cmd->add_flag("-q,--quiet", o.quiet, "no progress output");
  cmd->callback([=] {
    o.request.seed = parse_seed(seed_text);
    o.has_prompt = prompt->count() > 0;
    o.sampler_given = sampler->count() > 0;
    o.steps_given = steps->count() > 0;
    o.cfg_given = cfg->count() > 0;
    o.num_images_given = num_images->count() > 0;
    o.null_caption_given = null_caption->count() > 0;
    // Ctrl-C / SIGTERM: the sampler stops within one step, the complete images stay (--resume finishes).
    const InterruptGuard interrupt;
    // A malformed --shard, or a shard asked for the whole run's .npz or sheet, is refused before any work.
    const Shard shard = resolve_shard(o.shard);
    if (shard.active() && (!o.grid.empty() || !o.npz.empty()))
      throw Error("--shard " + shard.text() +
                  ": a shard holds part of the images; make the .npz once every shard is done "
                  "(lit merge-npz -o OUT.npz FOLDERS...)");
    try {
      o.request.device = shard_device(o.request.device);  // cuda -> cuda:LOCAL_RANK under torchrun
      run_generate(o, &InterruptGuard::requested());
    } catch (const Cancelled&) {
      std::cerr << "\nlit generate: interrupted; the complete images are in " << o.output
                << ": run the same command with --resume to finish\n";
      throw ExitStatus{InterruptGuard::exit_status()};
    }
  });
}

}  // namespace lit::cli
