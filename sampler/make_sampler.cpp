#include <cctype>
#include <optional>

#include "common/error.h"
#include "sampler/sampler.h"

namespace lit {

std::optional<std::string> canonical_sampler_name(const std::string& name) {
  std::string n;
  for (const char c : name)
    if (c != ' ') n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (n == "ddpm" || n == "ddim") return n;
  if (n == "dpm++2m" || n == "dpmpp2m" || n == "dpm-solver++" || n == "dpmsolver++") return std::string("dpm++2m");
  return std::nullopt;
}

const std::vector<std::string>& sampler_names() {
  static const std::vector<std::string> names = {"ddpm", "ddim", "dpm++2m"};
  return names;
}

std::unique_ptr<Sampler> make_sampler(const std::string& name, const SamplerOptions& options) {
  const std::optional<std::string> key = canonical_sampler_name(name);
  if (key == "ddpm") return std::make_unique<DDPMSampler>(options.clip_denoised);
  if (key == "ddim") return std::make_unique<DDIMSampler>(options.eta, options.clip_denoised);
  if (key == "dpm++2m") return std::make_unique<DPMSolverPP2MSampler>(options.clip_denoised);
  throw Error("unknown sampler '" + name + "' (choices: ddpm, ddim, dpm++2m)");
}

}  // namespace lit
