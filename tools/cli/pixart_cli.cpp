#include "tools/cli/pixart_cli.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>

#include "common/format.h"
#include "common/printable.h"
#include "model/t2i/pixart_io.h"
#include "weights/safetensors.h"

namespace lit::cli {
namespace {

std::string thousands(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string family(const PixArtConfig& c) {
  if (c.is_linear()) return "LiT-T2I (PixArt-Σ with linear self-attention)";
  return c.micro_condition ? "PixArt-α (PixArtMS with micro-conditions)" : "PixArt-Σ / PixArt-α (PixArtMS)";
}

}  // namespace

void convert_pixart(const std::string& input, const std::string& output, const ConvertOptions& options) {
  const PixArtConvertResult r = convert_pixart_checkpoint(input, output, options.dtype, options.use_weights,
                                                          options.config_path, options.metadata);
  std::cout << "read    " << printable(input) << " (PixArt, " << r.layout << " layout, " << r.format
            << (r.weights_key.empty() ? std::string() : ", weights '" + printable(r.weights_key) + "'") << ")\n";
  std::cout << "wrote   " << printable(output) << ": " << r.tensor_count << " tensors, " << r.parameter_count
            << " parameters" << (options.dtype ? ", floating tensors as " + dtype_name(*options.dtype) : std::string())
            << "\n";
  std::cout << "config  " << r.config.summary() << " (from " << printable(r.config_source) << ")\n";
  for (const std::string& name : r.dropped)
    std::cout << "dropped " << printable(name) << " (recomputed for every token grid)\n";
  if (!r.has_null_caption)
    std::cout << "note    no y_embedder.y_embedding (learned null caption) in the input: guidance uses the text "
                 "encoder's \"\"\n";
}

void inspect_pixart(const std::string& path, const std::string& use_weights, int show) {
  const PixArtCheckpoint ckpt = read_pixart_checkpoint(path, use_weights, /*shapes_only=*/true);
  std::optional<PixArtConfig> config = ckpt.config;
  std::string source = ckpt.config_source;
  if (!config) {
    try {
      int64_t tokens = 0;
      if (auto it = ckpt.metadata.find("_pos_embed_tokens"); it != ckpt.metadata.end()) tokens = std::stoll(it->second);
      config = infer_pixart_config(ckpt.tensors, tokens);
      source = "inferred from tensor shapes";
    } catch (const Error& e) {
      source = e.what();
    }
  }
  std::map<std::string, size_t> dtypes;
  uint64_t params = 0;
  for (const auto& [name, t] : ckpt.tensors) {
    dtypes[safetensors_dtype_name(t.scalar_type())]++;
    params += static_cast<uint64_t>(t.numel());
  }
  std::cout << "file         " << printable(path) << "\n";
  std::cout << "model        " << (config ? family(*config) : std::string("PixArt (config unknown)")) << "\n";
  std::cout << "layout       " << ckpt.layout << " (" << ckpt.format
            << (ckpt.weights_key.empty() ? std::string() : ", weights '" + printable(ckpt.weights_key) + "'") << ")\n";
  if (config)
    std::cout << "config       " << config->summary() << "\n             " << config->to_json() << "  (from "
              << printable(source) << ")\n";
  else
    std::cout << "config       (none: " << printable(source) << ")\n";
  if (ckpt.tensors.contains("y_embedder.y_embedding"))
    std::cout << "null caption y_embedder.y_embedding "
              << shape_string(ckpt.tensors.at("y_embedder.y_embedding").sizes()) << "\n";
  else
    std::cout << "null caption none (guidance uses the text encoder's \"\")\n";
  for (const auto& [k, v] : ckpt.metadata)
    if (k != "config" && k.rfind('_', 0) != 0)
      std::cout << "metadata     " << printable(k) << " = " << printable(v) << "\n";
  std::cout << "tensors      " << ckpt.tensors.size() << " (official names"
            << (ckpt.dropped.empty() ? std::string() : "; pos_embed ignored") << ")\n";
  std::cout << "parameters   " << thousands(params) << "\n";
  std::cout << "dtypes      ";
  for (const auto& [d, n] : dtypes) std::cout << " " << d << " (" << n << ")";
  std::cout << "\n";
  const int n = std::min<int>(std::max(show, 0), static_cast<int>(ckpt.tensors.size()));
  std::cout << "first " << n << " tensors:\n";
  std::cout.flush();
  for (int i = 0; i < n; ++i) {
    const auto& [name, t] = ckpt.tensors.items()[static_cast<size_t>(i)];
    std::printf("  %-44s %-6s %s\n", printable(name).c_str(), safetensors_dtype_name(t.scalar_type()).c_str(),
                shape_string(t.sizes()).c_str());
  }
  std::fflush(stdout);
}

}  // namespace lit::cli
