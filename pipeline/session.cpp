#include "pipeline/session.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "common/error.h"
#include "common/format.h"
#include "kernels/runtime/cuda_support.h"
#include "model/backbone/builtin_model.h"
#include "model/backbone/cuda_graph_forward.h"
#include "model/backbone/model_io.h"
#include "pipeline/parameters.h"
#include "sampler/generation.h"

namespace lit {

// The model and VAE of the last successful load, with what they were loaded for.
struct Session::Loaded {
  std::string model_key, config_key, weights_key, vae_key, device_key, dtype_key;  // as requested
  DiT model{nullptr};
  ModelConfig config;
  std::optional<AutoencoderKL> vae;
  ModelInfo info;
  at::Device device = at::kCPU;
  // The forward the sampler calls, through CUDA graphs when the execution options ask for them.
  ClassConditionalFn forward;
  bool forward_graphed = false;
};

namespace {

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
      throw Error("a text prompt needs a text-to-image model; " + config.summary() + " is class-conditional");
  }
  return labels;
}

std::string architecture_of(const ModelConfig& config) {
  return config.preset_name() == "custom" ? config.summary() : config.preset_name();
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
  return loaded_->model;
}

const AutoencoderKL* Session::vae() const {
  return loaded_ && loaded_->vae ? &*loaded_->vae : nullptr;
}

bool Session::holds(const GenerationRequest& r) const {
  const auto dtype = dtype_from_name(r.dtype);
  return loaded_ && dtype && loaded_->model_key == r.model && loaded_->config_key == r.config &&
         loaded_->weights_key == r.use_weights && loaded_->vae_key == r.vae && loaded_->device_key == r.device &&
         loaded_->dtype_key == dtype_name(*dtype);
}

const ModelInfo& Session::load(const GenerationRequest& r, bool force) {
  if (!force && holds(r)) return loaded_->info;
  const std::string dtype_key = dtype_name(parse_dtype(r.dtype));
  const at::Device device = kernels::parse_device(r.device);
  if (r.execution.exact_float32) kernels::use_exact_float32();
  const std::string path = r.model.empty() ? builtin_model_path() : r.model;

  ModelLoadOptions options;
  if (!r.config.empty()) options.config = ModelConfig::from_json_file(r.config);
  options.device = device;
  options.dtype = parse_dtype(r.dtype);
  options.use_weights = r.use_weights;
  auto next = std::make_shared<Loaded>();
  LoadedModel lm = load_model(path, options);
  next->model = lm.model;
  next->config = lm.config;
  next->device = device;
  next->model_key = r.model;
  next->config_key = r.config;
  next->weights_key = r.use_weights;
  next->vae_key = r.vae;
  next->device_key = r.device;
  next->dtype_key = dtype_key;

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
  if (!r.vae.empty()) {
    VaeLoadOptions vo;
    vo.device = device;
    vo.dtype = vae_dtype_for(options.dtype);
    next->vae = load_vae(r.vae, vo);
    check_latent_channels(*next->vae, config.in_channels, config.preset_name() == "custom" ? path : info.architecture);
    const int64_t factor = next->vae->config().downsample_factor();
    info.vae_path = r.vae;
    info.image_size = config.input_size * factor;
    info.vae_summary = std::to_string(next->vae->latent_channels()) + " latent channels, x" + std::to_string(factor) +
                       ", scaling " + format_number(next->vae->scaling_factor());
  }
  loaded_ = next;
  return loaded_->info;
}

GenerationPlan Session::plan(GenerationRequest request, bool latents_only) {
  check_request(request);
  load(request);
  Loaded& L = *loaded_;
  const ModelConfig& config = L.config;
  // How the model runs is the request's (kernels/execution.h), carried by the model itself.
  L.model->set_execution(request.execution);
  L.info.execution = request.execution;

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
