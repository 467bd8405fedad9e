#include <algorithm>
#include <cctype>

#include "sampler/sampler.h"
#include "common/error.h"

namespace lit {

std::unique_ptr<Sampler> make_sampler(const std::string& name, const SamplerOptions& options) {
  std::string key = name;
  std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
  if (key == "ddpm") return std::make_unique<DDPMSampler>(options.clip_denoised);
  if (key == "ddim") return std::make_unique<DDIMSampler>(options.eta, options.clip_denoised);
  if (key == "dpm++2m" || key == "dpmpp2m" || key == "dpm-solver++")
    return std::make_unique<DPMSolverPP2MSampler>(options.clip_denoised);
  throw Error("unknown sampler '" + name + "' (choices: ddpm, ddim, dpm++2m)");
}

}  // namespace lit
