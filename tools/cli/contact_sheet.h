// Contact sheets: many uint8 (H, W, C) images on one sheet, optionally enlarged (nearest neighbour, for
// tiny images) and captioned (the class name or the prompt under each image).
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace lit::cli {

struct SheetOptions {
  int64_t columns = 0;                // 0: ceil(sqrt(n)), as torchvision's make_grid is usually called
  int64_t scale = 1;                  // every image enlarged this many times
  std::vector<std::string> captions;  // one per image, or empty for none
  int64_t caption_lines = 1;          // 1: a caption is cut to the image's width; more: wrapped at spaces
};

// A sheet of images with 2-pixel black borders; captions are drawn in white on a black strip under each
// image: cut at a character to the image's width, or with caption_lines > 1 wrapped at spaces into up to that
// many lines (the last one ending in "..." when the text goes on); the strip is as tall as the longest caption
// needs (14 pixels a line of one, 12 more for each further line). Throws lit::Error for images of different
// shapes, a scale or column count below 1, caption_lines below 1, or captions asked for in a build without
// OpenCV's imgproc.
at::Tensor contact_sheet(const std::vector<at::Tensor>& images, const SheetOptions& options = {});

// Whether this build can draw captions (OpenCV imgproc was found).
bool can_draw_captions();

}  // namespace lit::cli
