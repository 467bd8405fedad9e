// A generation request: every choice that decides which images come out, as both front ends fill it
// (`lit generate`'s options, lit-studio's panel) and as the PNG parameters record carries it
// (pipeline/parameters.h). check_request() validates it once and writes the canonical spellings back; the
// checks that need the loaded model (classes, null class, VAE channels, size) are Session::plan's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/execution.h"

namespace lit {

// What the images are conditioned on. Class-conditional models (DiT, LiT) take classes or nothing; a
// text-to-image model takes the prompt and the negative prompt.
struct Conditioning {
  enum class Kind {
    Unconditional,  // the null class for every image
    Classes,        // `classes`, ids or names, cycled over the images
    AllClasses,     // image i has class i mod the class count
    RandomClasses,  // uniform over the classes, drawn from the request's seed (DiT's FID protocol)
    Prompt,         // text-to-image: `prompt` (or `prompts`, cycled) and `negative_prompt`
  };
  Kind kind = Kind::Unconditional;
  std::vector<std::string> classes;
  std::string prompt, negative_prompt;
  std::vector<std::string> prompts;  // Kind::Prompt: image i has prompts[i mod size]; empty: `prompt` for all

  // The prompt of image `index` (Kind::Prompt).
  const std::string& prompt_of(int64_t index) const {
    return prompts.empty() ? prompt : prompts[static_cast<size_t>(index) % prompts.size()];
  }
  bool operator==(const Conditioning& o) const {
    return kind == o.kind && classes == o.classes && prompt == o.prompt && negative_prompt == o.negative_prompt &&
           prompts == o.prompts;
  }
};

// Text-to-image guidance: what the null (unconditional) branch sees.
//   official (PixArt's scripts, the default): T5 of the negative prompt ("" by default) with the PROMPT's mask;
//   diffusers (its PixArtSigmaPipeline): T5 of the negative prompt with its own mask.
// null_caption "learned" replaces T5 of the negative prompt by the model's y_embedding (forward_with_cfg's
// null caption), always with the prompt's mask.
enum class GuidanceConvention { Official, Diffusers };
const char* guidance_convention_name(GuidanceConvention convention);  // "official", "diffusers"
GuidanceConvention parse_guidance_convention(const std::string& name);

// Clamping each x_0 prediction to [-1, 1] while sampling. Auto: on for pixel-space models (their data lies in
// [-1, 1]), off for latent models (latents do not).
enum class ClampX0 { Auto, On, Off };
const char* clamp_x0_name(ClampX0 clamp);  // "auto", "on", "off"
ClampX0 parse_clamp_x0(const std::string& name, const std::string& what = "--clamp-x0");

struct GenerationRequest {
  // ---- what runs it ----
  std::string model;                // checkpoint; empty: the built-in model (model/backbone/builtin_model.h)
  std::string config;               // model config JSON for a checkpoint that records none
  std::string use_weights = "ema";  // training checkpoints: "ema" or "model"
  std::string vae;                  // diffusers VAE folder; empty: a pixel-space model
  std::string text_encoder;         // T5 folder (text-to-image models only)
  std::string device = "cpu";       // cpu, cuda, cuda:N
  std::string dtype = "fp32";       // fp32, bf16, fp16 (common/format.h)
  kernels::ExecutionOptions execution;

  // ---- how it samples ----
  std::string sampler = "ddpm";   // ddpm, ddim, dpm++2m (sampler/sampler.h)
  int64_t steps = 250;            // respaced steps, 1..1000
  double eta = 0.0;               // DDIM only
  double cfg_scale = 4.0;         // classifier-free guidance (1: none)
  bool cfg_all_channels = false;  // guide every noise channel instead of DiT's first three
  ClampX0 clamp_x0 = ClampX0::Auto;
  uint64_t seed = 0;       // image i uses seed + i
  int64_t num_images = 1;  // images 0 .. num_images - 1
  Conditioning conditioning;

  // ---- text-to-image only ----
  int64_t width = 0, height = 0;  // pixels; 0: the model's training resolution
  int64_t max_length = 0;         // caption tokens; 0: the model's model_max_length (diffusers folders: 300)
  GuidanceConvention guidance_convention = GuidanceConvention::Official;
  bool learned_null_caption = false;  // the model's y_embedding instead of T5 of the negative prompt

  bool operator==(const GenerationRequest& o) const;
  bool operator!=(const GenerationRequest& o) const { return !(*this == o); }
};

// Text-to-image defaults, PixArt's: DPM-Solver++ (PixArt's own, on continuous time), 20 steps, guidance 4.5
// over all channels. Front ends apply them for the choices the user did not make.
inline constexpr const char* kTextSampler = "dpm++2m";
inline constexpr int64_t kTextSteps = 20;
inline constexpr double kTextCfgScale = 4.5;

// A prompt request that names no model is for the built-in text model (model/backbone/builtin_model.h): sets
// its checkpoint, its T5 folder unless the request names one, and its learned null caption unless the user chose
// the null caption (null_caption_chosen) or the diffusers guidance convention. Any other request is left as it is
// (an empty model there stays the built-in class model). Returns whether it chose the built-in; lit::Error when
// that is not installed.
bool use_builtin_text_model(GenerationRequest& request, bool null_caption_chosen);

// Throws lit::Error naming the first field no generation accepts (as the CLI option: --steps, --dtype, ...).
// On success writes the canonical names back: sampler "dpmsolver++" -> "dpm++2m", dtype "bfloat16" -> "bf16".
// Checks that the device exists on this machine.
void check_request(GenerationRequest& request);

}  // namespace lit
