#include "tools/cli/inspect_image.h"

#include <iomanip>
#include <iostream>

#include "weights/generation_params.h"
#include "weights/image_io.h"

namespace lit::cli {

void inspect_png(const std::string& path) {
  const PngInfo info = read_png_info(path);
  std::cout << "file        " << path << "\n";
  std::cout << "format      PNG, " << info.width << "x" << info.height << ", " << info.color_type << ", "
            << info.bit_depth << "-bit\n";
  const std::string* parameters = nullptr;
  for (const auto& [key, text] : info.text) {
    if (key == kParametersKeyword && !parameters) {
      parameters = &text;
    } else {
      std::cout << "text        " << key << " = " << text << "\n";
    }
  }
  if (!parameters) {
    std::cout << "parameters  (none)\n";
    return;
  }
  const GenerationParams p = parse_generation_params(*parameters);
  std::cout << "prompt      " << p.prompt << "\n";
  if (!p.negative_prompt.empty()) std::cout << "negative    " << p.negative_prompt << "\n";
  for (const auto& [key, value] : p.fields)
    std::cout << "  " << std::left << std::setw(18) << key + ":"
              << " " << value << "\n";
  // The text itself, verbatim, for other tools and for copying.
  std::cout << "parameters:\n" << *parameters << "\n";
}

}  // namespace lit::cli
