// Image files. PNG through libpng, always, with its text chunks (the `parameters` chunk in which
// generators record how an image was made, see weights/generation_params.h); JPEG and WebP through OpenCV's
// imgcodecs when the build found it (image_codecs_summary() says). Files are written under a temporary name
// and renamed into place, so an interrupted run never leaves a half-written image.
//
// In memory an image is an 8-bit RGB tensor (H, W, 3), uint8, on the CPU. images_to_uint8 and
// images_from_uint8 convert to and from the models' (N, 3, H, W) float tensors in [-1, 1].
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace lit {

using TextChunks = std::vector<std::pair<std::string, std::string>>;  // (keyword, UTF-8 text), in file order

struct PngInfo {
  int64_t width = 0, height = 0;
  int bit_depth = 8;
  std::string color_type;  // "RGB", "RGBA", "gray", "gray+alpha", "palette"
  TextChunks text;         // every tEXt, zTXt and iTXt chunk, before and after the image data
};

// True when the file starts with the PNG signature.
bool looks_like_png(const std::string& path);

// Reads a PNG (any colour type and bit depth; converted to 8-bit RGB, alpha dropped) or, with OpenCV,
// a JPEG, WebP, BMP, ... Returns uint8 (H, W, 3). Throws lit::Error naming the file and the problem.
at::Tensor read_image(const std::string& path);

// Reads a PNG's header and text chunks (the pixels are decoded and discarded).
PngInfo read_png_info(const std::string& path);

struct ImageWriteOptions {
  TextChunks text;   // PNG only: written as tEXt (Latin-1 text) or iTXt (anything else), before the pixels
  int quality = 95;  // JPEG and WebP
  bool sync = true;  // false: still atomic, but not fsynced; the caller syncs a whole folder (sync_file_system)
};

// Writes uint8 (H, W, 3) RGB (or (H, W, 1) gray) in the format the extension names: .png, or with OpenCV
// .jpg/.jpeg/.webp. Atomic. Throws lit::Error.
void write_image(const std::string& path, const at::Tensor& pixels, const ImageWriteOptions& options = {});

// One line for --version and errors: which formats this build reads and writes.
std::string image_codecs_summary();
bool can_write_image_format(const std::string& path);  // by extension

// (N, C, H, W) float in [-1, 1] -> (N, H, W, C) uint8 on the CPU: clamped, then x * 255 + 0.5 truncated, the
// rounding of torchvision's save_image that DiT's sample grids use.
at::Tensor images_to_uint8(const at::Tensor& images);
// (H, W, C) or (N, H, W, C) uint8 -> (N, C, H, W) float32 in [-1, 1] (x / 127.5 - 1).
at::Tensor images_from_uint8(const at::Tensor& pixels);

}  // namespace lit
