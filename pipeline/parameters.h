// The PNG parameters record of a generated image (weights/generation_params.h's A1111 text), defined once
// for both front ends: which fields, in which order, and how a record reads back into a request.
//
//   Sneaker
//   Steps: 20, Sampler: dpm++2m, CFG scale: 4, Seed: 7, Size: 32x32, Model: lit-fmnist.safetensors, Class: 7,
//   Guidance channels: dit, Dtype: fp32, Architecture: LiT-..., Run seed: 5, Image index: 2
//
// A text-to-image image's record is the web UI's own: the prompt, "Negative prompt: ..." when there is one,
// then the settings (Size WIDTHxHEIGHT, Text encoder, Guidance convention, Null caption); it reads back
// into Conditioning::Kind::Prompt with that prompt and negative prompt.
// For class models the prompt line is the class name ("unconditional" for the null class). Eta follows Guidance
// channels for DDIM; "Clamp x0: on|off" follows when the request overrides the model's default. Reading back gives the
// request that makes the image again as image 0 (its own seed), with the model, VAE, device and execution
// options of the base request.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/request.h"
#include "weights/generation_params.h"

namespace lit {

struct ModelInfo;  // pipeline/session.h

// The record of image `index` (label `label`, num_classes for the null class) of a request made with `model`.
GenerationParams image_params(const GenerationRequest& request, const ModelInfo& model, int64_t label, int64_t index);

struct RestoredRequest {
  GenerationRequest request;
  std::vector<std::string> notes;  // what could not be restored, or differs from the loaded model, one line each
};

// `base` with every field the record holds: steps, sampler, guidance scale and channels, eta, dtype, clamp,
// the class (Conditioning::Kind::Classes with the class id, or Unconditional), seed = the image's own seed,
// num_images kept. `model` (may be null) names the classes and says whether size, model and VAE fit. Fields
// that do not read are notes, not failures. Throws lit::Error when the record holds nothing at all.
RestoredRequest request_from_params(const GenerationParams& params, const GenerationRequest& base,
                                    const ModelInfo* model);

// "model.pt" for "/models/model.pt", "sd-vae-ft-ema" for "/vae/sd-vae-ft-ema/": how the record names files.
std::string record_file_name(std::string path);

}  // namespace lit
