#include "model/text/t5_loader.h"

#include <sys/stat.h>

#include <set>

#include "common/error.h"
#include "weights/safetensors_folder.h"

namespace lit::text {
namespace {

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string shape_string(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

T5Files find_t5_files(const std::string& path) {
  if (!is_dir(path)) throw Error(path + ": no such folder (a Hugging Face T5 folder is expected)");
  T5Files files;
  files.folder = path;
  if (!is_file(path + "/config.json") && is_file(path + "/text_encoder/config.json"))
    files.folder = path + "/text_encoder";  // a diffusers pipeline
  files.config = files.folder + "/config.json";
  if (!is_file(files.config))
    throw Error(files.config +
                ": missing (a T5 folder holds config.json, model.safetensors or its shards, and spiece.model)");
  files.spiece_model = files.folder + "/spiece.model";
  if (!is_file(files.spiece_model) && is_file(files.folder + "/../tokenizer/spiece.model"))
    files.spiece_model = files.folder + "/../tokenizer/spiece.model";
  if (!is_file(files.spiece_model))
    throw Error(files.spiece_model + ": missing (T5's tokenizer, the SentencePiece model, belongs beside config.json)");
  return files;
}

at::ScalarType t5_compute_dtype(at::ScalarType requested, const at::Device& device, std::string* notice) {
  if (requested == at::kFloat || requested == at::kBFloat16) return requested;
  if (requested == at::kHalf) {
    const at::ScalarType use = device.is_cuda() ? at::kBFloat16 : at::kFloat;
    if (notice)
      *notice =
          std::string("T5 overflows in fp16 (its activations exceed fp16's range): the text encoder computes in ") +
          (use == at::kBFloat16 ? "bf16" : "fp32 (on the CPU)") + " instead";
    return use;
  }
  throw Error(std::string("T5 text encoder: unsupported dtype ") + c10::toString(requested) + " (fp32, bf16, fp16)");
}

T5EncoderModel load_t5_encoder(const T5Files& files, const at::Device& device, at::ScalarType dtype) {
  const T5Config config = read_t5_config(files.config);
  const SafetensorsFolder weights = SafetensorsFolder::open(files.folder);
  T5EncoderModel model(config);
  std::set<std::string> used;
  const std::string described = " (" + files.config + ": " + config.summary() + ")";
  model.visit([&](const std::string& name, at::Tensor& param) {
    std::string key = name;
    // transformers saves the encoder's embed_tokens once, as the shared embedding; some exports keep both.
    if (name == "shared.weight" && !weights.contains(key) && weights.contains("encoder.embed_tokens.weight"))
      key = "encoder.embed_tokens.weight";
    if (!weights.contains(key)) {
      const std::string listing = weights.sharded() ? weights.index_path() : files.folder + "/model.safetensors";
      throw Error(listing + ": missing tensor '" + key + "'" + described);
    }
    const SafetensorsEntry& entry = weights.entry(key);
    if (at::IntArrayRef(entry.shape) != param.sizes())
      throw Error(weights.file_of(key) + ": tensor '" + key + "' has shape " + shape_string(entry.shape) + " but " +
                  files.config + " implies " + shape_string(param.sizes()));
    param = weights.tensor(key).to(device, dtype).contiguous();
    used.insert(key);
  });
  for (const std::string& name : weights.names()) {
    if (name.rfind("encoder.", 0) != 0 || used.count(name) || name == "encoder.embed_tokens.weight") continue;
    throw Error(weights.file_of(name) + ": tensor '" + name + "' is not part of the encoder that " + files.config +
                " describes (" + config.summary() + ")");
  }
  return model;
}

}  // namespace lit::text
