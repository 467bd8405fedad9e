#include "app/state/generator.h"

#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <new>

#include "model/backbone/builtin_model.h"
#include "model/backbone/model_io.h"
#include "model/vae/vae.h"
#include "sampler/generation.h"
#include "common/error.h"

namespace lit::studio {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::Idle:
      return "idle";
    case Phase::Loading:
      return "loading";
    case Phase::Generating:
      return "generating";
    case Phase::Decoding:
      return "decoding";
  }
  return "?";
}

struct Generator::Job {
  enum class Kind { Load, Generate } kind = Kind::Load;
  Settings settings;
  uint64_t run_seed = 0;
  int64_t id = 0;
};

// What the worker holds between jobs: the model (and VAE) of the last successful load.
struct Generator::Loaded {
  std::string model_key, vae_key, device, dtype;  // as asked (model_key empty: the built-in model)
  DiT model{nullptr};
  std::optional<AutoencoderKL> vae;
  ModelInfo info;
};

namespace {

at::ScalarType dtype_of(const std::string& name) {
  const std::string n = canonical_dtype(name).value_or("fp32");
  return n == "bf16" ? at::kBFloat16 : n == "fp16" ? at::kHalf : at::kFloat;
}

// A cheap RGB view of SD-VAE latents for previews of large latent images, where decoding every few steps
// would cost more than the sampling: each latent channel's approximate contribution to R, G and B (a linear
// fit of the SD VAE decoder, as image UIs use for their fast previews). Input in the model's latent space.
at::Tensor approximate_latent_rgb(const at::Tensor& latents) {
  static const float kFactors[4][3] = {
      {0.298f, 0.207f, 0.208f}, {0.187f, 0.286f, 0.173f}, {-0.158f, 0.189f, 0.264f}, {-0.184f, -0.271f, -0.473f}};
  const at::Tensor m = at::from_blob(const_cast<float*>(&kFactors[0][0]), {4, 3}, at::kFloat).clone();
  const at::Tensor x = latents.to(at::kCPU, at::kFloat);
  return at::einsum("bchw,cr->brhw", {x, m});
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// The thread and its queue of one
// ---------------------------------------------------------------------------------------------------------
Generator::Generator() {
  thread_ = std::thread([this] { run(); });
}

Generator::~Generator() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    cancel_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool Generator::post(Job job) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (stop_ || pending_ || running_) return false;
    job.id = ++next_job_id_;
    Progress p;
    p.phase = job.kind == Job::Kind::Load ? Phase::Loading : Phase::Generating;
    p.message = job.kind == Job::Kind::Load ? "loading the model" : "starting";
    p.images = job.kind == Job::Kind::Generate ? job.settings.batch_count : 0;
    p.steps = job.settings.steps;
    p.job_id = job.id;
    progress_ = p;
    cancel_ = false;
    pending_ = std::make_unique<Job>(std::move(job));
  }
  cv_.notify_all();
  return true;
}

bool Generator::load(const Settings& settings) {
  Job job;
  job.kind = Job::Kind::Load;
  job.settings = settings;
  return post(std::move(job));
}

bool Generator::generate(const Settings& settings, uint64_t run_seed) {
  Job job;
  job.kind = Job::Kind::Generate;
  job.settings = settings;
  job.run_seed = run_seed;
  return post(std::move(job));
}

void Generator::cancel() {
  cancel_ = true;
}

bool Generator::busy() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return pending_ || running_;
}

Progress Generator::progress() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return progress_;
}

std::optional<ModelInfo> Generator::model() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return info_;
}

std::vector<GeneratedImage> Generator::take_images() {
  const std::lock_guard<std::mutex> lock(mutex_);
  std::vector<GeneratedImage> out;
  out.swap(finished_);
  return out;
}

void Generator::wait_idle() const {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return !pending_ && !running_; });
}

int64_t Generator::last_job_id() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return next_job_id_;
}

void Generator::set_progress(const std::function<void(Progress&)>& fn) {
  const std::lock_guard<std::mutex> lock(mutex_);
  fn(progress_);
}

void Generator::run() {
  // Inference only: no autograd graph on this thread.
  const at::NoGradGuard no_grad;
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || pending_; });
      if (stop_) return;
      job = std::move(pending_);
      running_ = true;
    }
    execute(*job);
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      running_ = false;
    }
    cv_.notify_all();
  }
}

// Every failure ends here as one line in the progress; the worker and what it had loaded stay usable.
void Generator::execute(const Job& job) {
  auto finish = [&](Outcome outcome, const std::string& message, const std::string& error = "") {
    set_progress([&](Progress& p) {
      p.phase = Phase::Idle;
      p.outcome = outcome;
      p.message = message;
      p.error = error;
      p.eta_s = 0;
    });
  };
  try {
    if (job.kind == Job::Kind::Load) {
      ensure_loaded(job.settings, /*force=*/true);
      finish(Outcome::Done, "loaded " + loaded_->info.architecture);
    } else {
      do_generate(job.settings, job.run_seed);
    }
  } catch (const Cancelled&) {
    const Progress p = progress();
    finish(Outcome::Cancelled, "cancelled at step " + std::to_string(p.step) + " of " + std::to_string(p.steps) + " (" +
                                   std::to_string(p.image) + " of " + std::to_string(p.images) + " images done)");
  } catch (const Error& e) {
    finish(Outcome::Failed, "error", one_line(e.what()));
  } catch (const c10::Error& e) {  // out of memory, device and dtype problems inside LibTorch
    finish(Outcome::Failed, "error", one_line(e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    finish(Outcome::Failed, "error", "out of memory");
  } catch (const std::exception& e) {
    finish(Outcome::Failed, "error", one_line(e.what()));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------------
void Generator::ensure_loaded(const Settings& s, bool force) {
  const std::string dtype = canonical_dtype(s.dtype).value_or(s.dtype);
  if (!force && loaded_ && loaded_->model_key == s.model_path && loaded_->vae_key == s.vae_path &&
      loaded_->device == s.device && loaded_->dtype == dtype)
    return;
  validate_settings(s);
  const std::string path = s.model_path.empty() ? builtin_model_path() : s.model_path;
  set_progress([&](Progress& p) {
    p.phase = Phase::Loading;
    p.message = "loading " + path;
  });

  ModelLoadOptions options;
  options.device = at::Device(s.device);
  options.dtype = dtype_of(dtype);
  auto next = std::make_shared<Loaded>();
  LoadedModel lm = load_model(path, options);
  const ModelConfig& config = lm.config;
  next->model = lm.model;
  next->model_key = s.model_path;
  next->vae_key = s.vae_path;
  next->device = s.device;
  next->dtype = dtype;

  ModelInfo& info = next->info;
  info.path = path;
  info.architecture = config.preset_name() == "custom" ? config.summary() : config.preset_name();
  info.summary = config.summary();
  info.config_source = lm.config_source;
  for (const auto& t : lm.model->parameters()) info.parameters += t.numel();
  info.num_classes = config.num_classes;
  info.class_conditional = config.num_classes > 0;
  info.has_null_class = config.has_null_class();
  info.classes = class_names_for_model(config.num_classes, lm.metadata);
  info.latent_size = config.input_size;
  info.channels = config.in_channels;
  info.image_size = config.input_size;
  info.device = s.device;
  info.dtype = dtype;
  if (!s.vae_path.empty()) {
    set_progress([&](Progress& p) { p.message = "loading the VAE " + s.vae_path; });
    VaeLoadOptions vo;
    vo.device = options.device;
    vo.dtype = vae_dtype_for(options.dtype);
    next->vae = load_vae(s.vae_path, vo);
    check_latent_channels(*next->vae, config.in_channels, info.architecture);
    info.vae_path = s.vae_path;
    info.image_size = config.input_size * next->vae->config().downsample_factor();
    info.vae_summary = std::to_string(next->vae->latent_channels()) + " latent channels, x" +
                       std::to_string(next->vae->config().downsample_factor()) + ", scaling " +
                       format_number(next->vae->scaling_factor());
  }
  loaded_ = next;
  const std::lock_guard<std::mutex> lock(mutex_);
  info_ = info;
}

// ---------------------------------------------------------------------------------------------------------
// Generating
// ---------------------------------------------------------------------------------------------------------
void Generator::do_generate(const Settings& s, uint64_t run_seed) {
  validate_settings(s);
  ensure_loaded(s, /*force=*/false);
  const std::shared_ptr<Loaded> L = loaded_;
  const ModelInfo& info = L->info;
  const bool pixel_model = !L->vae;
  if (pixel_model && info.channels != 1 && info.channels != 3)
    throw Error("the model works on " + std::to_string(info.channels) +
                "-channel latents: choose a VAE folder to decode them into images");
  if (info.class_conditional && s.conditioning.kind == Conditioning::Kind::Class &&
      (s.conditioning.class_id < 0 || s.conditioning.class_id >= info.num_classes))
    throw Error("class " + std::to_string(s.conditioning.class_id) + " is not one of the model's " +
                std::to_string(info.num_classes) + " classes (0.." + std::to_string(info.num_classes - 1) + ")");
  const int64_t label = info.label_for(s.conditioning);
  const bool unconditional = label == info.num_classes;
  if (unconditional && !info.has_null_class)
    throw Error("the model has no null class (class_dropout_prob 0), so it cannot generate unconditionally");
  if (!unconditional && s.cfg_scale != 1.0 && !info.has_null_class)
    throw Error("guidance scale " + format_number(s.cfg_scale) +
                " needs a model with a null class; this one has none (use 1)");

  SamplingSettings ss;
  ss.sampler = *canonical_sampler(s.sampler);
  ss.steps = s.steps;
  ss.eta = s.eta;
  ss.learn_sigma = true;
  ss.clip_denoised = pixel_model;
  ss.guidance.null_class = info.num_classes;
  ss.guidance.channels = s.cfg_all_channels ? GuidanceChannels::All : GuidanceChannels::DiT;
  ss.guidance.scale = unconditional ? 1.0 : s.cfg_scale;
  DiT model = L->model;
  ss.learn_sigma = model->config().learn_sigma;
  const ClassConditionalFn forward = [model](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) mutable {
    return model->forward(x, t, y);
  };
  const SampleShape shape{info.channels, info.latent_size, info.latent_size};
  const at::Device device(s.device);
  const at::Tensor y = at::full({1}, label, at::kLong);

  auto decode = [&](const at::Tensor& x) {
    if (pixel_model) return x;
    return L->vae->decode(L->vae->from_model_space(x.to(L->vae->dtype()))).to(at::kFloat);
  };
  // Previews: the x_0 prediction as pixels; large latent images through the cheap approximation.
  auto preview_pixels = [&](const at::Tensor& pred_x0) {
    if (!pixel_model && (info.image_size > 128 && info.channels == 4))
      return to_uint8_nhwc(approximate_latent_rgb(pred_x0))[0];
    return to_uint8_nhwc(decode(pred_x0))[0];
  };

  for (int64_t i = 0; i < s.batch_count; ++i) {
    set_progress([&](Progress& p) {
      p.phase = Phase::Generating;
      p.image = i;
      p.step = 0;
      p.message = "image " + std::to_string(i + 1) + " of " + std::to_string(s.batch_count) + ", seed " +
                  std::to_string(run_seed + static_cast<uint64_t>(i));
    });
    SamplingControl control;
    control.cancel = &cancel_;
    control.want_preview = s.preview_every > 0;
    control.on_step = [&](const StepProgress& sp) {
      at::Tensor preview;
      if (sp.pred_x0.defined() && (sp.step % s.preview_every == 0 || sp.step == 1)) {
        try {
          preview = preview_pixels(sp.pred_x0.detach()).contiguous();
        } catch (const std::exception&) {
          // A failed preview is not worth stopping the image for.
        }
      }
      set_progress([&](Progress& p) {
        p.step = sp.step;
        p.steps = sp.total;
        p.its_per_s = sp.elapsed_s > 0 ? static_cast<double>(sp.step) / sp.elapsed_s : 0;
        const double per_image = sp.elapsed_s + sp.remaining_s;
        p.eta_s = sp.remaining_s + static_cast<double>(s.batch_count - i - 1) * per_image;
        if (preview.defined()) {
          p.preview = preview;
          ++p.preview_version;
        }
      });
    };
    const at::Tensor latents = sample_batch(forward, shape, y, run_seed, i, ss, device, control);
    if (!pixel_model) set_progress([&](Progress& p) { p.phase = Phase::Decoding; });
    const at::Tensor pixels = to_uint8_nhwc(decode(latents))[0].contiguous();

    GeneratedImage out;
    out.pixels = pixels;
    out.params = image_params(s, info, run_seed, i);
    out.settings = s;
    out.settings.seed = run_seed + static_cast<uint64_t>(i);
    out.settings.random_seed = false;
    const std::lock_guard<std::mutex> lock(mutex_);
    finished_.push_back(std::move(out));
    progress_.image = i + 1;
    progress_.preview = pixels;
    ++progress_.preview_version;
  }
  set_progress([&](Progress& p) {
    p.phase = Phase::Idle;
    p.outcome = Outcome::Done;
    p.eta_s = 0;
    p.message = "generated " + std::to_string(s.batch_count) + (s.batch_count == 1 ? " image" : " images") + " (" +
                format_number(std::round(p.its_per_s * 100) / 100) + " it/s)";
  });
}

}  // namespace lit::studio
