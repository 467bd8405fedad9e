#include "tools/cli/inspect_image.h"

#include <iomanip>
#include <iostream>

#include "common/printable.h"
#include "weights/generation_params.h"
#include "weights/image_io.h"

namespace lit::cli {

namespace {

// Multi-line text from the file: each line escaped (control characters shown, never obeyed), lines kept.
std::string printable_lines(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (true) {
    const size_t end = text.find('\n', start);
    out += printable(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return out;
    out += '\n';
    start = end + 1;
  }
}

}  // namespace

// Everything that comes from the file is printed through printable(): a PNG's text cannot clear the screen,
// set the title or forge lines.
void inspect_png(const std::string& path) {
  const PngInfo info = read_png_info(path);
  std::cout << "file        " << printable(path) << "\n";
  std::cout << "format      PNG, " << info.width << "x" << info.height << ", " << info.color_type << ", "
            << info.bit_depth << "-bit\n";
  const std::string* parameters = nullptr;
  for (const auto& [key, text] : info.text) {
    if (key == kParametersKeyword && !parameters) {
      parameters = &text;
    } else {
      std::cout << "text        " << printable(key) << " = " << printable(text) << "\n";
    }
  }
  if (!parameters) {
    std::cout << "parameters  (none)\n";
    return;
  }
  const GenerationParams p = parse_generation_params(*parameters);
  std::cout << "prompt      " << printable(p.prompt) << "\n";
  if (!p.negative_prompt.empty()) std::cout << "negative    " << printable(p.negative_prompt) << "\n";
  for (const auto& [key, value] : p.fields)
    std::cout << "  " << std::left << std::setw(18) << printable(key) + ":"
              << " " << printable(value) << "\n";
  // The text itself, verbatim, for other tools and for copying.
  std::cout << "parameters:\n" << printable_lines(*parameters) << "\n";
}

}  // namespace lit::cli
