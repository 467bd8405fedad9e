#include "app/state/generator.h"

#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <new>

#include "common/error.h"
#include "common/format.h"
#include "model/backbone/builtin_model.h"
#include "pipeline/session.h"
#include "sampler/generation.h"

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

namespace {

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
Generator::Generator() : session_(std::make_unique<Session>()) {
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
      finish(Outcome::Done, "loaded " + session_->info().architecture);
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
// Loading and generating: the pipeline's Session (pipeline/session.h); what is here is progress and previews
// ---------------------------------------------------------------------------------------------------------
void Generator::ensure_loaded(const Settings& s, bool force) {
  validate_settings(s);
  const GenerationRequest request = request_of(s, s.seed);
  if (force || !session_->holds(request)) {
    const std::string path = s.model_path.empty() ? builtin_model_path() : s.model_path;
    set_progress([&](Progress& p) {
      p.phase = Phase::Loading;
      p.message = "loading " + path + (s.vae_path.empty() ? "" : " and the VAE " + s.vae_path);
    });
  }
  const ModelInfo info = session_->load(request, force);
  const std::lock_guard<std::mutex> lock(mutex_);
  info_ = info;
}

void Generator::do_generate(const Settings& s, uint64_t run_seed) {
  ensure_loaded(s, /*force=*/false);
  GenerationRequest request = request_of(s, run_seed);
  // A model without classes generates unconditionally; a text-to-image model keeps its prompt.
  if (!session_->info().class_conditional && !session_->info().text_conditional)
    request.conditioning = lit::Conditioning{};
  const GenerationPlan plan = session_->plan(request);
  const ModelInfo info = session_->info();
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    info_ = info;
  }
  // Previews: the x_0 prediction as pixels; large latent images through the cheap approximation.
  auto preview_pixels = [&](const at::Tensor& pred_x0) {
    if (!info.pixel_model() && info.image_size > 128 && info.channels == 4)
      return to_uint8_nhwc(approximate_latent_rgb(pred_x0))[0];
    return session_->images(pred_x0)[0];
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
    const at::Tensor latents = session_->sample(plan, i, 1, control);
    if (!info.pixel_model()) set_progress([&](Progress& p) { p.phase = Phase::Decoding; });

    GeneratedImage out;
    out.pixels = session_->images(latents)[0].contiguous();
    out.params = session_->image_params(plan, i);
    out.settings = s;
    out.settings.seed = run_seed + static_cast<uint64_t>(i);
    out.settings.random_seed = false;
    const std::lock_guard<std::mutex> lock(mutex_);
    progress_.image = i + 1;
    progress_.preview = out.pixels;
    ++progress_.preview_version;
    finished_.push_back(std::move(out));
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
