// The worker behind lit-studio: one thread that loads models and generates images through the generation
// pipeline (pipeline/session.h), so the window never waits for either. The UI posts a job (load, generate), reads a
// snapshot of the progress every frame, takes the finished images, and may cancel: the sampler checks the flag before
// every model call (SamplingControl::cancel), so a generation stops within one step.
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "app/state/studio_state.h"
#include "pipeline/session.h"

namespace lit::studio {

enum class Phase { Idle, Loading, Generating, Decoding };
const char* phase_name(Phase phase);

// What happened to the last job.
enum class Outcome { None, Done, Cancelled, Failed };

struct Progress {
  Phase phase = Phase::Idle;
  Outcome outcome = Outcome::None;
  std::string message;            // one line: what is being done, or how the last job ended
  std::string error;              // the last job's error, empty unless outcome == Failed
  int64_t step = 0, steps = 0;    // of the current image
  int64_t image = 0, images = 0;  // images done, images asked for
  double its_per_s = 0;           // sampling steps per second
  double eta_s = 0;               // until the whole Generate is done
  int64_t preview_version = 0;    // increments with every new preview
  at::Tensor preview;             // uint8 (H, W, C) of the current image's predicted x_0, when one exists
  int64_t job_id = 0;             // of the job this describes
};

struct GeneratedImage {
  at::Tensor pixels;  // uint8 (H, W, C)
  GenerationParams params;
  Settings settings;  // reproduce it as image 0
};

class Generator {
 public:
  Generator();
  ~Generator();  // cancels what runs and joins the thread
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Posts a job; false (and nothing posted) while another job is queued or running. Returns at once.
  // load: the model of settings.model_path (the built-in one when empty) and VAE of settings.vae_path on
  // settings.device in settings.dtype. The model loaded before stays until the new one loaded completely.
  bool load(const Settings& settings);
  // generate: loads first when the model, VAE, device or dtype differ from what is loaded, then makes
  // settings.batch_count images seeded `run_seed` (image i: seed run_seed + i).
  bool generate(const Settings& settings, uint64_t run_seed);
  void cancel();  // stops the running job within one sampling step

  bool busy() const;
  Progress progress() const;
  // The loaded model, or nothing.
  std::optional<ModelInfo> model() const;
  // Images finished since the last call, oldest first.
  std::vector<GeneratedImage> take_images();
  // Blocks until no job is queued or running (tests, --autorun without a window loop).
  void wait_idle() const;
  // The id given to the last posted job.
  int64_t last_job_id() const;

 private:
  struct Job;
  void run();
  void execute(const Job& job);
  void ensure_loaded(const Settings& settings, bool force);
  void do_generate(const Settings& settings, uint64_t run_seed);
  bool post(Job job);
  void set_progress(const std::function<void(Progress&)>& fn);

  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  std::unique_ptr<Job> pending_;
  bool running_ = false;
  bool stop_ = false;
  int64_t next_job_id_ = 0;
  Progress progress_;
  std::vector<GeneratedImage> finished_;
  std::optional<ModelInfo> info_;
  std::atomic<bool> cancel_{false};
  std::unique_ptr<Session> session_;  // the pipeline; touched by the worker thread only
  std::thread thread_;
};

}  // namespace lit::studio
