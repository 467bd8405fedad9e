// `lit inspect DIR` for a Hugging Face T5 text-encoder folder (or a diffusers pipeline folder with
// text_encoder/): its config, weights layout, parameters, dtypes and tokenizer. Reads headers only, never
// the tensor data. Called by cmd_inspect.cpp when the path is such a folder.
#pragma once

#include <string>

namespace lit::cli {

// True when `path` is a folder whose config.json (or text_encoder/config.json) says model_type t5 or mt5.
bool looks_like_t5_folder(const std::string& path);
void inspect_t5_folder(const std::string& path);

}  // namespace lit::cli
