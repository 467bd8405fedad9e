#include "tools/train/step_random.h"

#include <ATen/CPUGeneratorImpl.h>

#include "common/error.h"
#include "tools/train/train_data.h"

namespace lit::train {

StepRandom::StepRandom(uint64_t seed, int64_t num_timesteps, std::vector<int64_t> example_shape, int64_t global_batch,
                       double dropout, int rank, int world_size, bool pin_memory)
    : generator_(at::make_generator<at::CPUGeneratorImpl>(mix_seed(seed, 0))),
      num_timesteps_(num_timesteps),
      global_batch_(global_batch),
      rank_(rank),
      world_size_(world_size),
      dropout_(dropout),
      pin_memory_(pin_memory) {
  shape_ = {global_batch};
  shape_.insert(shape_.end(), example_shape.begin(), example_shape.end());
  state_ = generator_.get_state();
}

StepRandom::~StepRandom() {
  discard_pending();
}

void StepRandom::discard_pending() {
  if (!pending_.valid()) return;
  try {
    pending_.get();
  } catch (...) {  // the draw's error, if any, belongs to a step that will not run
  }
}

StepDraw StepRandom::draw() {
  // Checked here, not in the constructor, so that a trainer's own checks of its options speak first.
  if (num_timesteps_ < 1 || global_batch_ < 1 || world_size_ < 1 || rank_ < 0 || rank_ >= world_size_ ||
      global_batch_ % world_size_ != 0)
    throw Error("training: bad timestep count, batch, rank or world size for the step's random draws");
  const int64_t b = global_batch_ / world_size_, first = rank_ * b;
  StepDraw d;
  d.t = at::randint(0, num_timesteps_, {global_batch_}, generator_, at::kLong).narrow(0, first, b);
  // at::randn's own steps (an empty tensor, then normal_), into page-locked memory when asked: the same numbers.
  d.noise = at::empty(shape_, at::TensorOptions().dtype(at::kFloat).pinned_memory(pin_memory_))
                .normal_(0, 1, generator_)
                .narrow(0, first, b);
  d.drop = (at::rand({global_batch_}, generator_, at::kFloat) < dropout_).narrow(0, first, b);
  return d;
}

StepDraw StepRandom::next() {
  StepDraw current = pending_.valid() ? pending_.get() : draw();
  state_ = generator_.get_state();  // nothing is drawing now
  pending_ = std::async(std::launch::async, [this] { return draw(); });
  return current;
}

at::Tensor StepRandom::state() const {
  return state_.clone();
}

void StepRandom::set_state(const at::Tensor& state) {
  discard_pending();
  generator_.set_state(state);
  state_ = generator_.get_state();
}

}  // namespace lit::train
