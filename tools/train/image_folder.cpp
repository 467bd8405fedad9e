#include "tools/train/image_folder.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#ifdef LIT_WITH_OPENCV_IMGPROC
#include <opencv2/imgproc.hpp>
#endif

#include "common/error.h"
#include "weights/image_io.h"

namespace fs = std::filesystem;

namespace lit::train {
namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp" || ext == ".bmp";
}

}  // namespace

at::Tensor center_crop_arr(const at::Tensor& image, int64_t image_size) {
#ifdef LIT_WITH_OPENCV_IMGPROC
  at::Tensor src = image.contiguous();
  cv::Mat mat(static_cast<int>(src.size(0)), static_cast<int>(src.size(1)), CV_8UC3, src.data_ptr<uint8_t>());
  cv::Mat cur = mat.clone();
  while (std::min(cur.cols, cur.rows) >= 2 * image_size) {
    cv::Mat half;
    cv::resize(cur, half, cv::Size(cur.cols / 2, cur.rows / 2), 0, 0, cv::INTER_AREA);
    cur = half;
  }
  const double scale = static_cast<double>(image_size) / std::min(cur.cols, cur.rows);
  const int w = static_cast<int>(std::lround(cur.cols * scale)), h = static_cast<int>(std::lround(cur.rows * scale));
  cv::Mat resized;
  cv::resize(cur, resized,
             cv::Size(std::max<int>(w, static_cast<int>(image_size)), std::max<int>(h, static_cast<int>(image_size))),
             0, 0, cv::INTER_CUBIC);
  const int y0 = (resized.rows - static_cast<int>(image_size)) / 2,
            x0 = (resized.cols - static_cast<int>(image_size)) / 2;
  const cv::Mat crop = resized(cv::Rect(x0, y0, static_cast<int>(image_size), static_cast<int>(image_size))).clone();
  return at::from_blob(crop.data, {image_size, image_size, 3}, at::kByte).clone();
#else
  (void)image;
  (void)image_size;
  throw Error("image folders need OpenCV imgproc, which this build does not have");
#endif
}

ImageFolder::ImageFolder(std::string root, int64_t image_size, bool random_flip)
    : root_(std::move(root)), image_size_(image_size), random_flip_(random_flip) {
  if (!fs::is_directory(root_)) throw Error(root_ + ": no such image folder");
  for (const auto& entry : fs::directory_iterator(root_))
    if (entry.is_directory()) classes_.push_back(entry.path().filename().string());
  std::sort(classes_.begin(), classes_.end());
  if (classes_.empty()) throw Error(root_ + ": no class sub-folders (expected ROOT/<class>/<image>)");
  for (size_t c = 0; c < classes_.size(); ++c) {
    std::vector<std::string> files;
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(root_) / classes_[c]))
      if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path().string());
    if (files.empty()) throw Error(root_ + "/" + classes_[c] + ": a class folder without images");
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      files_.push_back(std::move(f));
      labels_.push_back(static_cast<int64_t>(c));
    }
  }
}

at::Tensor ImageFolder::cropped(int64_t index) const {
  return center_crop_arr(read_image(path(index)), image_size_);
}

Example ImageFolder::get(int64_t index, uint64_t seed) const {
  at::Tensor pixels = cropped(index);
  if (random_flip_ && (seed & 1)) pixels = pixels.flip({1});
  return {images_from_uint8(pixels)[0], label(index)};
}

std::string ImageFolder::description() const {
  return "image folder " + root_ + ", " + std::to_string(size()) + " images, 3x" + std::to_string(image_size_) + "x" +
         std::to_string(image_size_) + " pixels, " + std::to_string(num_classes()) + " classes";
}

std::shared_ptr<ImageFolder> open_image_folder(const std::string& root, int64_t image_size, bool random_flip) {
  return std::make_shared<ImageFolder>(root, image_size, random_flip);
}

}  // namespace lit::train
