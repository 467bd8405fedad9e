// The random draws of a training step (timesteps, noise, which labels or captions are dropped), made one step
// ahead on a background thread while the current step trains.
//
// They come from one CPU generator seeded by the run (so a run draws the same numbers on every device and
// after a resume), in a fixed order for the whole global batch; rank r keeps its slice. Drawn in line, the
// noise of a batch of 256 64x64x3 canvases (at::randn on one core) took about 50 ms on the 2-core development
// machine and about 30 ms of the text teacher's 81 ms step on the H200's host (the step fell to 52 ms when the
// draw moved here, where it overlaps the step before). state() is the generator's state
// before the draw of the next step, exactly what a generator without the look-ahead would hold: checkpoints
// and resumes see no difference.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <future>
#include <vector>

namespace lit::train {

struct StepDraw {
  at::Tensor t;      // (B,) int64 timesteps in [0, num_timesteps)
  at::Tensor noise;  // (B, C, H, W) float32 standard normal
  at::Tensor drop;   // (B,) bool: true where the label or caption is replaced by the null one
};

class StepRandom {
 public:
  // example_shape {C, H, W}; the draws are for global_batch examples, of which rank r keeps
  // [r * global_batch / world_size, (r + 1) * global_batch / world_size).
  // pin_memory: the noise in page-locked host memory, for a non-blocking copy to a CUDA device (needs LibTorch
  // with CUDA).
  StepRandom(uint64_t seed, int64_t num_timesteps, std::vector<int64_t> example_shape, int64_t global_batch,
             double dropout, int rank = 0, int world_size = 1, bool pin_memory = false);
  ~StepRandom();
  StepRandom(const StepRandom&) = delete;
  StepRandom& operator=(const StepRandom&) = delete;

  StepDraw next();                          // this step's draws; starts drawing the next step's
  at::Tensor state() const;                 // the generator's state before the next step's draws
  void set_state(const at::Tensor& state);  // continue from a saved state (drops a draw under way)

 private:
  StepDraw draw();  // in the fixed order, from generator_ (one thread at a time)
  void discard_pending();

  at::Generator generator_;
  int64_t num_timesteps_, global_batch_, rank_, world_size_;
  std::vector<int64_t> shape_;  // {global_batch, C, H, W}
  double dropout_;
  bool pin_memory_;
  std::future<StepDraw> pending_;
  at::Tensor state_;  // the generator's state before pending_ (or now, when nothing is pending)
};

}  // namespace lit::train
