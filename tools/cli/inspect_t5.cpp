#include "tools/cli/inspect_t5.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "model/text/t5_loader.h"
#include "model/text/tokenizer.h"
#include "weights/safetensors_folder.h"

namespace lit::cli {
namespace {

bool is_t5_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return false;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("model_type") || !j["model_type"].is_string()) return false;
  const std::string type = j["model_type"].get<std::string>();
  return type == "t5" || type == "mt5";
}

std::string thousands(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

}  // namespace

bool looks_like_t5_folder(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  return is_t5_config(path + "/config.json") || is_t5_config(path + "/text_encoder/config.json");
}

void inspect_t5_folder(const std::string& path) {
  const text::T5Files files = text::find_t5_files(path);
  const text::T5Config config = text::read_t5_config(files.config);
  const SafetensorsFolder weights = SafetensorsFolder::open(files.folder);
  std::set<std::string> shards;
  std::map<std::string, size_t> dtypes;
  uint64_t params = 0;
  size_t encoder_tensors = 0, other_tensors = 0;
  for (const std::string& name : weights.names()) {
    const bool encoder = name == "shared.weight" || name.rfind("encoder.", 0) == 0;
    if (!encoder) {
      ++other_tensors;
      continue;
    }
    const SafetensorsEntry& e = weights.entry(name);  // maps the shard, reads its header only
    uint64_t n = 1;
    for (int64_t d : e.shape) n *= static_cast<uint64_t>(d);
    if (name != "encoder.embed_tokens.weight" || !weights.contains("shared.weight")) params += n;
    ++encoder_tensors;
    dtypes[e.dtype]++;
    shards.insert(weights.file_of(name));
  }
  const text::T5Tokenizer tokenizer = text::T5Tokenizer::load(files.spiece_model);
  std::printf("folder      %s\n", files.folder.c_str());
  std::printf("format      Hugging Face T5 encoder (%s)\n",
              weights.sharded() ? ("sharded: " + std::to_string(shards.size()) + " shards hold the encoder, index " +
                                   weights.index_path())
                                      .c_str()
                                : "model.safetensors");
  std::printf("config      %s\n", config.summary().c_str());
  std::printf(
      "tensors     %zu encoder%s\n", encoder_tensors,
      other_tensors ? (", " + std::to_string(other_tensors) + " others (decoder, lm_head: not read)").c_str() : "");
  std::printf("parameters  %s (the config implies %s)\n", thousands(params).c_str(),
              thousands(static_cast<uint64_t>(config.parameter_count())).c_str());
  std::printf("dtypes     ");
  for (const auto& [d, n] : dtypes) std::printf(" %s (%zu)", d.c_str(), n);
  std::printf("\n");
  std::printf("tokenizer   %s: %lld ids (%lld SentencePiece pieces + %lld sentinels; the embedding has %lld rows)\n",
              files.spiece_model.c_str(), static_cast<long long>(tokenizer.vocab_size()),
              static_cast<long long>(tokenizer.piece_count()), static_cast<long long>(tokenizer.extra_ids()),
              static_cast<long long>(config.vocab_size));
  std::fflush(stdout);
}

}  // namespace lit::cli
