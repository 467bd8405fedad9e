// GenerationParams: how an image was made, in the text format AUTOMATIC1111's web UI stores in a PNG's
// `parameters` text chunk and that other tools (ComfyUI's importers, civitai, image browsers) read:
//
//   a photo of a corgi                       <- the prompt (any number of lines); for DiT/LiT the class
//   Negative prompt: blurry                  <- optional, may continue on further lines
//   Steps: 250, Sampler: DDPM, CFG scale: 4, Seed: 0, Size: 256x256, Model: DiT-XL-2-256, ...
//
// The last line holds comma-separated `Key: value` pairs; a value containing a comma, colon, newline or
// quote, or starting or ending with a space, is written as a JSON string ("..."). Keys are the web UI's where
// one exists (Steps, Sampler, CFG scale, Seed, Size, Model, Model hash) and our own otherwise (VAE,
// Guidance channels, ...). format and parse are inverse: parse(format(p)) == p.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/format.h"  // format_number, for the fields' numbers

namespace lit {

// The PNG text keyword the web UI and its readers use.
inline constexpr const char* kParametersKeyword = "parameters";

struct GenerationParams {
  std::string prompt;  // the prompt, or the class for class-conditional models ("class 207")
  std::string negative_prompt;
  std::vector<std::pair<std::string, std::string>> fields;  // in order

  // The value of a field, if present.
  std::optional<std::string> get(const std::string& key) const;
  // Replaces a field's value in place, or appends it.
  void set(const std::string& key, const std::string& value);

  bool operator==(const GenerationParams& other) const {
    return prompt == other.prompt && negative_prompt == other.negative_prompt && fields == other.fields;
  }
};

// The text; throws lit::Error for a key that could not be read back (empty, or holding ':' ',' '"' or a
// newline).
std::string format_generation_params(const GenerationParams& params);

// Reads the text back, as the web UI does: the last line is the fields when it reads as at least one
// `Key: value` pair from start to end and either has three or more pairs or follows other lines (a
// one-line prompt such as "style: oil" stays a prompt); lines before it are the prompt, up to a line
// starting with "Negative prompt:", and the negative prompt after that.
GenerationParams parse_generation_params(const std::string& text);

// The first "parameters" text among a PNG's text chunks (PngInfo::text, as (keyword, text) pairs), or nothing.
std::optional<std::string> find_parameters_text(const std::vector<std::pair<std::string, std::string>>& chunks);

}  // namespace lit
