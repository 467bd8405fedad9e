// lit convert IN OUT.safetensors: any checkpoint (.pt zip or legacy, a DiT training checkpoint, safetensors)
// to the project's format, safetensors with the model config in its metadata.
#include <iostream>
#include <string>

#include "tools/commands.h"
#include "weights/convert.h"

namespace lit::cli {
namespace {

struct ConvertCommandOptions {
  std::string input, output, dtype, use_weights = "ema", config;
};

void convert(const ConvertCommandOptions& opt) {
  ConvertOptions options;
  if (!opt.dtype.empty()) options.dtype = parse_float_dtype(opt.dtype);
  options.use_weights = opt.use_weights;
  options.config_path = opt.config;
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
  cmd->callback([] { convert(opt); });
}

}  // namespace lit::cli
