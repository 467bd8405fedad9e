#include "pipeline/request.h"

#include <cmath>

#include "common/error.h"
#include "common/format.h"
#include "common/parse_number.h"
#include "kernels/runtime/cuda_support.h"
#include "model/backbone/builtin_model.h"
#include "sampler/sampler.h"

namespace lit {

const char* clamp_x0_name(ClampX0 clamp) {
  switch (clamp) {
    case ClampX0::Auto:
      return "auto";
    case ClampX0::On:
      return "on";
    case ClampX0::Off:
      return "off";
  }
  return "?";
}

ClampX0 parse_clamp_x0(const std::string& name, const std::string& what) {
  if (name == "auto") return ClampX0::Auto;
  if (name == "on") return ClampX0::On;
  if (name == "off") return ClampX0::Off;
  throw Error(what + " " + name + ": use auto, on or off");
}

const char* guidance_convention_name(GuidanceConvention convention) {
  return convention == GuidanceConvention::Diffusers ? "diffusers" : "official";
}

GuidanceConvention parse_guidance_convention(const std::string& name) {
  if (name == "official") return GuidanceConvention::Official;
  if (name == "diffusers") return GuidanceConvention::Diffusers;
  throw Error("--guidance-convention " + name + ": use official or diffusers");
}

bool GenerationRequest::operator==(const GenerationRequest& o) const {
  return model == o.model && config == o.config && use_weights == o.use_weights && vae == o.vae && device == o.device &&
         dtype == o.dtype && execution == o.execution && sampler == o.sampler && steps == o.steps && eta == o.eta &&
         cfg_scale == o.cfg_scale && cfg_all_channels == o.cfg_all_channels && clamp_x0 == o.clamp_x0 &&
         seed == o.seed && num_images == o.num_images && conditioning == o.conditioning &&
         text_encoder == o.text_encoder && width == o.width && height == o.height && max_length == o.max_length &&
         guidance_convention == o.guidance_convention && learned_null_caption == o.learned_null_caption;
}

bool use_builtin_text_model(GenerationRequest& r, bool null_caption_chosen) {
  if (!r.model.empty() || r.conditioning.kind != Conditioning::Kind::Prompt) return false;
  const BuiltinTextModel builtin = builtin_text_model();
  r.model = builtin.model;
  if (r.text_encoder.empty()) r.text_encoder = builtin.text_encoder;
  // It was trained with caption dropout to y_embedding; the diffusers convention asks for T5's null caption.
  if (!null_caption_chosen && r.guidance_convention == GuidanceConvention::Official) r.learned_null_caption = true;
  return true;
}

void check_request(GenerationRequest& r) {
  const auto sampler = canonical_sampler_name(r.sampler);
  if (!sampler) throw Error("--sampler '" + r.sampler + "': use ddpm, ddim or dpm++2m");
  if (r.steps < 1 || r.steps > 1000)
    throw Error("--steps must be between 1 and 1000 (the process has 1000 timesteps), got " + std::to_string(r.steps));
  // Documented ranges (README): DDIM's eta in [0, 10] (1 is DDPM's variance), guidance in [0, 100].
  check_finite_range(r.eta, "--eta", 0, 10);
  check_finite_range(r.cfg_scale, "--cfg-scale", 0, 100);
  if (r.num_images < 1) throw Error("-n/--num-images must be at least 1, got " + std::to_string(r.num_images));
  if (r.use_weights != "ema" && r.use_weights != "model")
    throw Error("--use-weights " + r.use_weights + ": use ema or model");
  const Conditioning& c = r.conditioning;
  if (c.kind == Conditioning::Kind::Classes && c.classes.empty()) throw Error("--class: no class given");
  if (r.width < 0 || r.height < 0) throw Error("--width and --height must be positive");
  if (r.max_length < 0 || r.max_length > 4096)
    throw Error("--max-length must be 1..4096 caption tokens, got " + std::to_string(r.max_length));
  const c10::ScalarType dtype = parse_dtype(r.dtype);
  kernels::parse_device(r.device);  // throws naming --device
  r.sampler = *sampler;
  r.dtype = dtype_name(dtype);
}

}  // namespace lit
