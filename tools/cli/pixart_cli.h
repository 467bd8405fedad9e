// `lit convert` and `lit inspect` for PixArt-Σ / PixArt-α / LiT-T2I checkpoints (official .pth, safetensors,
// diffusers folders): called by cmd_convert.cpp / cmd_inspect.cpp when model/t2i/pixart_io.h recognises the input.
#pragma once

#include <string>

#include "weights/convert.h"

namespace lit::cli {

// Writes the project's safetensors (official names, the PixArt config in the "config" metadata) and prints
// what it read and wrote.
void convert_pixart(const std::string& input, const std::string& output, const ConvertOptions& options);

// Prints the model family, layout, config, null caption, tensors, parameters and dtypes; reads no tensor data.
void inspect_pixart(const std::string& path, const std::string& use_weights, int show);

}  // namespace lit::cli
