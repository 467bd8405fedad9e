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

constexpr int64_t kLineHeight = 12;  // a caption strip: 2 + 12 pixels per line

#ifdef LIT_WITH_OPENCV_IMGPROC
int text_width(const std::string& text) {
  int baseline = 0;
  return cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, kFontScale, 1, &baseline).width;
}

// `text` cut at a character until `text + tail` is at most `width` pixels wide.
std::string cut_to_fit(std::string text, int width, const std::string& tail = "") {
  while (text_width(text + tail) > width && text.size() > 1) text.pop_back();
  while (!tail.empty() && !text.empty() && text.back() == ' ') text.pop_back();
  return text + tail;
}

// The caption as lines of at most `width` pixels: cut at a character (max_lines 1), else wrapped at spaces into
// up to max_lines lines, a word wider than a line cut, the last line ending in "..." when words are left over.
std::vector<std::string> wrap_caption(const std::string& text, int width, int64_t max_lines) {
  if (max_lines <= 1) return {cut_to_fit(text, width)};
  std::vector<std::string> words;
  for (size_t start = 0; start < text.size();) {
    const size_t end = std::min(text.find(' ', start), text.size());
    if (end > start) words.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  std::vector<std::string> lines;
  std::string line;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string longer = line.empty() ? words[i] : line + " " + words[i];
    if (line.empty() || text_width(longer) <= width) {
      line = longer;
      continue;
    }
    if (static_cast<int64_t>(lines.size()) + 1 == max_lines) {  // the last line: what is left, cut
      lines.push_back(cut_to_fit(line + " " + words[i], width, "..."));
      return lines;
    }
    lines.push_back(cut_to_fit(line, width));
    line = words[i];
  }
  if (!line.empty() || lines.empty()) lines.push_back(cut_to_fit(line, width));
  return lines;
}

// Draws the lines, each centred, into a black (h, w, c) uint8 strip.
void draw_caption(at::Tensor strip, const std::vector<std::string>& lines) {
  const int h = static_cast<int>(strip.size(0)), w = static_cast<int>(strip.size(1));
  cv::Mat gray(h, w, CV_8UC1, cv::Scalar(0));
  for (size_t j = 0; j < lines.size(); ++j) {
    int baseline = 0;
    const cv::Size size = cv::getTextSize(lines[j], cv::FONT_HERSHEY_SIMPLEX, kFontScale, 1, &baseline);
    const int top = static_cast<int>(j * kLineHeight);
    const cv::Point origin(std::max(1, (w - size.width) / 2),
                           top + (static_cast<int>(kLineHeight) + 2 + size.height) / 2);
    cv::putText(gray, lines[j], origin, cv::FONT_HERSHEY_SIMPLEX, kFontScale, cv::Scalar(255), 1, cv::LINE_AA);
  }
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
  if (options.caption_lines < 1) throw Error("contact sheet: captions need at least 1 line");
  const int64_t n = static_cast<int64_t>(images.size());
  const int64_t cols = options.columns > 0 ? std::min(options.columns, n)
                                           : static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int64_t rows = (n + cols - 1) / cols;
  const at::IntArrayRef shape = images[0].sizes();
  const int64_t s = options.scale, h = shape[0] * s, w = shape[1] * s, c = shape[2];
  std::vector<std::vector<std::string>> lines(images.size());  // each caption's lines
  int64_t most_lines = 0;
#ifdef LIT_WITH_OPENCV_IMGPROC
  for (size_t i = 0; captioned && i < images.size(); ++i) {
    lines[i] = wrap_caption(options.captions[i], static_cast<int>(w) - 2, options.caption_lines);
    most_lines = std::max(most_lines, static_cast<int64_t>(lines[i].size()));
  }
#endif
  const int64_t caption_h = captioned ? 2 + most_lines * kLineHeight : 0;
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
    if (captioned) draw_caption(sheet.narrow(0, top + h, caption_h).narrow(1, left, w), lines[i]);
#endif
  }
  return sheet;
}

}  // namespace lit::cli
