#include "sampler/text_guidance.h"

#include "common/error.h"

namespace lit {
namespace {

void check_condition(TextCondition& c) {
  if (!c.caption.defined() || (c.caption.dim() != 4 && c.caption.dim() != 3))
    throw Error("text guidance: captions must be (B, 1, L, C)");
  if (c.caption.dim() == 3) c.caption = c.caption.unsqueeze(1);
  const int64_t B = c.caption.size(0), L = c.caption.size(2);
  if (c.mask.defined() && (c.mask.dim() != 2 || c.mask.size(0) != B || c.mask.size(1) != L))
    throw Error("text guidance: the caption mask must be (" + std::to_string(B) + ", " + std::to_string(L) + ")");
  if (c.scale == 1.0) return;
  if (!c.null_caption.defined()) throw Error("text guidance: a guidance scale needs the null caption");
  if (c.null_caption.dim() == 3) c.null_caption = c.null_caption.unsqueeze(1);
  if (c.null_caption.dim() != 4 || c.null_caption.sizes().slice(1) != c.caption.sizes().slice(1) ||
      (c.null_caption.size(0) != B && c.null_caption.size(0) != 1))
    throw Error("text guidance: the null caption must have the captions' shape (" + std::to_string(L) + " tokens)");
  if (c.null_caption.size(0) != B) c.null_caption = c.null_caption.expand_as(c.caption);
  if (c.null_mask.defined() && c.null_mask.sizes() != at::IntArrayRef({B, L})) {
    if (c.null_mask.dim() == 2 && c.null_mask.size(0) == 1 && c.null_mask.size(1) == L)
      c.null_mask = c.null_mask.expand({B, L});
    else
      throw Error("text guidance: the null caption's mask must be (" + std::to_string(B) + ", " + std::to_string(L) +
                  ")");
  }
  if (c.null_mask.defined() && !c.mask.defined()) c.mask = at::ones({B, L}, c.null_mask.options());
}

// The mask of a doubled batch (first, second); undefined when neither half has one.
at::Tensor doubled_mask(const at::Tensor& first, const at::Tensor& second) {
  if (!first.defined() && !second.defined()) return {};
  return at::cat({first, second}, 0);
}

}  // namespace

NoiseFn text_guided_noise_fn(TextConditionalFn eps_fn, TextCondition c) {
  if (!eps_fn) throw Error("text guidance: no model");
  check_condition(c);
  if (c.scale == 1.0)
    return [eps_fn = std::move(eps_fn), c](const at::Tensor& x, const at::Tensor& t) {
      return eps_fn(x, t, c.caption, c.mask);
    };
  const at::Tensor y_in = at::cat({c.null_caption, c.caption}, 0);  // [uncond; cond] as model_wrapper
  const at::Tensor mask_in = doubled_mask(c.null_mask.defined() ? c.null_mask : c.mask, c.mask);
  return [eps_fn = std::move(eps_fn), y_in, mask_in, scale = c.scale](const at::Tensor& x, const at::Tensor& t) {
    const at::Tensor out = eps_fn(at::cat({x, x}), at::cat({t, t}), y_in, mask_in);
    const auto halves = out.chunk(2, 0);
    const at::Tensor &noise_uncond = halves[0], &noise = halves[1];
    return noise_uncond + scale * (noise - noise_uncond);
  };
}

ModelFn text_guided_model_fn(TextConditionalFn forward, TextCondition c, GuidanceChannels channels) {
  if (!forward) throw Error("text guidance: no model");
  check_condition(c);
  if (c.scale == 1.0)
    return [forward = std::move(forward), c](const at::Tensor& x, const at::Tensor& t) {
      return forward(x, t, c.caption, c.mask);
    };
  const at::Tensor y_in = at::cat({c.caption, c.null_caption}, 0);  // [cond; uncond] as guidance.h
  const at::Tensor mask_in = doubled_mask(c.mask, c.null_mask.defined() ? c.null_mask : c.mask);
  return [forward = std::move(forward), y_in, mask_in, scale = c.scale, channels](const at::Tensor& x,
                                                                                  const at::Tensor& t) {
    const at::Tensor out = forward(at::cat({x, x}), at::cat({t, t}), y_in, mask_in);
    return combine_guided_halves(out, x.size(1), scale, channels);
  };
}

}  // namespace lit
