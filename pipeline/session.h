// The generation pipeline both front ends run: a Session loads the model and VAE a request names and keeps
// them for the next request that names the same files, device and dtype; plan() checks a request against
// them before any long work; sample() makes a run of consecutive images of the plan; decode() and images()
// turn latents into pixels; image_params() is the PNG parameters record of one image (pipeline/parameters.h).
//
//   Session session;
//   const GenerationPlan plan = session.plan(request);          // loads, resolves the classes, checks
//   at::Tensor latents = session.sample(plan, 0, plan.request.num_images);
//   at::Tensor pixels = session.images(latents);               // uint8 (N, H, W, C)
//   write_image(path, pixels[0], {{kParametersKeyword, format_generation_params(session.image_params(plan, 0))}});
//
// Image i of a request is the same whatever run of images it is sampled in (its noise comes from seed + i,
// sampler/generation.h), up to the float rounding of batched kernels; `lit generate` and lit-studio sample
// the same images through this one path. Not thread-safe: one thread uses a session at a time.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/backbone/class_labels.h"
#include "model/backbone/dit.h"
#include "model/t2i/pixart.h"
#include "model/text/text_encoder.h"
#include "model/vae/vae.h"
#include "pipeline/request.h"
#include "sampler/sampler.h"
#include "weights/generation_params.h"

namespace lit {

// What the loaded model (and VAE) offer, for front ends to show and for the parameters record.
struct ModelInfo {
  std::string path;          // the checkpoint (the built-in model's path when the request named none)
  std::string architecture;  // "DiT-XL/2", or the config summary for custom architectures
  std::string summary;       // ModelConfig::summary()
  std::string config_source;
  int64_t parameters = 0;
  int64_t num_classes = 0;
  bool has_null_class = true;  // can generate unconditionally and use guidance
  bool class_conditional = true;
  ClassNames classes;
  int64_t latent_size = 0;  // the model's input grid
  int64_t channels = 0;     // its input channels
  int64_t image_size = 0;   // pixels (latent_size x the VAE's factor)
  std::string vae_path;     // empty: pixel-space model
  std::string vae_summary;
  std::string device, dtype;
  kernels::ExecutionOptions execution;
  std::string config_json;  // the model's config (ModelConfig or PixArtConfig JSON), for run manifests

  // ---- text-to-image models (PixArt-Σ, LiT-T2I) ----
  bool text_conditional = false;
  int64_t caption_channels = 0;           // the text encoder width the model expects
  int64_t max_length = 0;                 // caption tokens (model_max_length): the tokenizer's length
  int64_t size_multiple = 1;              // width and height must be multiples of this (VAE factor x patch)
  bool has_learned_null_caption = false;  // the checkpoint holds y_embedding
  std::string text_encoder_path;          // empty: none loaded
  std::string text_encoder_summary;

  bool pixel_model() const { return vae_path.empty(); }
};

// A request checked against the loaded model: every image's label and what the run makes.
struct GenerationPlan {
  GenerationRequest request;                    // canonical names (check_request)
  std::vector<int64_t> labels;                  // one per image; num_classes is the null class
  int64_t image_size = 0;                       // pixels (the height for non-square text-to-image plans)
  int64_t width = 0, height = 0;                // pixels
  int64_t latent_width = 0, latent_height = 0;  // the model's input grid
  bool images = true;                           // decodable into images (a VAE, or a 1- or 3-channel pixel model)
  bool clamp_x0 = false;                        // request.clamp_x0 resolved for this model
};

class Session {
 public:
  using MessageFn = std::function<void(const std::string& message)>;

  // on_message receives what is worth telling while it works but stops nothing (a failed CUDA graph capture).
  explicit Session(MessageFn on_message = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Loads the model and VAE of the request unless those are what is loaded (force: load again). What was
  // loaded before stays until the new model and VAE loaded completely. Throws lit::Error.
  const ModelInfo& load(const GenerationRequest& request, bool force = false);
  // Whether the model and VAE the request names are what is loaded (load() would keep them).
  bool holds(const GenerationRequest& request) const;
  bool loaded() const { return static_cast<bool>(loaded_); }
  const ModelInfo& info() const;                  // lit::Error when nothing is loaded
  DiT model() const;                              // lit::Error for a text-to-image model
  PixArtMS t2i_model() const;                     // lit::Error for a class-conditional model
  const text::TextEncoder* text_encoder() const;  // null when none is loaded
  const AutoencoderKL* vae() const;               // null for a pixel-space model

  // check_request, load, then every check against the model: classes (names, ranges), the null class that
  // unconditional images and guidance need, decodability; for text-to-image models the prompt, the text
  // encoder (present, of the model's caption width) and the size (multiples of the VAE factor x patch). latents_only: a
  // latent model without a VAE is accepted (its plan has images = false). Throws lit::Error naming the option.
  GenerationPlan plan(GenerationRequest request, bool latents_only = false);

  // Samples images first .. first + count - 1 of the plan, returns their latents (count, C, H, W) on the
  // device, float32. init_noise (count, C, H, W), when defined, replaces the seeded initial noise.
  at::Tensor sample(const GenerationPlan& plan, int64_t first, int64_t count, const SamplingControl& control = {},
                    const at::Tensor& init_noise = {});
  // Latents in the model's space to images in [-1, 1] (float32; a pixel model's are returned as they are).
  at::Tensor decode(const at::Tensor& latents) const;
  // decode() as uint8 (N, H, W, C) on the CPU (sampler/generation.h to_uint8_nhwc).
  at::Tensor images(const at::Tensor& latents) const;

  // The PNG parameters record of image `index` of the plan.
  GenerationParams image_params(const GenerationPlan& plan, int64_t index) const;

 private:
  struct Loaded;
  struct TextSlot;
  void load_text_encoder(const GenerationRequest& request);
  GenerationPlan plan_t2i(GenerationRequest request, bool latents_only);
  const ModelInfo& load_t2i(const GenerationRequest& request, const std::string& path, at::Device device,
                            const std::string& dtype_key);
  static void load_vae_into(Loaded& next, const GenerationRequest& request, at::Device device,
                            at::ScalarType model_dtype, int64_t channels, const std::string& model_name);
  at::Tensor sample_text(const GenerationPlan& plan, int64_t first, int64_t count, const SamplingControl& control,
                         const at::Tensor& init_noise);

  MessageFn on_message_;
  std::shared_ptr<Loaded> loaded_;
  std::shared_ptr<TextSlot> text_;
};

}  // namespace lit
