// The pixel size an encoded image declares, read from its header alone (PNG, JPEG, WebP, BMP), so that the
// pixel cap of common/input_limits.h is applied before a decoder allocates anything.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace lit {

struct ImageHeader {
  std::string format;  // "PNG", "JPEG", "WebP", "BMP"
  uint64_t width = 0, height = 0;
};

// nullopt when the bytes are none of these formats or their header is cut short or malformed.
std::optional<ImageHeader> sniff_image_header(const unsigned char* data, size_t size);

// Throws lit::Error "<path>: <format> image of W x H pixels exceeds the limit of N pixels (...)" when the
// image is larger than input_limits().max_image_pixels, or has a zero dimension.
void check_image_pixels(const std::string& path, const ImageHeader& header);

}  // namespace lit
