// lit convert IN OUT.safetensors: any checkpoint (.pt zip or legacy, a DiT training checkpoint, safetensors)
// to the project's format, safetensors with the model config in its metadata.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/t2i/pixart_io.h"
#include "tools/cli/commands.h"
#include "tools/cli/pixart_cli.h"
#include "weights/convert.h"
#include "common/error.h"

namespace lit::cli {
namespace {

struct ConvertCommandOptions {
  std::string input, output, dtype, use_weights = "ema", config, class_names;
  std::vector<std::string> metadata;
};

// One class name per line (blank lines ignored) -> the JSON array stored as the "class_names" metadata.
std::string class_names_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("--class-names: cannot open " + path);
  nlohmann::json names = nlohmann::json::array();
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  if (names.empty()) throw Error("--class-names: " + path + " names no class");
  return names.dump();
}

void convert(const ConvertCommandOptions& opt) {
  ConvertOptions options;
  if (!opt.dtype.empty()) options.dtype = parse_float_dtype(opt.dtype);
  options.use_weights = opt.use_weights;
  options.config_path = opt.config;
  for (const std::string& kv : opt.metadata) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw Error("--metadata: expected KEY=VALUE, got '" + kv + "'");
    options.metadata[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (!opt.class_names.empty()) options.metadata["class_names"] = class_names_json(opt.class_names);
  if (is_pixart_checkpoint(opt.input)) return convert_pixart(opt.input, opt.output, options);  // PixArt / LiT-T2I
  const ConvertResult r = convert_checkpoint(opt.input, opt.output, options);
  std::cout << "read    " << opt.input << " (" << checkpoint_format_name(r.input_format)
            << (r.weights_key.empty() ? std::string() : ", weights '" + r.weights_key + "'") << ")\n";
  std::cout << "wrote   " << opt.output << ": " << r.tensor_count << " tensors, " << r.parameter_count << " parameters"
            << (opt.dtype.empty() ? std::string() : ", floating tensors as " + opt.dtype) << "\n";
  if (r.config_source.empty())
    std::cout << "config  none stored (no --config given and no config.json beside the input)\n";
  else
    std::cout << "config  from " << (r.config_source == "metadata" ? "the input's metadata" : r.config_source) << "\n";
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("convert", "Convert a checkpoint (.pt, training checkpoint, safetensors) to safetensors");
  static ConvertCommandOptions opt;
  cmd->add_option("input", opt.input, "checkpoint to read")->required();
  cmd->add_option("output", opt.output, "safetensors file to write")->required();
  cmd->add_option("--dtype", opt.dtype, "cast floating-point tensors: fp32, fp16 or bf16")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  cmd->add_option("--use-weights", opt.use_weights, "state dict of a training checkpoint to take (ema, model)")
      ->capture_default_str();
  cmd->add_option("--config", opt.config, "model config JSON to store (default: config.json beside the input)");
  cmd->add_option("--class-names", opt.class_names, "file with one class name per line, stored as class_names");
  cmd->add_option("--metadata", opt.metadata, "KEY=VALUE to store in the metadata (repeatable)");
  cmd->callback([] { convert(opt); });
}

}  // namespace lit::cli
