#include "tools/cli/contact_sheet.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/format.h"

#ifdef LIT_WITH_OPENCV_IMGPROC
#include <opencv2/imgproc.hpp>
#endif

namespace lit::cli {
namespace {

constexpr int64_t kPad = 2;
constexpr double kFontScale = 0.4;  // FONT_HERSHEY_SIMPLEX at 0.4: about 7 pixels per character

#ifdef LIT_WITH_OPENCV_IMGPROC
// Draws `text` centred into a black (h, w, c) uint8 strip, cut at a character to fit.
void draw_caption(at::Tensor strip, std::string text) {
  const int h = static_cast<int>(strip.size(0)), w = static_cast<int>(strip.size(1));
  cv::Mat gray(h, w, CV_8UC1, cv::Scalar(0));
  int baseline = 0;
  cv::Size size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, kFontScale, 1, &baseline);
  while (size.width > w - 2 && text.size() > 1) {
    text.pop_back();
    size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, kFontScale, 1, &baseline);
  }
  const cv::Point origin(std::max(1, (w - size.width) / 2), (h + size.height) / 2);
  cv::putText(gray, text, origin, cv::FONT_HERSHEY_SIMPLEX, kFontScale, cv::Scalar(255), 1, cv::LINE_AA);
  const at::Tensor drawn = at::from_blob(gray.data, {h, w, 1}, at::kByte).clone();
  strip.copy_(drawn.expand({h, w, strip.size(2)}));
}
#endif

}  // namespace

bool can_draw_captions() {
#ifdef LIT_WITH_OPENCV_IMGPROC
  return true;
#else
  return false;
#endif
}

at::Tensor contact_sheet(const std::vector<at::Tensor>& images, const SheetOptions& options) {
  if (images.empty()) throw Error("contact sheet: no images");
  if (options.scale < 1) throw Error("contact sheet: the scale must be at least 1");
  if (options.columns < 0) throw Error("contact sheet: the column count must not be negative");
  const bool captioned = !options.captions.empty();
  if (captioned && options.captions.size() != images.size())
    throw Error("contact sheet: " + std::to_string(options.captions.size()) + " captions for " +
                std::to_string(images.size()) + " images");
  if (captioned && !can_draw_captions())
    throw Error("contact sheet: captions need OpenCV's imgproc, which this build was made without");
  const int64_t n = static_cast<int64_t>(images.size());
  const int64_t cols = options.columns > 0 ? std::min(options.columns, n)
                                           : static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int64_t rows = (n + cols - 1) / cols;
  const at::IntArrayRef shape = images[0].sizes();
  const int64_t s = options.scale, h = shape[0] * s, w = shape[1] * s, c = shape[2];
  const int64_t caption_h = captioned ? 14 : 0;
  at::Tensor sheet = at::zeros({rows * (h + caption_h + kPad) + kPad, cols * (w + kPad) + kPad, c}, at::kByte);
  for (int64_t i = 0; i < n; ++i) {
    const at::Tensor& img = images[static_cast<size_t>(i)];
    if (img.sizes() != shape)
      throw Error("contact sheet: image " + std::to_string(i) + " is " + shape_string(img.sizes()) + ", the first " +
                  c10::str(shape));
    const at::Tensor big = s == 1 ? img : img.repeat_interleave(s, 0).repeat_interleave(s, 1);
    const int64_t top = kPad + (i / cols) * (h + caption_h + kPad), left = kPad + (i % cols) * (w + kPad);
    sheet.narrow(0, top, h).narrow(1, left, w).copy_(big);
#ifdef LIT_WITH_OPENCV_IMGPROC
    if (captioned) draw_caption(sheet.narrow(0, top + h, caption_h).narrow(1, left, w), options.captions[i]);
#endif
  }
  return sheet;
}

}  // namespace lit::cli
