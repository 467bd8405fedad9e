// `lit inspect IMAGE.png`: the image's size and text chunks, with the generation parameters (the web UI's
// `parameters` chunk) taken apart. Called by cmd_inspect.cpp when the file is a PNG.
#pragma once

#include <string>

namespace lit::cli {

void inspect_png(const std::string& path);

}  // namespace lit::cli
