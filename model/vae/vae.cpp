#include "model/vae/vae.h"

#include <ATen/core/grad_mode.h>
#include <sys/stat.h>

#include <map>
#include <utility>

#include "common/error.h"
#include "common/format.h"
#include "model/vae/vae_tiling.h"
#include "weights/checkpoint.h"

namespace lit {
namespace {

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string parent_folder(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string join(const std::string& folder, const std::string& name) {
  return folder.empty() || folder.back() == '/' ? folder + name : folder + "/" + name;
}

// Older diffusers exports (and the VAE files many SD tools still ship) name the mid-block attention's
// projections query/key/value/proj_attn; today's diffusers names them to_q/to_k/to_v/to_out.0.
std::string current_attention_name(const std::string& name) {
  static const std::pair<const char*, const char*> renames[] = {
      {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};
  if (name.find(".attentions.") == std::string::npos) return name;
  for (const auto& [old_name, new_name] : renames) {
    const size_t at = name.rfind(old_name);
    if (at != std::string::npos) return name.substr(0, at) + new_name + name.substr(at + std::string(old_name).size());
  }
  return name;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Posterior
// ---------------------------------------------------------------------------------------------------------
at::Tensor DiagonalGaussian::sample(std::optional<at::Generator> generator) const {
  // The noise comes from the generator's device (a CPU generator gives the same sample on every device).
  c10::optional<at::Generator> gen;
  at::TensorOptions options = mean.options();
  if (generator) {
    gen = *generator;
    options = options.device(generator->device());
  }
  const at::Tensor noise = at::randn(mean.sizes(), gen, options).to(mean.device());
  return mean + at::exp(0.5 * logvar) * noise;
}

// ---------------------------------------------------------------------------------------------------------
// AutoencoderKL
// ---------------------------------------------------------------------------------------------------------
AutoencoderKL::AutoencoderKL(VaeConfig config) : config_(std::move(config)), encoder_(config_), decoder_(config_) {
  const int64_t z = config_.latent_channels;
  if (config_.use_quant_conv) quant_conv_ = vae::Conv2d(2 * z, 2 * z, 1);
  if (config_.use_post_quant_conv) post_quant_conv_ = vae::Conv2d(z, z, 1);
}

at::Device AutoencoderKL::device() const {
  return decoder_.conv_in.weight.device();
}
at::ScalarType AutoencoderKL::dtype() const {
  return decoder_.conv_in.weight.scalar_type();
}

void AutoencoderKL::visit(const vae::ParamVisitor& fn) {
  encoder_.visit("encoder", fn);
  decoder_.visit("decoder", fn);
  if (config_.use_quant_conv) quant_conv_.visit("quant_conv", fn);
  if (config_.use_post_quant_conv) post_quant_conv_.visit("post_quant_conv", fn);
}

void AutoencoderKL::to(at::Device device, at::ScalarType dtype) {
  visit([&](const std::string&, at::Tensor& t) { t = t.to(device, dtype); });
}

void AutoencoderKL::check_input(const at::Tensor& x, int64_t channels, const char* what) const {
  if (x.dim() != 4 || x.size(1) != channels)
    throw Error(std::string("VAE ") + what + ": expected (N, " + std::to_string(channels) + ", H, W), got " +
                shape_string(x.sizes()) + (source_.empty() ? "" : " for the VAE " + source_));
}

DiagonalGaussian AutoencoderKL::encode(const at::Tensor& images) const {
  check_input(images, config_.in_channels, "encode");
  const int64_t f = config_.downsample_factor();
  if (images.size(2) % f != 0 || images.size(3) % f != 0)
    throw Error("VAE encode: image size " + std::to_string(images.size(3)) + "x" + std::to_string(images.size(2)) +
                " is not a multiple of " + std::to_string(f));
  at::NoGradGuard no_grad;
  at::Tensor moments = encoder_.forward(images.to(device(), dtype()));
  if (config_.use_quant_conv) moments = quant_conv_.forward(moments);
  auto halves = moments.chunk(2, 1);
  return {halves[0], halves[1].clamp(-30.0, 20.0)};
}

at::Tensor AutoencoderKL::decode(const at::Tensor& latents, const VaeTiling& tiling) const {
  check_input(latents, config_.latent_channels, "decode");
  at::NoGradGuard no_grad;
  at::Tensor z = latents.to(device(), dtype());
  if (config_.use_post_quant_conv) z = post_quant_conv_.forward(z);
  const auto plan =
      vae::plan_tiled_decode(config_, z.size(0), z.size(2), z.size(3), tiling, at::elementSize(z.scalar_type()));
  if (!plan) {
    at::Tensor image = decoder_.forward(z);
    if (tiling.progress) tiling.progress(1, 1);
    return image;
  }
  const at::Tensor hidden = decoder_.forward_latent(z);
  return vae::decode_pixels_tiled(decoder_, config_, hidden, *plan, tiling);
}

at::Tensor AutoencoderKL::to_model_space(const at::Tensor& z) const {
  return (z - config_.shift_factor) * config_.scaling_factor;
}

at::Tensor AutoencoderKL::from_model_space(const at::Tensor& z) const {
  return z / config_.scaling_factor + config_.shift_factor;
}

// ---------------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------------
VaeFiles find_vae_files(const std::string& path, const std::string& config_path) {
  VaeFiles files;
  if (is_directory(path)) {
    // A whole diffusers pipeline keeps its VAE in vae/.
    std::string folder = path;
    if (config_path.empty() && !is_file(join(path, "config.json")) && is_file(join(path, "vae/config.json")))
      folder = join(path, "vae");
    files.config = config_path.empty() ? join(folder, "config.json") : config_path;
    if (!is_file(files.config)) {
      if (!config_path.empty()) throw Error(config_path + ": no such file");
      throw Error(path +
                  ": no config.json (a diffusers VAE folder holds config.json and "
                  "diffusion_pytorch_model.safetensors)");
    }
    for (const char* name : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                             "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin"}) {
      if (is_file(join(folder, name))) {
        files.weights = join(folder, name);
        break;
      }
    }
    if (files.weights.empty())
      throw Error(folder + ": no diffusion_pytorch_model.safetensors (or .bin) beside its config.json");
    return files;
  }
  if (!is_file(path)) throw Error(path + ": no such file or folder");
  files.weights = path;
  files.config = config_path.empty() ? join(parent_folder(path), "config.json") : config_path;
  if (!is_file(files.config)) {
    if (!config_path.empty()) throw Error(config_path + ": no such file");
    throw Error(path + ": no config.json beside it (give the VAE's diffusers folder, or its config.json)");
  }
  return files;
}

at::ScalarType vae_dtype_for(at::ScalarType model_dtype) {
  return model_dtype == at::kBFloat16 ? at::kBFloat16 : at::kFloat;
}

at::ScalarType vae_dtype_for(at::ScalarType model_dtype, const VaeConfig& config) {
  if (model_dtype == at::kHalf && !config.force_upcast) return at::kHalf;
  return vae_dtype_for(model_dtype);
}

AutoencoderKL load_vae(const std::string& path, const VaeLoadOptions& options) {
  const VaeFiles files = find_vae_files(path, options.config_path);
  AutoencoderKL vae(read_vae_config(files.config));
  vae.set_source(path);

  const LoadedCheckpoint checkpoint = load_checkpoint(files.weights);
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, tensor] : checkpoint.tensors) tensors[current_attention_name(name)] = tensor;

  int64_t missing = 0;
  std::string first_missing;
  vae.visit([&](const std::string& name, at::Tensor& param) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (missing++ == 0) first_missing = name;
      return;
    }
    at::Tensor t = it->second;
    // Some exports store the attention projections as 1x1 convolutions: the same numbers.
    if (t.dim() == 4 && param.dim() == 2 && t.size(2) == 1 && t.size(3) == 1) t = t.flatten(1);
    if (t.sizes() != param.sizes())
      throw Error(files.weights + ": tensor '" + name + "' has shape " + shape_string(t.sizes()) + " but " +
                  files.config + " implies " + shape_string(param.sizes()));
    param = t.to(options.device, options.dtype).contiguous();
    tensors.erase(it);
  });
  if (missing > 0)
    throw Error(files.weights + ": no tensor '" + first_missing + "'" +
                (missing > 1 ? " (and " + std::to_string(missing - 1) + " more)" : "") +
                ": not an AutoencoderKL with the architecture of " + files.config);
  if (!tensors.empty())
    throw Error(files.weights + ": unexpected tensor '" + tensors.begin()->first + "'" +
                (tensors.size() > 1 ? " (and " + std::to_string(tensors.size() - 1) + " more)" : "") +
                ": not an AutoencoderKL with the architecture of " + files.config);
  return vae;
}

void check_latent_channels(const AutoencoderKL& vae, int64_t channels, const std::string& what) {
  if (vae.latent_channels() == channels) return;
  throw Error("the VAE " + (vae.source().empty() ? std::string() : vae.source() + " ") + "has " +
              std::to_string(vae.latent_channels()) + " latent channels, but " + what + " has " +
              std::to_string(channels) + ": use the VAE the model was trained with");
}

}  // namespace lit
