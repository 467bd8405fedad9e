// Limits on what an input file may make the program allocate, checked before the allocation. Each has a
// default that every legitimate file of this project stays far below; the pixel cap can be raised for big
// images (environment LIT_MAX_IMAGE_PIXELS, or `lit --max-image-pixels N <command>`).
#pragma once

#include <cstdint>
#include <string>

namespace lit {

struct InputLimits {
  // Pixels (width x height) of one decoded image: 64 Mi pixels (8192 x 8192, 192 MiB as 8-bit RGB).
  uint64_t max_image_pixels = uint64_t(64) << 20;
  // Bytes of one PNG ancillary chunk once decompressed (text chunks: tEXt, zTXt, iTXt; ICC profiles).
  uint64_t max_png_chunk_bytes = uint64_t(1) << 20;
  // Ancillary PNG chunks kept per file (text chunks and the like).
  uint32_t max_png_chunks = 1000;
  // Bytes of an encoded image file that is read whole (JPEG, WebP, BMP through OpenCV).
  uint64_t max_image_file_bytes = uint64_t(512) << 20;
};

// The limits in force: the defaults above, LIT_MAX_IMAGE_PIXELS when set, then whatever set_input_limits set.
InputLimits input_limits();
void set_input_limits(const InputLimits& limits);

// Parses a pixel count for LIT_MAX_IMAGE_PIXELS / --max-image-pixels: a positive integer; throws lit::Error.
uint64_t parse_pixel_limit(const std::string& text, const std::string& what);

}  // namespace lit
