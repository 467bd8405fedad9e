// lit inspect FILE: what a checkpoint holds, whatever its format (safetensors, torch.save zip or legacy, a
// training checkpoint): format, model config, which weights were taken, tensors, parameters, dtypes. Reads
// names and shapes only, never the tensor data, so it is instant on multi-gigabyte files.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "common/format.h"
#include "common/printable.h"
#include "model/t2i/pixart_io.h"
#include "tools/cli/commands.h"
#include "tools/cli/inspect_image.h"
#include "tools/cli/inspect_t5.h"
#include "tools/cli/pixart_cli.h"
#include "weights/checkpoint.h"
#include "weights/image_io.h"
#include "weights/safetensors.h"

namespace lit::cli {
namespace {

std::string thousands(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

struct InspectOptions {
  std::string path;
  std::string use_weights = "ema";
  int show = 10;
};

void inspect(const InspectOptions& opt) {
  if (looks_like_png(opt.path)) return inspect_png(opt.path);  // generated images: their parameters
  if (looks_like_t5_folder(opt.path)) return inspect_t5_folder(opt.path);  // a T5 text encoder folder
  if (is_pixart_checkpoint(opt.path)) return inspect_pixart(opt.path, opt.use_weights, opt.show);  // PixArt / LiT-T2I
  const CheckpointInfo info = read_checkpoint_info(opt.path, opt.use_weights);
  std::string config_source;
  const std::string config = checkpoint_config_json(opt.path, info.metadata, &config_source);
  std::map<std::string, size_t> dtypes;
  for (const auto& t : info.tensors) dtypes[safetensors_dtype_name(t.dtype)]++;

  // Everything that comes from the file is printed through printable(): escaped, never obeyed by the terminal.
  std::cout << "file        " << printable(opt.path) << "\n";
  std::cout << "format      " << checkpoint_format_name(info.format) << "\n";
  if (!info.weights_key.empty()) {
    std::string keys;
    for (const auto& k : info.top_level_keys) keys += (keys.empty() ? "" : ", ") + printable(k);
    std::cout << "weights     '" << printable(info.weights_key) << "' of a training checkpoint (top-level keys: " << keys << ")\n";
  }
  if (config.empty()) {
    std::cout << "config      (none: give one with `lit convert --config`)\n";
  } else {
    std::cout << "config      " << printable(nlohmann::ordered_json::parse(config).dump()) << "  (from "
              << (config_source == "metadata" ? std::string("the file's metadata") : printable(config_source)) << ")\n";
  }
  for (const auto& [k, v] : info.metadata)
    if (k != "config") std::cout << "metadata    " << printable(k) << " = " << printable(v) << "\n";
  std::cout << "tensors     " << info.tensors.size() << "\n";
  std::cout << "parameters  " << thousands(parameter_count(info.tensors)) << "\n";
  std::cout << "dtypes     ";
  for (const auto& [d, n] : dtypes) std::cout << " " << d << " (" << n << ")";
  std::cout << "\n";
  const int n = std::min<int>(std::max(opt.show, 0), static_cast<int>(info.tensors.size()));
  std::cout << "first " << n << " tensors:\n";
  for (int i = 0; i < n; ++i) {
    const auto& t = info.tensors[static_cast<size_t>(i)];
    std::printf("  %-44s %-6s %s\n", printable(t.name).c_str(), safetensors_dtype_name(t.dtype).c_str(),
                shape_string(t.shape).c_str());
  }
  std::fflush(stdout);
  std::cout.flush();
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("inspect", "Show what a checkpoint file holds (safetensors, .pt, training checkpoint)");
  static InspectOptions opt;
  cmd->add_option("file", opt.path, "checkpoint file")->required();
  cmd->add_option("--use-weights", opt.use_weights, "state dict of a training checkpoint to show (ema, model)")
      ->capture_default_str();
  cmd->add_option("--show", opt.show, "how many tensors to list")->capture_default_str();
  cmd->callback([] { inspect(opt); });
}

}  // namespace lit::cli
