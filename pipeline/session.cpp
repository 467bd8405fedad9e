#include "pipeline/session.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "common/error.h"
#include "common/format.h"
#include "kernels/runtime/cuda_support.h"
#include "model/backbone/attention.h"
#include "model/backbone/builtin_model.h"
#include "model/backbone/cuda_graph_forward.h"
#include "model/backbone/model_io.h"
#include "model/t2i/pixart_io.h"
#include "pipeline/parameters.h"
#include "sampler/dpm_solver_vp.h"
#include "sampler/generation.h"
#include "sampler/noise.h"
#include "sampler/text_guidance.h"

namespace lit {

// The text encoder of the last successful load, with what it was loaded for.
struct Session::TextSlot {
  std::string key;
  std::shared_ptr<const text::TextEncoder> encoder;
};

// The model and VAE of the last successful load, with what they were loaded for.
struct Session::Loaded {
  std::string model_key, config_key, weights_key, vae_key, device_key, dtype_key;  // as requested
  DiT model{nullptr};
  ModelConfig config;
  PixArtMS t2i{nullptr};  // a text-to-image model instead of `model`
  PixArtConfig t2i_config;
  std::optional<AutoencoderKL> vae;
  ModelInfo info;
  at::Device device = at::kCPU;
  // The forward the sampler calls, through CUDA graphs when the execution options ask for them.
  ClassConditionalFn forward;
  bool forward_graphed = false;

  // What holds() compares: the request's files, device and dtype as this load took them.
  void set_keys(const GenerationRequest& r, at::Device on, const std::string& dtype) {
    device = on;
    model_key = r.model;
    config_key = r.config;
    weights_key = r.use_weights;
    vae_key = r.vae;
    device_key = r.device;
    dtype_key = dtype;
  }
};

namespace {

std::string architecture_of(const ModelConfig& config) {
  return config.preset_name() == "custom" ? config.summary() : config.preset_name();
}

// Every image's label, fixed before sampling so that it never depends on which images are sampled together.
std::vector<int64_t> resolve_labels(const GenerationRequest& r, const ModelConfig& config, const ClassNames& names) {
  const int64_t n = r.num_images;
  std::vector<int64_t> labels(static_cast<size_t>(n), config.num_classes);  // null class: unconditional
  const Conditioning& c = r.conditioning;
  switch (c.kind) {
    case Conditioning::Kind::Classes: {
      std::vector<int64_t> ids;
      for (const auto& t : c.classes) ids.push_back(parse_class(t, names));
      for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = ids[static_cast<size_t>(i) % ids.size()];
      break;
    }
    case Conditioning::Kind::AllClasses:
      if (config.num_classes < 1) throw Error("--all-classes: the model has no classes");
      for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = i % config.num_classes;
      break;
    case Conditioning::Kind::RandomClasses: {
      if (config.num_classes < 1) throw Error("--random-classes: the model has no classes");
      // Its own generator, so the labels are the same whatever the batch size or resumption.
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(r.seed ^ 0x6c69742d636c6173ULL);
      const at::Tensor drawn = at::randint(config.num_classes, {n}, gen, at::TensorOptions().dtype(at::kLong));
      for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = drawn[i].item<int64_t>();
      break;
    }
    case Conditioning::Kind::Unconditional:
      if (!config.has_null_class())
        throw Error(
            "the model has no null class (class_dropout_prob 0), so it cannot generate unconditionally: "
            "pass --class or --random-classes");
      break;
    case Conditioning::Kind::Prompt:
      throw Error("--prompt: " + architecture_of(config) +
                  " is a class-conditional model, it takes classes (--class), not a prompt");
  }
  return labels;
}

}  // namespace

Session::Session(MessageFn on_message) : on_message_(std::move(on_message)) {}
Session::~Session() = default;

const ModelInfo& Session::info() const {
  if (!loaded_) throw Error("no model is loaded");
  return loaded_->info;
}

DiT Session::model() const {
  if (!loaded_) throw Error("no model is loaded");
  if (!loaded_->model) throw Error(loaded_->info.path + " is a text-to-image model, not a DiT/LiT");
  return loaded_->model;
}

PixArtMS Session::t2i_model() const {
  if (!loaded_) throw Error("no model is loaded");
  if (!loaded_->t2i) throw Error(loaded_->info.path + " is a class-conditional model, not a text-to-image one");
  return loaded_->t2i;
}

const text::TextEncoder* Session::text_encoder() const {
  return text_ && loaded_ && loaded_->info.text_conditional ? text_->encoder.get() : nullptr;
}

const AutoencoderKL* Session::vae() const {
  return loaded_ && loaded_->vae ? &*loaded_->vae : nullptr;
}

namespace {

std::string text_slot_key(const GenerationRequest& r, int64_t max_length) {
  return r.text_encoder + "|" + r.device + "|" + dtype_name(parse_dtype(r.dtype)) + "|" + std::to_string(max_length);
}

}  // namespace

bool Session::holds(const GenerationRequest& r) const {
  const auto dtype = dtype_from_name(r.dtype);
  if (!(loaded_ && dtype && loaded_->model_key == r.model && loaded_->config_key == r.config &&
        loaded_->weights_key == r.use_weights && loaded_->vae_key == r.vae && loaded_->device_key == r.device &&
        loaded_->dtype_key == dtype_name(*dtype)))
    return false;
  // A text-to-image model also needs the text encoder the request names.
  return !loaded_->info.text_conditional || r.text_encoder.empty() ||
         (text_ && text_->key == text_slot_key(r, r.max_length ? r.max_length : loaded_->info.max_length));
}

// The T5 folder of the request for the loaded text-to-image model, loaded unless it already is, and checked
// against the model's caption width; the tokenizer's length is the model's model_max_length.
void Session::load_text_encoder(const GenerationRequest& r) {
  ModelInfo& info = loaded_->info;
  if (!info.text_conditional || r.text_encoder.empty()) return;
  const int64_t max_length = r.max_length ? r.max_length : info.max_length;
  const std::string key = text_slot_key(r, max_length);
  if (!text_ || text_->key != key) {
    text::TextEncoderOptions options;
    options.device = kernels::parse_device(r.device);
    options.dtype = parse_dtype(r.dtype);
    options.max_length = max_length;
    auto slot = std::make_shared<TextSlot>();
    slot->key = key;
    slot->encoder = std::make_shared<const text::TextEncoder>(text::TextEncoder::load(r.text_encoder, options));
    if (!slot->encoder->notice().empty() && on_message_) on_message_(slot->encoder->notice());
    text_ = slot;
  }
  const text::T5Config& t5 = text_->encoder->model().config();
  if (t5.d_model != info.caption_channels)
    throw Error("--text-encoder " + r.text_encoder + ": its T5 is " + std::to_string(t5.d_model) +
                " wide (d_model), the model reads captions " + std::to_string(info.caption_channels) +
                " wide (caption_channels): use the text encoder the model was trained with");
  info.text_encoder_path = r.text_encoder;
  info.text_encoder_summary = t5.summary() + ", " + std::to_string(max_length) + " tokens";
}

const ModelInfo& Session::load(const GenerationRequest& r, bool force) {
  if (!force && holds(r)) return loaded_->info;
  if (!force && loaded_ && loaded_->info.text_conditional) {
    const auto dtype = dtype_from_name(r.dtype);
    if (dtype && loaded_->model_key == r.model && loaded_->config_key == r.config &&
        loaded_->weights_key == r.use_weights && loaded_->vae_key == r.vae && loaded_->device_key == r.device &&
        loaded_->dtype_key == dtype_name(*dtype)) {
      load_text_encoder(r);  // the same model, another text encoder
      return loaded_->info;
    }
  }
  const std::string dtype_key = dtype_name(parse_dtype(r.dtype));
  const at::Device device = kernels::parse_device(r.device);
  if (r.execution.exact_float32) kernels::use_exact_float32();
  const std::string path = r.model.empty() ? builtin_model_path() : r.model;
  if (!r.model.empty() && is_pixart_checkpoint(path)) return load_t2i(r, path, device, dtype_key);

  ModelLoadOptions options;
  if (!r.config.empty()) options.config = ModelConfig::from_json_file(r.config);
  options.device = device;
  options.dtype = parse_dtype(r.dtype);
  options.use_weights = r.use_weights;
  auto next = std::make_shared<Loaded>();
  LoadedModel lm = load_model(path, options);
  next->model = lm.model;
  next->config = lm.config;
  next->set_keys(r, device, dtype_key);

  const ModelConfig& config = lm.config;
  ModelInfo& info = next->info;
  info.path = path;
  info.architecture = architecture_of(config);
  info.summary = config.summary();
  info.config_source = lm.config_source;
  info.parameters = lm.model->num_parameters();
  info.num_classes = config.num_classes;
  info.class_conditional = config.num_classes > 0;
  info.has_null_class = config.has_null_class();
  info.classes = class_names_for_model(config.num_classes, lm.metadata);
  info.latent_size = config.input_size;
  info.channels = config.in_channels;
  info.image_size = config.input_size;
  info.device = r.device;
  info.dtype = dtype_key;
  info.config_json = config.to_json();
  load_vae_into(*next, r, device, parse_dtype(r.dtype), config.in_channels,
                config.preset_name() == "custom" ? path : info.architecture);
  info.size_multiple = info.vae_path.empty() ? 1 : info.image_size / config.input_size;
  loaded_ = next;
  return loaded_->info;
}

void Session::load_vae_into(Loaded& next, const GenerationRequest& r, at::Device device, at::ScalarType model_dtype,
                            int64_t channels, const std::string& model_name) {
  if (r.vae.empty()) return;
  ModelInfo& info = next.info;
  VaeLoadOptions vo;
  vo.device = device;
  // fp16 decodes in float32 when the VAE's config asks for it (force_upcast: SD's and SDXL's VAEs overflow
  // float16, as diffusers' pipelines upcast them); bf16 stays bf16.
  vo.dtype = vae_dtype_for(model_dtype, read_vae_config(find_vae_files(r.vae).config));
  next.vae = load_vae(r.vae, vo);
  check_latent_channels(*next.vae, channels, model_name);
  const int64_t factor = next.vae->config().downsample_factor();
  info.vae_path = r.vae;
  info.image_size = info.latent_size * factor;
  info.vae_summary = std::to_string(next.vae->latent_channels()) + " latent channels, x" + std::to_string(factor) +
                     ", scaling " + format_number(next.vae->scaling_factor()) + ", decodes in " +
                     dtype_name(next.vae->dtype());
}

// A PixArt-Σ / LiT-T2I checkpoint (model/t2i/pixart_io.h), its VAE and its text encoder.
const ModelInfo& Session::load_t2i(const GenerationRequest& r, const std::string& path, at::Device device,
                                   const std::string& dtype_key) {
  PixArtLoadOptions options;
  if (!r.config.empty()) options.config = PixArtConfig::from_json_file(r.config);
  options.device = device;
  options.dtype = parse_dtype(r.dtype);
  options.use_weights = r.use_weights;
  auto next = std::make_shared<Loaded>();
  LoadedPixArt lp = load_pixart(path, options);
  next->t2i = lp.model;
  next->t2i_config = lp.config;
  next->set_keys(r, device, dtype_key);

  const PixArtConfig& config = lp.config;
  ModelInfo& info = next->info;
  info.path = path;
  info.architecture = config.preset_name() == "custom" ? config.summary() : config.preset_name();
  info.summary = config.summary();
  info.config_source = lp.config_source;
  info.parameters = lp.model->num_parameters();
  info.num_classes = 0;
  info.class_conditional = false;
  info.has_null_class = true;  // the null caption: guidance works
  info.latent_size = config.input_size;
  info.channels = config.in_channels;
  info.image_size = config.input_size;
  info.device = r.device;
  info.dtype = dtype_key;
  info.config_json = config.to_json();
  info.text_conditional = true;
  info.caption_channels = config.caption_channels;
  info.max_length = config.model_max_length;
  info.has_learned_null_caption = lp.has_null_caption;
  load_vae_into(*next, r, device, options.dtype, config.in_channels,
                config.preset_name() == "custom" ? path : info.architecture);
  info.size_multiple = (info.vae_path.empty() ? 1 : info.image_size / config.input_size) * config.patch_size;

  const std::shared_ptr<Loaded> previous = loaded_;
  loaded_ = next;
  try {
    load_text_encoder(r);
  } catch (...) {
    loaded_ = previous;  // what was loaded before stays until everything loaded
    throw;
  }
  return loaded_->info;
}

GenerationPlan Session::plan(GenerationRequest request, bool latents_only) {
  check_request(request);
  load(request);
  Loaded& L = *loaded_;
  const ModelConfig& config = L.config;
  // How the model runs is the request's (kernels/execution.h), carried by the model itself.
  if (L.model)
    L.model->set_execution(request.execution);
  else
    dit::set_execution(*L.t2i, request.execution);  // LiT-T2I's linear attention goes through the same kernels
  L.info.execution = request.execution;

  if (L.info.text_conditional) return plan_t2i(std::move(request), latents_only);
  if (request.width != 0 || request.height != 0)
    throw Error("--width/--height: " + L.info.architecture + " makes " + std::to_string(L.info.image_size) + "x" +
                std::to_string(L.info.image_size) + " images only (use --size)");

  GenerationPlan plan;
  const bool pixel_model = !L.vae && (config.in_channels == 1 || config.in_channels == 3);
  if (!L.vae && !pixel_model && !latents_only)
    throw Error("the model works on " + std::to_string(config.in_channels) +
                "-channel latents: give a VAE (--vae DIR) to decode them into images, or keep the latents only "
                "(--save-latents FILE)");
  plan.images = L.vae.has_value() || pixel_model;
  plan.image_size = L.info.image_size;
  plan.clamp_x0 = request.clamp_x0 == ClampX0::Auto ? pixel_model : request.clamp_x0 == ClampX0::On;
  plan.labels = resolve_labels(request, config, L.info.classes);
  const bool any_conditional =
      std::any_of(plan.labels.begin(), plan.labels.end(), [&](int64_t l) { return l != config.num_classes; });
  if (request.cfg_scale != 1.0 && any_conditional && !config.has_null_class())
    throw Error("--cfg-scale " + format_number(request.cfg_scale) +
                " needs a model with a null class for the unconditional half; this one has none (use 1)");
  plan.width = plan.height = plan.image_size;
  plan.latent_width = plan.latent_height = config.input_size;
  plan.request = std::move(request);
  return plan;
}

GenerationPlan Session::plan_t2i(GenerationRequest request, bool latents_only) {
  Loaded& L = *loaded_;
  const ModelInfo& info = L.info;
  const Conditioning& c = request.conditioning;
  if (c.kind != Conditioning::Kind::Prompt)
    throw Error(std::string(c.kind == Conditioning::Kind::Unconditional ? "no prompt" : "--class") + ": " +
                info.architecture + " is a text-to-image model, it takes a prompt (--prompt or --prompts-file)" +
                (c.kind == Conditioning::Kind::Unconditional ? "" : ", not classes"));
  if (request.text_encoder.empty())
    throw Error(info.path + " is a text-to-image model: give its T5 text encoder folder (--text-encoder DIR)");
  if (request.learned_null_caption && !info.has_learned_null_caption)
    throw Error("--null-caption learned: " + info.path +
                " holds no learned null caption (y_embedding; diffusers checkpoints drop it): use --null-caption t5");
  if (request.learned_null_caption && request.max_length && request.max_length != info.max_length)
    throw Error("--null-caption learned: the model's null caption has " + std::to_string(info.max_length) +
                " tokens, not --max-length " + std::to_string(request.max_length));
  if (request.learned_null_caption && request.guidance_convention == GuidanceConvention::Diffusers)
    throw Error("--null-caption learned goes with --guidance-convention official (the prompt's mask)");
  // A model of 1 or 3 channels without a VAE is a pixel-space model (the built-in canvases), as for classes.
  const bool pixel_model = !L.vae && (info.channels == 1 || info.channels == 3);
  if (!L.vae && !pixel_model && !latents_only)
    throw Error("the model works on " + std::to_string(info.channels) +
                "-channel latents: give a VAE (--vae DIR) to decode them into images, or keep the latents only "
                "(--save-latents FILE)");
  GenerationPlan plan;
  plan.images = L.vae.has_value() || pixel_model;
  plan.clamp_x0 = request.clamp_x0 == ClampX0::Auto ? pixel_model : request.clamp_x0 == ClampX0::On;
  const int64_t factor = info.latent_size > 0 ? info.image_size / info.latent_size : 1;
  plan.width = request.width ? request.width : info.image_size;
  plan.height = request.height ? request.height : info.image_size;
  const int64_t m = info.size_multiple;
  if (plan.width % m != 0 || plan.height % m != 0)
    throw Error("--width/--height " + std::to_string(plan.width) + "x" + std::to_string(plan.height) +
                ": both must be multiples of " + std::to_string(m) + " (the VAE's x" + std::to_string(factor) +
                " times the patch size " + std::to_string(m / factor) + ")");
  plan.latent_width = plan.width / factor;
  plan.latent_height = plan.height / factor;
  plan.image_size = plan.height;
  plan.labels.assign(static_cast<size_t>(request.num_images), 0);  // no classes: every label the "null class" 0
  plan.request = std::move(request);
  return plan;
}

at::Tensor Session::sample(const GenerationPlan& plan, int64_t first, int64_t count, const SamplingControl& control,
                           const at::Tensor& init_noise) {
  if (!loaded_) throw Error("no model is loaded");
  Loaded& L = *loaded_;
  const GenerationRequest& r = plan.request;
  if (first < 0 || count < 1 || first + count > static_cast<int64_t>(plan.labels.size()))
    throw Error("images " + std::to_string(first) + ".." + std::to_string(first + count - 1) +
                " are not in the plan's " + std::to_string(plan.labels.size()));
  if (L.info.text_conditional) return sample_text(plan, first, count, control, init_noise);
  const bool graphed = r.execution.cuda_graphs && L.device.is_cuda();
  if (!L.forward || graphed != L.forward_graphed) {
    // With CUDA graphs each model call replays a graph of the forward (model/backbone/cuda_graph_forward.h):
    // the same kernels on the same data, without the launch overhead of hundreds of small kernels.
    L.forward = graphed_forward(L.model, graphed, on_message_);
    L.forward_graphed = graphed;
  }
  const std::vector<int64_t> labels(plan.labels.begin() + first, plan.labels.begin() + first + count);
  const int64_t null_class = L.config.num_classes;
  // Unconditional images are the same with or without guidance; a run of them skips the second half.
  const bool all_unconditional = std::all_of(labels.begin(), labels.end(), [&](int64_t l) { return l == null_class; });

  SamplingSettings settings;
  settings.sampler = r.sampler;
  settings.steps = r.steps;
  settings.eta = r.eta;
  settings.learn_sigma = L.config.learn_sigma;
  settings.clip_denoised = plan.clamp_x0;
  settings.guidance.null_class = null_class;
  settings.guidance.channels = r.cfg_all_channels ? GuidanceChannels::All : GuidanceChannels::DiT;
  settings.guidance.scale = all_unconditional ? 1.0 : r.cfg_scale;
  const SampleShape shape{L.config.in_channels, L.config.input_size, L.config.input_size};
  return sample_batch(L.forward, shape, at::tensor(labels, at::kLong), r.seed, first, settings, L.device, control,
                      init_noise);
}

// Text-to-image: T5 of the images' prompts, the null condition of the request's convention, then PixArt's
// DPM-Solver++ on continuous time (dpm++2m) or the respaced DDPM/DDIM of the class models.
at::Tensor Session::sample_text(const GenerationPlan& plan, int64_t first, int64_t count,
                                const SamplingControl& control, const at::Tensor& init_noise) {
  Loaded& L = *loaded_;
  const GenerationRequest& r = plan.request;
  const text::TextEncoder* encoder = text_encoder();
  if (!encoder)
    throw Error(L.info.path + " is a text-to-image model: give its T5 text encoder folder (--text-encoder DIR)");
  const at::NoGradGuard no_grad;
  std::vector<std::string> prompts;
  for (int64_t i = first; i < first + count; ++i) prompts.push_back(r.conditioning.prompt_of(i));
  const text::TextEmbeddings cond = encoder->encode(prompts);

  TextCondition c;
  c.caption = cond.embeddings.unsqueeze(1);
  c.mask = cond.attention_mask;
  c.scale = r.cfg_scale;
  if (c.scale != 1.0) {
    if (r.learned_null_caption) {
      // The model's y_embedding, with the prompt's mask (forward_with_cfg's null caption).
      c.null_caption =
          L.t2i->y_embedder->y_embedding.detach().to(c.caption.device(), at::kFloat).unsqueeze(0).unsqueeze(0);
    } else {
      const text::TextEmbeddings& null = encoder->null_embedding(r.conditioning.negative_prompt);  // cached
      c.null_caption = null.embeddings.unsqueeze(1);
      if (r.guidance_convention == GuidanceConvention::Diffusers) c.null_mask = null.attention_mask;
    }
  }

  const std::vector<int64_t> shape = {count, L.t2i_config.in_channels, plan.latent_height, plan.latent_width};
  if (init_noise.defined() && init_noise.sizes() != at::IntArrayRef(shape))
    throw Error("initial noise has shape " + shape_string(init_noise.sizes()) + ", the model samples " +
                shape_string(shape));
  SeededNoise noise(r.seed, first, count);
  // The initial noise is each image's first draw, also when it is replaced (the per-step noise follows it).
  at::Tensor x_T = noise.draw(shape);
  if (init_noise.defined()) x_T = init_noise.to(at::kCPU, at::kFloat);
  x_T = x_T.to(L.device);

  PixArtMS model = L.t2i;  // a shared handle: the lambdas call it mutably
  if (r.sampler == "dpm++2m") {
    const TextConditionalFn eps = [model](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                                          const at::Tensor& mask) mutable {
      return model->forward_eps(x, t, y, mask).to(at::kFloat);
    };
    DPMSolverOptions options;
    options.steps = r.steps;
    return dpm_solver_sample(text_guided_noise_fn(eps, c), NoiseScheduleVP::linear(), x_T, options, control);
  }
  const TextConditionalFn forward = [model](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                                            const at::Tensor& mask) mutable {
    return model->forward(x, t, y, mask).to(at::kFloat);
  };
  const GaussianDiffusion diffusion = GaussianDiffusion::create(
      std::to_string(r.steps), L.t2i_config.pred_sigma ? VarianceType::LearnedRange : VarianceType::FixedLarge);
  SamplerOptions options;
  options.eta = r.eta;
  options.clip_denoised = plan.clamp_x0;
  const std::unique_ptr<Sampler> sampler = make_sampler(r.sampler, options);
  const ModelFn fn =
      text_guided_model_fn(forward, c, r.cfg_all_channels ? GuidanceChannels::All : GuidanceChannels::DiT);
  return sampler->sample(fn, diffusion, x_T, noise, control);
}

at::Tensor Session::decode(const at::Tensor& latents) const {
  if (!loaded_ || !loaded_->vae) return latents;
  const at::NoGradGuard no_grad;
  const AutoencoderKL& vae = *loaded_->vae;
  return vae.decode(vae.from_model_space(latents.to(vae.dtype()))).to(at::kFloat);
}

at::Tensor Session::images(const at::Tensor& latents) const {
  return to_uint8_nhwc(decode(latents));
}

GenerationParams Session::image_params(const GenerationPlan& plan, int64_t index) const {
  return lit::image_params(plan.request, info(), plan.labels.at(static_cast<size_t>(index)), index);
}

}  // namespace lit
