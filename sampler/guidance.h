// Classifier-free guidance as DiT does it (models.py forward_with_cfg): one forward over a doubled batch,
// the conditional half (the requested labels) then the unconditional half (the null class), combined as
// uncond + scale * (cond - uncond).
//
// Which channels are guided matters for reproducing DiT's published samples: DiT guides only the first 3
// output channels and takes the rest (the 4th latent channel's eps and every variance channel) from each
// half as it is; we return the conditional half, so those channels are the conditional model's. The
// standard form guides all C eps channels; the variance channels are never guided.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "sampler/model_fn.h"

namespace lit {

enum class GuidanceChannels {
  DiT,  // the first 3 eps channels (all of them when C < 3), as DiT's forward_with_cfg by default
  All,  // all C eps channels (the standard form; DiT's commented-out alternative)
};

struct Guidance {
  double scale = 1.0;  // 1 = no guidance: the unconditional half is never computed
  GuidanceChannels channels = GuidanceChannels::DiT;
  int64_t null_class = 1000;  // the label of the unconditional embedding (num_classes; 1000 for ImageNet)
};

// The sampler's model callable for class-conditional generation of `labels` (B,) int64: calls
// forward(x, t, labels) when guidance.scale == 1, otherwise forward on the doubled batch ([x; x], [t; t],
// [labels; null]) and combines the halves. Returns (B, C_out, H, W). Throws lit::Error on a label count
// that does not match the batch.
ModelFn classifier_free_guidance(ClassConditionalFn forward, at::Tensor labels, const Guidance& guidance);

// The combination alone: `output` (2B, C_out, H, W) is a forward over a doubled batch (conditional half
// first), `latent_channels` is C (the eps channels). Returns the guided conditional half (B, C_out, H, W),
// equal to the first half of DiT's forward_with_cfg output.
at::Tensor combine_guided_halves(const at::Tensor& output, int64_t latent_channels, double scale,
                                 GuidanceChannels channels);

}  // namespace lit
