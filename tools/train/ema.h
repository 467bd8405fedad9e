// Exponential moving average of a model's weights, as DiT's train.py keeps it: a second copy of the network,
// updated after every optimizer step as ema = decay * ema + (1 - decay) * weights, and the one sampled from
// and saved for generation (it gives much better samples than the raw weights).
#pragma once

#include "model/backbone/dit.h"

namespace lit::train {

class Ema {
 public:
  // A copy of `model` (same config, device and dtype), starting equal to it; always in eval mode, no grad.
  explicit Ema(const DiT& model);
  // ema <- decay * ema + (1 - decay) * model, over every parameter (pos_embed included, as DiT does).
  void update(const DiT& model, double decay);
  // ema <- model.
  void copy_from(const DiT& model);
  DiT& model() { return ema_; }
  const DiT& model() const { return ema_; }

 private:
  DiT ema_{nullptr};
};

}  // namespace lit::train
