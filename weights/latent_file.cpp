#include "weights/latent_file.h"

#include "common/error.h"
#include "weights/safetensors.h"

namespace lit {

void write_latents(const std::string& path, const at::Tensor& latents,
                   const std::map<std::string, std::string>& metadata) {
  if (latents.dim() != 4) throw Error("cannot write " + path + ": latents must be (N, C, h, w)");
  write_safetensors(path, {{kLatentsTensorName, latents.detach().to(at::kCPU, at::kFloat)}}, metadata);
}

at::Tensor read_latents(const std::string& path, std::map<std::string, std::string>* metadata) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  std::string name = kLatentsTensorName;
  if (!file.contains(name)) {
    if (file.entries().size() != 1)
      throw Error(path + ": no tensor named 'latents' and " + std::to_string(file.entries().size()) +
                  " tensors: which one holds the latents?");
    name = file.entries().front().name;
  }
  const at::Tensor t = file.tensor(name);
  if (t.dim() != 4)
    throw Error(path + ": tensor '" + name + "' is " + std::to_string(t.dim()) + "-D, not (N, C, h, w)");
  if (metadata) *metadata = file.metadata();
  return t.to(at::kFloat).clone();
}

}  // namespace lit
